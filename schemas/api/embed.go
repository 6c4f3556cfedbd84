// Package apischema holds the OpenAPI 3 document of commitflow's HTTP API.
package apischema

import _ "embed"

// OpenAPIYAML is the OpenAPI 3.0 document (openapi.yaml).
//
//go:embed openapi.yaml
var OpenAPIYAML string
