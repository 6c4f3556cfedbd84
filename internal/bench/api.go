package bench

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/answercache"
	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/compact"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
)

// APIConfig is what API measures and where.
type APIConfig struct {
	// DSN is the ClickHouse server measured. API loads its book of
	// business into the database <Prefix>_api_<Events> of that server and
	// keeps it for Reuse.
	DSN string
	// Prefix starts the name of the database; default commitflow_bench.
	Prefix string
	// Events is how many raw events the book of business has.
	Events int
	// Requests is how many timed requests each endpoint gets, after one
	// that warms caches.
	Requests int
	// Reuse times the data an earlier run loaded instead of loading again.
	Reuse bool
	// Only, when set, times only the endpoints whose name contains it.
	Only string
	// Rewrite is how many per thousand opportunities' states are written
	// again with a newer version before timing, as derivation does for the
	// deals that change: the superseded rows a live table holds until
	// merges drop them.
	Rewrite int
	// Compact compacts opportunity_state after Rewrite, as run does above
	// its threshold, so that no superseded rows are left.
	Compact bool
	// CPUProfile, when set, is the file the CPU profile of the timed
	// requests goes to.
	CPUProfile string
	// Clients, when above 0, runs the concurrent mode instead of timing
	// each endpoint: this many clients replay the dashboard's requests for
	// Duration.
	Clients  int
	Duration time.Duration
	// Cache serves the concurrent mode with the answer cache (CacheBytes)
	// and single-flight, as run does; without it every request is
	// computed. Timing each endpoint is always without it (cold).
	Cache      bool
	CacheBytes int64
	// ForecastModels, when above 0, keeps the fitted forecast models as
	// run does (forecast.ModelCache): the forecast and back-test fit once
	// and later requests run only the open-deals query. 0 fits on every
	// request.
	ForecastModels int
	// Progress receives the loading's progress; nil discards it.
	Progress io.Writer
	// Logger receives the API's and the store's logs; nil discards them.
	Logger *slog.Logger
}

// Latency is how long one endpoint's requests took, how large its answer
// was (and, compressed, on the wire) and the CPU a request took: of this process, which serves and reads
// the answer (Self), and of the local ClickHouse server, merges included
// (in µs, negative where not measured; see Cost).
type Latency struct {
	Name          string
	P50, P95, Max time.Duration
	Bytes         int64 // the answer
	Wire          int64 // what crossed the network: the answer gzipped
	CPU           Cost
}

// APIResult is what API measured.
type APIResult struct {
	Events    int
	Endpoints []Latency
	// Concurrent is the concurrent mode's result; nil when endpoints were
	// timed.
	Concurrent *Concurrent
}

// apiQuery is one timed request: the endpoint (the name up to its first
// space) and its query parameters.
type apiQuery struct{ name, query string }

// apiQueries are the requests API times, on data ending at end.
func apiQueries(end time.Time) []apiQuery {
	from, to, asOf := end.AddDate(-1, 0, 0).Format(time.DateOnly), end.Format(time.DateOnly), end.Format(time.DateOnly)
	return []apiQuery{
		{"funnel", "from=" + from + "&to=" + to + "&as_of=" + asOf},
		{"funnel by owner, monthly, 30-day window", "from=" + from + "&to=" + to + "&as_of=" + asOf + "&by=owner&interval=month&window_days=30"},
		{"funnel by every owner, monthly, 30-day window", "from=" + from + "&to=" + to + "&as_of=" + asOf + "&by=owner&interval=month&window_days=30&top=all"},
		{"stalls", "as_of=" + asOf},
		{"missed", "from=" + from + "&to=" + to + "&as_of=" + asOf},
		{"movement", "from=" + end.AddDate(0, -3, 0).Format(time.DateOnly) + "&to=" + to + "&as_of=" + asOf},
		{"forecast", "as_of=" + asOf},
		{"forecast back-test", "as_of=" + asOf + "&backtest=" + end.AddDate(0, -6, 0).Format(time.DateOnly)},
		{"cycle-time", "from=" + from + "&to=" + to + "&as_of=" + asOf},
		{"stage-history", "as_of=" + asOf},
	}
}

