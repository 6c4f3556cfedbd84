// Package dashboards holds the web dashboard served at / (index.html,
// app.js, panels.js, deal.js, style.css) and the Grafana dashboards on
// commitflow's Prometheus metrics and on ClickHouse (grafana/*.json).
package dashboards

import "embed"

// FS holds the dashboard files, at the root of the file system.
//
//go:embed index.html app.js panels.js deal.js style.css grafana/*.json
var FS embed.FS
