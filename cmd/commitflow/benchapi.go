package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/compact"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/prometheus/client_golang/prometheus"
)

// benchAPI loads a generated book of business of the given size (raw events,
// derived events and states, derived in process) into its own database, then
// times every API endpoint over HTTP.
func benchAPI(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench api", flag.ContinueOnError)
	var c config.Common
	c.Register(fs)
	var gc config.GC
	gc.Register(fs)
	n := fs.Int("events", 1_000_000, "raw events to load")
	reqs := fs.Int("requests", 20, "requests per endpoint")
	reuse := fs.Bool("reuse", false, "reuse the data loaded by an earlier run instead of loading again")
	only := fs.String("only", "", "time only the endpoints whose name contains this text, e.g. \"forecast\"")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the timed requests to this file")
	compactFirst := fs.Bool("compact", false, "after --rewrite, compact opportunity_state as run does above --compact-above (OPTIMIZE TABLE ... FINAL), so that no superseded rows are left")
	rewrite := fs.Int("rewrite", 20, "before timing, write this many per thousand opportunities' states again with a newer version, as derivation does for the deals that change: the superseded rows a live table holds until merges drop them")
	if err := config.Parse(ctx, fs, args); err != nil {
		return err
	}
	log := newLogger(c.LogLevel)
	if err := applyGC(gc, log); err != nil {
		return err
	}
	s := &stack{log: log}
	defer s.close()
	if err := s.openStore(ctx, &c); err != nil {
		return err
	}
	db := fmt.Sprintf("commitflow_bench_api_%d", *n)
	dsn, err := withDatabase(s.dsn, db)
	if err != nil {
		return err
	}
	l := ladder.Default()
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if !*reuse {
		if err := s.st.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			return err
		}
	}
	st, err := store.Open(ctx, dsn, store.Options{Logger: log})
	if err != nil {
		return err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return err
	}
	if !*reuse {
		if err := loadBench(ctx, st, l, *n, end); err != nil {
			return err
		}
	}

	if *rewrite > 0 {
		n, err := rewriteStates(ctx, st, *rewrite)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote states again: the table holds %d superseded rows\n", n)
	}
	if *compactFirst {
		cw, err := compact.New(st.Conn(), compact.Config{Every: time.Hour}, prometheus.NewRegistry(), log)
		if err != nil {
			return err
		}
		if _, err := cw.Once(ctx); err != nil {
			return err
		}
	}
	pin := snapshot.New(st.Conn())
	srv := httptest.NewServer(api.New(api.Config{Open: true, Ladder: l}, metrics.NewWithOptions(st.Conn(), metrics.Options{MaxThreads: runtime.NumCPU(), Pinner: pin}), forecast.NewWithPinner(st.Conn(), pin), log))
	defer srv.Close()
	from, to, asOf := end.AddDate(-1, 0, 0).Format(time.DateOnly), end.Format(time.DateOnly), end.Format(time.DateOnly)
	queries := []struct{ name, query string }{
		{"funnel", "from=" + from + "&to=" + to + "&as_of=" + asOf},
		{"funnel by owner, monthly, 30-day window", "from=" + from + "&to=" + to + "&as_of=" + asOf + "&by=owner&interval=month&window_days=30"},
		{"stalls", "as_of=" + asOf},
		{"missed", "from=" + from + "&to=" + to + "&as_of=" + asOf},
		{"movement", "from=" + end.AddDate(0, -3, 0).Format(time.DateOnly) + "&to=" + to + "&as_of=" + asOf},
		{"forecast", "as_of=" + asOf},
		{"forecast back-test", "as_of=" + asOf + "&backtest=" + end.AddDate(0, -6, 0).Format(time.DateOnly)},
		{"cycle-time", "from=" + from + "&to=" + to + "&as_of=" + asOf},
		{"stage-history", "as_of=" + asOf},
	}
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "endpoint (%d raw events)\tp50 ms\tp95 ms\tmax ms\tKiB\t\n", *n)
	for _, q := range queries {
		if !strings.Contains(q.name, *only) {
			continue
		}
		path := "/v1/" + q.name
		if i := indexSpace(q.name); i > 0 {
			path = "/v1/" + q.name[:i]
		}
		u := srv.URL + path + "?tenant=bench&" + q.query
		var lat []time.Duration
		var size int64
		for i := 0; i < *reqs+1; i++ {
			start := time.Now()
			size, err = get(ctx, u)
			if err != nil {
				return fmt.Errorf("%s: %w", q.name, err)
			}
			if i > 0 { // the first request warms caches
				lat = append(lat, time.Since(start))
			}
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.0f\t%d\t\n", q.name, ms(lat[len(lat)/2]), ms(lat[min(len(lat)-1, len(lat)*95/100)]), ms(lat[len(lat)-1]), size>>10)
	}
	return tw.Flush()
}

