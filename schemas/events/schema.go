// Package eventschema embeds the JSON Schema (draft 2020-12) files of
// commitflow's input events: envelope.schema.json, one file per payload
// type, and defs.schema.json with the shared definitions. They mirror the Go
// types in internal/event; a test there keeps the two in sync.
package eventschema

import "embed"

// FS holds the *.schema.json files, at the root.
//
//go:embed *.json
var FS embed.FS
