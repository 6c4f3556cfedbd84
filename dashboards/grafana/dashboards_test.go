// Package grafana_test checks the Grafana dashboards in this directory
// (issue 22): every file parses, every panel is wired to a provisioned
// datasource, every PromQL expression is valid and names only metrics the
// code registers (promql_test.go), every SQL query runs on the test
// ClickHouse over a small book and returns the columns its panel shows,
// with the numbers of the API (sql_test.go), and deploy/docker-compose.yml
// provisions them (provisioning_test.go).
package grafana_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/chtest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// Datasource types of the panels.
const (
	prometheusType = "prometheus"
	clickhouseType = "grafana-clickhouse-datasource"
)

// dashboard is the part of a Grafana dashboard JSON the tests read.
type dashboard struct {
	file       string
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID              int              `json:"id"`
	Type            string           `json:"type"`
	Title           string           `json:"title"`
	Description     string           `json:"description"`
	Datasource      *dsRef           `json:"datasource"`
	Targets         []target         `json:"targets"`
	Panels          []panel          `json:"panels"`
	Transformations []transformation `json:"transformations"`
	GridPos         *struct {
		W, H int
	} `json:"gridPos"`
	Options struct {
		// Content is a text panel's.
		Content string `json:"content"`
	} `json:"options"`
}

type target struct {
	RefID      string `json:"refId"`
	Datasource *dsRef `json:"datasource"`
	Expr       string `json:"expr"`
	RawSQL     string `json:"rawSql"`
	// Format is the ClickHouse plugin's: 0 time series, 1 table.
	Format *int `json:"format"`
}

type transformation struct {
	ID      string `json:"id"`
	Options struct {
		IndexByName map[string]int `json:"indexByName"`
	} `json:"options"`
}

type variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      any    `json:"query"`
	Datasource *dsRef `json:"datasource"`
	Options    []struct {
		Value string `json:"value"`
	} `json:"options"`
}

// loadDashboards reads every *.json of this directory.
func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob("*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no dashboards")
	}
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		d := dashboard{file: f}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, d)
	}
	return out
}

// panels returns d's panels, those inside collapsed rows included.
func (d dashboard) panels() []panel {
	var out []panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// variable returns d's template variable name.
func (d dashboard) variable(name string) (variable, bool) {
	for _, v := range d.Templating.List {
		if v.Name == name {
			return v, true
		}
	}
	return variable{}, false
}

// datasourceType is the plugin type of the datasource ref points at: a
// datasource variable of d (${name} or $name) or a provisioned uid.
func (d dashboard) datasourceType(ref *dsRef) string {
	if ref == nil {
		return ""
	}
	name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(ref.UID, "$"), "{"), "}")
	if v, ok := d.variable(name); ok && v.Type == "datasource" {
		if q, _ := v.Query.(string); q == ref.Type {
			return q
		}
		return ""
	}
	return ref.Type
}

// columns are the columns a panel shows: the fields its organize
// transformation orders, nil when it has none.
func (p panel) columns() []string {
	for _, tr := range p.Transformations {
		if tr.ID != "organize" {
			continue
		}
		cols := make([]string, len(tr.Options.IndexByName))
		for c, i := range tr.Options.IndexByName {
			if i < 0 || i >= len(cols) || cols[i] != "" {
				return nil
			}
			cols[i] = c
		}
		return cols
	}
	return nil
}

// TestDashboardsAreWellFormed checks what Grafana needs to load and
// show each dashboard: unique uids and panel ids, a size for every panel,
// and every query panel on a datasource variable of the dashboard (so that
// the provisioned datasources, or any the operator picks, serve it) of
// the type its queries are written for, with a description saying what it
// shows; a text panel (links to what SQL cannot compute) has content and
// no query. A table or stat panel on ClickHouse orders its columns (an organize
// transformation), which the SQL test checks the query returns.
func TestDashboardsAreWellFormed(t *testing.T) {
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: no uid or title", d.file)
		}
		if other, ok := uids[d.UID]; ok {
			t.Errorf("%s: uid %q also in %s", d.file, d.UID, other)
		}
		uids[d.UID] = d.file
		ids := map[int]bool{}
		queries := 0
		for _, p := range d.panels() {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel %q: id %d missing or not unique", d.file, p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("%s: panel %q has no size", d.file, p.Title)
			}
			if p.Type == "row" {
				continue
			}
			if p.Type == "text" {
				// Links to what SQL cannot compute: no query.
				if p.Options.Content == "" || p.Description == "" || len(p.Targets) > 0 {
					t.Errorf("%s: text panel %q needs content and a description, and no query", d.file, p.Title)
				}
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", d.file, p.Title)
			}
			if p.Description == "" {
				t.Errorf("%s: panel %q has no description", d.file, p.Title)
			}
			pt := d.datasourceType(p.Datasource)
			if pt != prometheusType && pt != clickhouseType {
				t.Errorf("%s: panel %q: datasource %+v is not a prometheus or clickhouse datasource variable", d.file, p.Title, p.Datasource)
			}
			for _, tg := range p.Targets {
				queries++
				if tg.Datasource != nil && d.datasourceType(tg.Datasource) != pt {
					t.Errorf("%s: panel %q query %s: datasource %+v differs from the panel's", d.file, p.Title, tg.RefID, tg.Datasource)
				}
				switch pt {
				case prometheusType:
					if tg.Expr == "" || tg.RawSQL != "" {
						t.Errorf("%s: panel %q query %s: a Prometheus query needs expr only", d.file, p.Title, tg.RefID)
					}
				case clickhouseType:
					if tg.RawSQL == "" || tg.Expr != "" || tg.Format == nil {
						t.Errorf("%s: panel %q query %s: a ClickHouse query needs rawSql and format", d.file, p.Title, tg.RefID)
					}
					if (p.Type == "table" || p.Type == "stat") && p.columns() == nil {
						t.Errorf("%s: panel %q shows no columns (organize transformation)", d.file, p.Title)
					}
				}
			}
		}
		if queries == 0 {
			t.Errorf("%s: no queries", d.file)
		}
	}
}
