// Package callschema embeds the JSON Schema (draft 2020-12) of commitflow's
// generic call-record JSON, call_record.schema.json: the records that
// `commitflow import --format calls-json` reads and POST
// /v1/webhooks/calls takes, for recorders and dialers Gong does not cover.
// internal/webhook maps them (webhook.CallRecords); a test there keeps the
// schema and the Go types alike.
package callschema

import _ "embed"

// Schema is call_record.schema.json.
//
//go:embed call_record.schema.json
var Schema []byte