// API loads a generated book of business (raw events, and derived events
// and states derived in process) into its own database, then times every
// metrics endpoint over HTTP against it.
func API(ctx context.Context, cfg APIConfig) (APIResult, error) {
	res := APIResult{Events: cfg.Events}
	srv, err := connect(ctx, cfg.DSN, cfg.Prefix, cfg.Progress, cfg.Logger)
	if err != nil {
		return res, err
	}
	defer srv.close()
	progress, log := srv.progress, srv.log
	st, _, err := srv.database(ctx, fmt.Sprintf("api_%d", cfg.Events), cfg.Reuse)
	if err != nil {
		return res, err
	}
	defer st.Close()
	l := ladder.Default()
	if !cfg.Reuse {
		if err := load(ctx, st, l, cfg.Events, genEnd, progress); err != nil {
			return res, err
		}
	}
	if cfg.Rewrite > 0 {
		n, err := rewriteStates(ctx, st, cfg.Rewrite)
		if err != nil {
			return res, err
		}
		fmt.Fprintf(progress, "wrote states again: the table holds %d superseded rows\n", n)
	}
	if cfg.Compact {
		cw, err := compact.New(st.Conn(), compact.Config{Every: time.Hour}, prometheus.NewRegistry(), log)
		if err != nil {
			return res, err
		}
		if _, err := cw.Once(ctx); err != nil {
			return res, err
		}
	}
	pin := snapshot.New(st.Conn())
	q := metrics.NewWithOptions(st.Conn(), metrics.Options{MaxThreads: runtime.NumCPU(), Pinner: pin})
	acfg := api.Config{Open: true, Ladder: l}
	if cfg.Clients > 0 && cfg.Cache {
		acfg.Answers = answercache.New(answercache.Options{MaxBytes: cfg.CacheBytes})
	}
	fopt := forecast.Options{Pinner: pin}
	if cfg.ForecastModels > 0 {
		fopt.Models = forecast.NewModelCache(forecast.ModelCacheOptions{MaxModels: cfg.ForecastModels})
	}
	hs := httptest.NewServer(api.New(acfg, q, forecast.NewWithOptions(st.Conn(), fopt), log))
	defer hs.Close()
	stopProfile, err := startCPUProfile(cfg.CPUProfile)
	if err != nil {
		return res, err
	}
	defer stopProfile()
	if cfg.Clients > 0 {
		c := concurrent(ctx, hs.URL, cfg.Clients, cfg.Duration, genEnd)
		c.Cache = cfg.Cache
		res.Concurrent = &c
		return res, nil
	}
	for _, aq := range apiQueries(genEnd) {
		if !strings.Contains(aq.name, cfg.Only) {
			continue
		}
		endpoint, _, _ := strings.Cut(aq.name, " ")
		u := hs.URL + "/v1/" + endpoint + "?tenant=" + tenant + "&" + aq.query
		// The first request warms caches and is not counted.
		size, wire, err := get(ctx, u)
		if err != nil {
			return res, fmt.Errorf("%s: %w", aq.name, err)
		}
		var lat []time.Duration
		cpu := sampleCPU(0)
		for range cfg.Requests {
			start := time.Now()
			if size, wire, err = get(ctx, u); err != nil {
				return res, fmt.Errorf("%s: %w", aq.name, err)
			}
			lat = append(lat, time.Since(start))
		}
		slices.Sort(lat)
		res.Endpoints = append(res.Endpoints, Latency{Name: aq.name, P50: lat[len(lat)/2],
			P95: lat[min(len(lat)-1, len(lat)*95/100)], Max: lat[len(lat)-1], Bytes: size, Wire: wire,
			CPU: costSince(cpu, len(lat))})
	}
	return res, nil
}

// Write prints r as a table of milliseconds and KiB, or the concurrent
// mode's line.
func (r APIResult) Write(w io.Writer) error {
	if r.Concurrent != nil {
		fmt.Fprintf(w, "%d raw events, the dashboard's %d requests in turn\n", r.Events, len(dashboardQueries(genEnd)))
		return r.Concurrent.Write(w)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "endpoint (%d raw events)\tp50 ms\tp95 ms\tmax ms\tKiB\tKiB sent\tCPU ms a request: commitflow\tClickHouse\t\n", r.Events)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	cpu := func(us float64) string {
		if us < 0 {
			return "n/a"
		}
		return strconv.FormatFloat(us/1000, 'f', 0, 64)
	}
	for _, e := range r.Endpoints {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%d\t%d\t%s\t%s\t\n", e.Name, ms(e.P50), ms(e.P95), ms(e.Max), e.Bytes>>10, e.Wire>>10, cpu(e.CPU.Self), cpu(e.CPU.ClickHouse))
	}
	return tw.Flush()
}

// get fetches u as an API client does, taking gzip, and returns the size
// of the answer's body and of what crossed the wire. The body is read and
// discarded, not kept: collecting a 22 MiB answer with io.ReadAll cost the
// benchmark process (which also serves the request) more CPU than encoding
// it.
func get(ctx context.Context, u string) (answer, wire int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, 0, err
	}
	// Set by hand, the header turns off the transport's own decoding, so
	// that the bytes on the wire can be counted.
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, 0, fmt.Errorf("%s: %s", resp.Status, msg)
	}
	cr := &countingReader{r: resp.Body}
	var body io.Reader = cr
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(cr)
		if err != nil {
			return 0, 0, fmt.Errorf("gzip answer: %w", err)
		}
		body = zr
	}
	answer, err = io.Copy(io.Discard, body)
	return answer, cr.n, err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// load generates n raw events for the bench tenant, derives them in
