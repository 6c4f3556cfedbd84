// Package ladderschema holds the shipped default ladder configuration and the
// JSON Schema that describes ladder files.
package ladderschema

import _ "embed"

// DefaultYAML is the shipped default ladder (default.yaml).
//
//go:embed default.yaml
var DefaultYAML string

// SchemaJSON is the JSON Schema of a ladder file (ladder.schema.json).
//
//go:embed ladder.schema.json
var SchemaJSON string
