package grafana_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// deployDir is deploy/, where docker-compose.yml resolves its relative
// paths.
const deployDir = "../../deploy"

type compose struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		DependsOn   []string          `yaml:"depends_on"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Expose      []string          `yaml:"expose"`
		Volumes     []string          `yaml:"volumes"`
	} `yaml:"services"`
	Volumes map[string]any `yaml:"volumes"`
}

type datasources struct {
	APIVersion  int `yaml:"apiVersion"`
	Datasources []struct {
		Name           string            `yaml:"name"`
		UID            string            `yaml:"uid"`
		Type           string            `yaml:"type"`
		URL            string            `yaml:"url"`
		JSONData       map[string]any    `yaml:"jsonData"`
		SecureJSONData map[string]string `yaml:"secureJsonData"`
	} `yaml:"datasources"`
}

type providers struct {
	APIVersion int `yaml:"apiVersion"`
	Providers  []struct {
		Name    string `yaml:"name"`
		Type    string `yaml:"type"`
		Options struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

type promConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// readYAML decodes the YAML file path into v.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// mounts returns the bind mounts of a service: container path -> host
// path relative to deploy/ (named volumes left out).
func mounts(t *testing.T, vols []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, v := range vols {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			t.Fatalf("volume %q", v)
		}
		if strings.HasPrefix(parts[0], ".") || strings.HasPrefix(parts[0], "/") {
			out[parts[1]] = parts[0]
		}
	}
	return out
}

// TestComposeProvisionsGrafana checks deploy/docker-compose.yml and the
// files it mounts: Grafana installs the ClickHouse plugin and gets its
// datasources and dashboards from files (the provisioning directory and
// dashboards/grafana, both existing, the dashboards where the provider
// reads them); Prometheus scrapes commitflow's metrics port; the
// datasources point at the compose services with their credentials; and
// every dashboard's datasource variable has a provisioned datasource of
// its type.
func TestComposeProvisionsGrafana(t *testing.T) {
	var c compose
	readYAML(t, filepath.Join(deployDir, "docker-compose.yml"), &c)
	for _, name := range []string{"nats", "clickhouse", "commitflow", "prometheus", "grafana"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("no service %s", name)
		}
	}
	gf, prom, cf, ch := c.Services["grafana"], c.Services["prometheus"], c.Services["commitflow"], c.Services["clickhouse"]
	// The plugin is pinned: its query format and macros are what the
	// dashboards were written for, and a new major version may change them.
	if plugins := gf.Environment["GF_INSTALL_PLUGINS"]; !regexp.MustCompile(`(^|,)` + regexp.QuoteMeta(clickhouseType) + ` \d+\.\d+\.\d+(,|$)`).MatchString(plugins) {
		t.Errorf("grafana: GF_INSTALL_PLUGINS %q does not install a pinned version of %s (\"%s X.Y.Z\")", plugins, clickhouseType, clickhouseType)
	}
	for _, dep := range []string{"prometheus", "clickhouse"} {
		if !slices.Contains(gf.DependsOn, dep) {
			t.Errorf("grafana does not depend on %s", dep)
		}
	}
	if !slices.Contains(prom.DependsOn, "commitflow") {
		t.Error("prometheus does not depend on commitflow")
	}
	for _, s := range []struct {
		name string
		vols []string
	}{{"grafana", gf.Volumes}, {"prometheus", prom.Volumes}} {
		for _, v := range s.vols {
			if host := strings.Split(v, ":")[0]; !strings.HasPrefix(host, ".") {
				if _, ok := c.Volumes[host]; !ok {
					t.Errorf("%s: volume %s is not declared", s.name, host)
				}
			}
		}
	}

	gm := mounts(t, gf.Volumes)
	prov, ok := gm["/etc/grafana/provisioning"]
	if !ok {
		t.Fatal("grafana: no provisioning directory mounted at /etc/grafana/provisioning")
	}
	var ds datasources
	readYAML(t, filepath.Join(deployDir, prov, "datasources", "commitflow.yml"), &ds)
	var pv providers
	readYAML(t, filepath.Join(deployDir, prov, "dashboards", "commitflow.yml"), &pv)
	if ds.APIVersion != 1 || pv.APIVersion != 1 {
		t.Errorf("provisioning apiVersion %d, %d, want 1", ds.APIVersion, pv.APIVersion)
	}
	if len(pv.Providers) != 1 || pv.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers %+v, want one of type file", pv.Providers)
	}
	host, ok := gm[pv.Providers[0].Options.Path]
	if !ok {
		t.Fatalf("grafana: nothing mounted at the dashboards' path %s", pv.Providers[0].Options.Path)
	}
	if abs, _ := filepath.Abs(filepath.Join(deployDir, host)); abs != must(filepath.Abs(".")) {
		t.Errorf("grafana: %s holds %s, not dashboards/grafana", pv.Providers[0].Options.Path, host)
	}
	if home := gf.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		rel, ok := strings.CutPrefix(home, pv.Providers[0].Options.Path+"/")
		if _, err := os.Stat(rel); !ok || err != nil {
			t.Errorf("grafana: home dashboard %s is not a dashboard of this directory", home)
		}
	}

	pm := mounts(t, prom.Volumes)
	var pc promConfig
	readYAML(t, filepath.Join(deployDir, pm["/etc/prometheus/prometheus.yml"]), &pc)
	_, port, _ := strings.Cut(cf.Environment["COMMITFLOW_METRICS_HTTP"], ":")
	want := "commitflow:" + port
	if port == "" || !slices.Contains(cf.Expose, port) {
		t.Errorf("commitflow: metrics port %q (COMMITFLOW_METRICS_HTTP) not exposed (%v)", port, cf.Expose)
	}
	scraped := false
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if slices.Contains(st.Targets, want) && (sc.MetricsPath == "" || sc.MetricsPath == "/metrics") {
				scraped = true
			}
		}
	}
	if !scraped {
		t.Errorf("prometheus does not scrape %s/metrics: %+v", want, pc.ScrapeConfigs)
	}

	types := map[string]bool{}
	for _, d := range ds.Datasources {
		types[d.Type] = true
		switch d.Type {
		case prometheusType:
			if d.URL != "http://prometheus:9090" || !slices.Contains(prom.Ports, "9090:9090") {
				t.Errorf("prometheus datasource at %q", d.URL)
			}
		case clickhouseType:
			got := []any{d.JSONData["host"], d.JSONData["port"], d.JSONData["protocol"], d.JSONData["username"], d.JSONData["defaultDatabase"], d.SecureJSONData["password"]}
			want := []any{"clickhouse", 9000, "native", ch.Environment["CLICKHOUSE_USER"], ch.Environment["CLICKHOUSE_DB"], ch.Environment["CLICKHOUSE_PASSWORD"]}
			if !slices.Equal(got, want) {
				t.Errorf("clickhouse datasource %v, want %v (the clickhouse service)", got, want)
			}
		default:
			t.Errorf("datasource %s of unexpected type %s", d.Name, d.Type)
		}
	}
	for _, d := range loadDashboards(t) {
		v, ok := d.variable("datasource")
		if q, _ := v.Query.(string); !ok || !types[q] {
			t.Errorf("%s: datasource variable %+v has no provisioned datasource", d.file, v)
		}
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