func indexSpace(s string) int {
	for i, r := range s {
		if r == ' ' {
			return i
		}
	}
	return -1
}

// get fetches u and returns the size of the answer's body. The body is
// read and discarded, not kept: collecting a 22 MiB answer with io.ReadAll
// cost the benchmark process (which also serves the request) more CPU than
// encoding it.
func get(ctx context.Context, u string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return 0, fmt.Errorf("%s: %s", resp.Status, msg)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, err
	}
	return n, nil
}

// loadBench generates n raw events for tenant "bench", derives them in
// process one opportunity at a time and stores raw events, derived events
// and states in batches.
func loadBench(ctx context.Context, st *store.Store, l *ladder.Ladder, n int, end time.Time) error {
	pr := newProgress(2 * time.Second)
	var (
		raw     []store.RawEvent
		derived []store.DerivedRow
		states  []store.StateRow
		cur     []event.Event
		total   int
	)
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
		pr.report(force, "loaded %d/%d raw events", total, n)
		return nil
	}
	deriveCur := func() error {
		if len(cur) == 0 || cur[0].OpportunityID == "" {
			cur = cur[:0]
			return nil
		}
		out := derive.Derive("bench", cur[0].OpportunityID, cur, l, now)
		for _, d := range out {
			derived = append(derived, store.DerivedRow{Derived: d, Version: 1})
		}
		state := derive.Summarize(out, l.Len())
		state.Tenant, state.OpportunityID = "bench", cur[0].OpportunityID
		states = append(states, store.StateRow{State: state, Version: 1})
		cur = cur[:0]
		return flush(false)
	}
	errEnough := errors.New("enough")
	cfg := gen.Config{Seed: 1, Opportunities: n/20 + 1, Tenant: "bench", End: end}
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
		data, err := event.Marshal(ev)
		if err != nil {
			return err
		}
		raw = append(raw, store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source, EventID: ev.ID,
			Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: uint64(total), Payload: data})
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
	fmt.Fprintf(os.Stderr, "loaded %d raw events\n", total)
	return nil
}

// rewriteStates writes the states of permille per thousand of the bench
// tenant's opportunities again, unchanged but for a newer version, and
// returns how many superseded rows the table holds then (more than one
// run's if merges have not dropped the earlier ones yet).
func rewriteStates(ctx context.Context, st *store.Store, permille int) (uint64, error) {
	rows, err := st.Conn().Query(ctx, `SELECT name FROM system.columns
WHERE database = currentDatabase() AND table = 'opportunity_state' AND default_kind = ''`)
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
	where := "tenant = 'bench' AND cityHash64(opportunity_id, toString(now())) % 1000 < " + strconv.Itoa(permille)
	err = st.Conn().Exec(ctx, "INSERT INTO opportunity_state ("+strings.Join(cols, ", ")+") SELECT "+
		strings.Join(exprs, ", ")+" FROM opportunity_state FINAL WHERE "+where)
	if err != nil {
		return 0, fmt.Errorf("rewrite states: %w", err)
	}
	var n uint64
	err = st.Conn().QueryRow(ctx, "SELECT toUInt64(count() - uniqExact(opportunity_id)) FROM opportunity_state WHERE tenant = 'bench'").Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("rewrite states: %w", err)
	}
	return n, nil
}
