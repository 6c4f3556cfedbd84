// Package dashboards holds the web dashboard served at / (index.html,
// app.js, panels.js, deal.js, style.css) and the Grafana dashboard for
// commitflow's Prometheus metrics (grafana-commitflow.json).
package dashboards

import "embed"

// FS holds the dashboard files, at the root of the file system.
//
//go:embed index.html app.js panels.js deal.js style.css grafana-commitflow.json
var FS embed.FS
