package grafana_test

import (
	"context"
	"fmt"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/commitflow/commitflow/internal/answercache"
	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/backlog"
	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/compact"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// family is one registered metric: its labels, and whether it is a
// histogram or summary (exported as _bucket/_sum/_count series).
type family struct {
	labels    map[string]bool
	histogram bool
	summary   bool
	// labelsUnread is set on a declaration whose labels are not a
	// literal the source reader can see.
	labelsUnread bool
}

// recorder is a prometheus.Registerer that registers on a real registry
// and keeps the name, labels and kind of everything registered.
type recorder struct {
	reg      *prometheus.Registry
	families map[string]*family
}

var descRe = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

func (r *recorder) Register(c prometheus.Collector) error {
	if err := r.reg.Register(c); err != nil {
		return err
	}
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		m := descRe.FindStringSubmatch(d.String())
		if m == nil {
			continue
		}
		f := &family{labels: map[string]bool{}}
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
				f.labels[l] = true
			}
		}
		switch c.(type) {
		case prometheus.Histogram, *prometheus.HistogramVec:
			f.histogram = true
		case prometheus.Summary, *prometheus.SummaryVec:
			f.summary = true
		}
		r.families[m[1]] = f
	}
	return nil
}

func (r *recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

func (r *recorder) Unregister(c prometheus.Collector) bool { return r.reg.Unregister(c) }

// registeredMetrics starts every component that registers metrics in
// `commitflow run` and `commitflow gateway` (the ingest worker, the
// deriver, the backlog sampler, the snapshot pinner, the compactor, the
// answer cache, the API with its gateway, the Go and process collectors)
// on embedded NATS JetStream and the test ClickHouse, as cmd/commitflow
// does, and returns what they registered, by the series name a query
// uses.
func registeredMetrics(t *testing.T) map[string]*family {
	t.Helper()
	ctx := context.Background()
	rec := &recorder{reg: prometheus.NewRegistry(), families: map[string]*family{}}
	rec.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	_, js := bustest.Start(t, bus.Options{})
	st := storetest.Open(t, store.Options{})
	if _, err := ingest.New(js, st, ingest.Config{}, rec, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.NewDeriver(ctx, js, st, ladder.Default(), pipeline.Config{}, rec, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if _, err := backlog.New(js, backlog.Config{}, rec, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := snapshot.New(st.Conn()).Instrument(rec); err != nil {
		t.Fatal(err)
	}
	if _, err := compact.New(st.Conn(), compact.Config{Every: time.Hour}, rec, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if err := answercache.New(answercache.Options{MaxBytes: 1 << 20}).Instrument(rec); err != nil {
		t.Fatal(err)
	}
	if err := forecast.NewModelCache(forecast.ModelCacheOptions{MaxModels: 1}).Instrument(rec); err != nil {
		t.Fatal(err)
	}
	// api.Config takes a *prometheus.Registry: the API registers on the
	// real one (so a clash with the above fails here), and its metrics,
	// vectors that export nothing before their first request, are taken
	// from their declarations in internal/api, as are those the wiring of
	// run (internal/node) and package main register themselves (a node
	// needs a managed ClickHouse server to register its restarts).
	_ = api.New(api.Config{Registry: rec.reg}, nil, nil, nil)
	_ = api.NewGateway(api.Config{Registry: rec.reg}, nil)
	declared := sourceMetrics(t, "../../internal/api")
	maps.Copy(declared, sourceMetrics(t, "../../internal/node"))
	maps.Copy(declared, sourceMetrics(t, "../../cmd"))
	for name, f := range declared {
		if _, ok := rec.families[name]; !ok {
			rec.families[name] = f
		}
	}

	// Families that describe themselves without variable labels (the Go
	// and process collectors) are read back with their kind.
	mfs, err := rec.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		f, ok := rec.families[mf.GetName()]
		if !ok {
			continue
		}
		f.histogram = f.histogram || mf.GetType() == dto.MetricType_HISTOGRAM
		f.summary = f.summary || mf.GetType() == dto.MetricType_SUMMARY
	}
	series := map[string]*family{}
	for name, f := range rec.families {
		series[name] = f
		var suffixes []string
		switch {
		case f.histogram:
			suffixes = []string{"_bucket", "_sum", "_count"}
		case f.summary:
			suffixes = []string{"_sum", "_count"}
		}
		for _, s := range suffixes {
			g := &family{labels: map[string]bool{}}
			for l := range f.labels {
				g.labels[l] = true
			}
			if s == "_bucket" {
				g.labels["le"] = true
			}
			series[name+s] = g
		}
		if f.summary {
			f.labels["quantile"] = true
		}
	}
	return series
}

// sourceMetrics returns the metrics declared in the non-test Go files
// under dir, read from the source: each prometheus.NewXxx(Opts{Name:
// "commitflow_..."}, []string{labels}) call, with its labels and kind.
func sourceMetrics(t *testing.T, dir string) map[string]*family {
	t.Helper()
	out := map[string]*family{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := goparser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !strings.HasPrefix(sel.Sel.Name, "New") {
				return true
			}
			opts, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			name := ""
			for _, e := range opts.Elts {
				if kv, ok := e.(*ast.KeyValueExpr); ok {
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Name" {
						if lit, ok := kv.Value.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							name, _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			if !strings.HasPrefix(name, "commitflow_") {
				return true
			}
			fam := &family{labels: map[string]bool{}, histogram: strings.Contains(sel.Sel.Name, "Histogram"),
				summary: strings.Contains(sel.Sel.Name, "Summary")}
			if len(call.Args) > 1 {
				ls, ok := call.Args[1].(*ast.CompositeLit)
				fam.labelsUnread = !ok
				if ok {
					for _, e := range ls.Elts {
						if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
							l, _ := strconv.Unquote(lit.Value)
							fam.labels[l] = true
						}
					}
				}
			}
			out[name] = fam
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRegistryCoversEveryMetric checks that registeredMetrics knows every
// metric declared in internal/ and cmd/ (internal/bench aside), with the
// labels and kind its declaration gives.
func TestRegistryCoversEveryMetric(t *testing.T) {
	got := registeredMetrics(t)
	for _, dir := range []string{"../../internal", "../../cmd"} {
		for name, want := range sourceMetrics(t, dir) {
			f, ok := got[name]
			if !ok {
				t.Errorf("%s is declared in %s but not registered by the components registeredMetrics starts", name, dir)
				continue
			}
			if !want.labelsUnread && !maps.Equal(f.labels, want.labels) || f.histogram != want.histogram {
				t.Errorf("%s: registered %+v, declared %+v", name, f, want)
			}
		}
	}
}

// exprVars are what Grafana puts for the variables and interval macros
// of a Prometheus query.
var exprVars = strings.NewReplacer(
	"$__rate_interval", "1m", "$__interval", "30s", "$__range", "1h",
	"${tenant:regex}", "acme", "$tenant", "acme", "${tenant}", "acme",
)

// extraLabels are the labels Prometheus itself adds to every scraped
// series.
var extraLabels = map[string]bool{"job": true, "instance": true, "__name__": true}

// TestPromQL checks every Prometheus query of every dashboard: it parses
// (Prometheus's own parser, Grafana's variables filled), every series it
// selects is one the code registers, and every label it filters or
// groups by is one of those series' labels.
func TestPromQL(t *testing.T) {
	known := registeredMetrics(t)
	n := 0
	for _, d := range loadDashboards(t) {
		for _, p := range d.panels() {
			if d.datasourceType(p.Datasource) != prometheusType {
				continue
			}
			for _, tg := range p.Targets {
				n++
				if err := checkPromQL(exprVars.Replace(tg.Expr), known); err != nil {
					t.Errorf("%s: panel %q query %s: %v\n%s", d.file, p.Title, tg.RefID, err, tg.Expr)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no Prometheus query")
	}
}

// checkPromQL parses expr and checks its series and labels against known.
func checkPromQL(expr string, known map[string]*family) error {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return err
	}
	labels := map[string]bool{}
	var errs []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		f, ok := known[vs.Name]
		if !ok {
			errs = append(errs, fmt.Sprintf("series %q is not registered", vs.Name))
			return nil
		}
		for l := range f.labels {
			labels[l] = true
		}
		for _, m := range vs.LabelMatchers {
			if !f.labels[m.Name] && !extraLabels[m.Name] {
				errs = append(errs, fmt.Sprintf("%s has no label %q", vs.Name, m.Name))
			}
		}
		return nil
	})
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		var grouping []string
		switch a := n.(type) {
		case *parser.AggregateExpr:
			grouping = a.Grouping
		case *parser.BinaryExpr:
			if a.VectorMatching != nil {
				grouping = append(slices.Clone(a.VectorMatching.MatchingLabels), a.VectorMatching.Include...)
			}
		}
		for _, l := range grouping {
			if !labels[l] && !extraLabels[l] {
				errs = append(errs, fmt.Sprintf("grouping by %q, a label of none of its series", l))
			}
		}
		return nil
	})
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// TestPromQLCheckRefuses shows that the check catches what it is for.
func TestPromQLCheckRefuses(t *testing.T) {
	known := map[string]*family{
		"commitflow_x_total":          {labels: map[string]bool{"tenant": true}},
		"commitflow_h_seconds_bucket": {labels: map[string]bool{"le": true}},
	}
	for _, tt := range []struct {
		expr string
		ok   bool
	}{
		{`sum by (tenant) (rate(commitflow_x_total[1m]))`, true},
		{`histogram_quantile(0.9, sum by (le) (rate(commitflow_h_seconds_bucket[1m])))`, true},
		{`sum by (tenant) (rate(commitflow_y_total[1m]))`, false},
		{`sum by (door) (rate(commitflow_x_total[1m]))`, false},
		{`rate(commitflow_x_total{door="x"}[1m])`, false},
		{`sum(rate(commitflow_x_total[1m])`, false},
	} {
		if err := checkPromQL(tt.expr, known); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.expr, err, tt.ok)
		}
	}
}

// TestListMetrics prints the registered series (go test -v -run
// TestListMetrics), a reference for writing panels.
func TestListMetrics(t *testing.T) {
	if !testing.Verbose() {
		t.Skip("-v lists the registered series")
	}
	known := registeredMetrics(t)
	var names []string
	for n, f := range known {
		var ls []string
		for l := range f.labels {
			ls = append(ls, l)
		}
		slices.Sort(ls)
		names = append(names, n+" {"+strings.Join(ls, ",")+"}")
	}
	slices.Sort(names)
	t.Log("\n" + strings.Join(names, "\n"))
}