// process one opportunity at a time and stores raw events, derived events
// and states in batches, reporting its progress every 2 seconds.
func load(ctx context.Context, st *store.Store, l *ladder.Ladder, n int, end time.Time, progress io.Writer) error {
	var (
		raw     []store.RawEvent
		derived []store.DerivedRow
		states  []store.StateRow
		cur     []event.Event
		total   int
	)
	start, last := time.Now(), time.Now()
	now := end.Add(24 * time.Hour)
	flush := func(force bool) error {
		if len(raw) >= 50000 || force {
			if err := st.InsertEvents(ctx, raw); err != nil {
				return err
			}
			raw = raw[:0]
		}
		if len(derived) >= 50000 || force {
			if err := st.InsertDerived(ctx, derived); err != nil {
				return err
			}
			derived = derived[:0]
		}
		if len(states) >= 20000 || force {
			if err := st.InsertStates(ctx, states); err != nil {
				return err
			}
			states = states[:0]
		}
		if force || time.Since(last) >= 2*time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "[%6.1fs] loaded %d/%d raw events\n", time.Since(start).Seconds(), total, n)
		}
		return nil
	}
	deriveCur := func() error {
		if len(cur) == 0 || cur[0].OpportunityID == "" {
			cur = cur[:0]
			return nil
		}
		out := derive.Derive(tenant, cur[0].OpportunityID, cur, l, now)
		for _, d := range out {
			derived = append(derived, store.DerivedRow{Derived: d, Version: 1})
		}
		state := derive.Summarize(out, l.Len())
		state.Tenant, state.OpportunityID = tenant, cur[0].OpportunityID
		states = append(states, store.StateRow{State: state, Version: 1})
		cur = cur[:0]
		return flush(false)
	}
	errEnough := errors.New("enough")
	cfg := gen.Config{Seed: 1, Opportunities: n/20 + 1, Tenant: tenant, End: end}
	err := gen.Generate(ctx, cfg, func(ev event.Event) error {
		if total == n {
			return errEnough
		}
		total++
		if len(cur) > 0 && cur[0].OpportunityID != ev.OpportunityID {
			if err := deriveCur(); err != nil {
				return err
			}
		}
		cur = append(cur, ev)
		row, err := rawRow(ev, uint64(total))
		if err != nil {
			return err
		}
		raw = append(raw, row)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return err
	}
	if err := deriveCur(); err != nil {
		return err
	}
	if err := flush(true); err != nil {
		return err
	}
	fmt.Fprintf(progress, "loaded %d raw events\n", total)
	return nil
}

// rewriteStates writes the states of permille per thousand of the bench
// tenant's opportunities again, unchanged but for a newer version, and
// returns how many superseded rows the table holds then (more than one
// run's if merges have not dropped the earlier ones yet). Every stored
// column is copied, DEFAULT ones included (left out, they would read as a
// row written before their migration); MATERIALIZED and ALIAS columns
// cannot be inserted.
func rewriteStates(ctx context.Context, st *store.Store, permille int) (uint64, error) {
	rows, err := st.Conn().Query(ctx, `SELECT name FROM system.columns
WHERE database = currentDatabase() AND table = 'opportunity_state' AND default_kind NOT IN ('MATERIALIZED', 'ALIAS')`)
	if err != nil {
		return 0, fmt.Errorf("rewrite states: %w", err)
	}
	var cols, exprs []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return 0, fmt.Errorf("rewrite states: %w", err)
		}
		cols = append(cols, c)
		if c == "version" {
			c = "version + 1"
		}
		exprs = append(exprs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("rewrite states: %w", err)
	}
	where := "tenant = '" + tenant + "' AND cityHash64(opportunity_id, toString(now())) % 1000 < " + strconv.Itoa(permille)
	err = st.Conn().Exec(ctx, "INSERT INTO opportunity_state ("+strings.Join(cols, ", ")+") SELECT "+
		strings.Join(exprs, ", ")+" FROM opportunity_state FINAL WHERE "+where)
	if err != nil {
		return 0, fmt.Errorf("rewrite states: %w", err)
	}
	var n uint64
	err = st.Conn().QueryRow(ctx, "SELECT toUInt64(count() - uniqExact(opportunity_id)) FROM opportunity_state WHERE tenant = ?", tenant).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("rewrite states: %w", err)
	}
	return n, nil
}
