// Package clickhouseschema embeds commitflow's ClickHouse migrations: the
// files NNNN_name.sql in this directory, applied in order by
// internal/store. See README.md for the template placeholders they use.
package clickhouseschema

import "embed"

// FS holds the migration files (*.sql).
//
//go:embed *.sql
var FS embed.FS
