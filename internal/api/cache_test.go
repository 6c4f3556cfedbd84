package api

import (
	"context"
	"fmt"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/answercache"
	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
)

// cachedPaths are requests of every metrics endpoint.
var cachedPaths = []string{
	"/v1/funnel?" + period,
	"/v1/funnel?" + period + "&window_days=30&by=owner&interval=month",
	"/v1/stalls?as_of=2024-07-01&page=1&page_size=10",
	"/v1/missed?" + period,
	"/v1/movement?" + period,
	"/v1/cycle-time?" + period + "&from_step=explore",
	"/v1/stage-history?as_of=2024-07-01",
	"/v1/forecast?as_of=2024-07-01&draws=200",
	"/v1/forecast?as_of=2024-07-01&backtest=2024-03-01&horizon_days=90&draws=200",
}

// TestCacheAnswersEqualUncached: with the answer cache, every endpoint
// answers exactly as without it, the second time from the cache; after
// the tenant's data changes and the change is signalled on its derived
// subject, the cache answers the new numbers, never the old, while the
// other tenant's answers stay cached. A change signalled before its rows
// reach ClickHouse (as the derive worker publishes first) shows once the
// change has settled.
func TestCacheAnswersEqualUncached(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, _ := bustest.Connect(t, bustest.Server(t).ClientURL())
	const settle = 500 * time.Millisecond
	cache := answercache.New(answercache.Options{MaxBytes: 16 << 20, Settle: settle})
	if err := answercache.Follow(ctx, nc, cache); err != nil {
		t.Fatal(err)
	}
	plain := httptest.NewServer(f.handler(Config{}))
	defer plain.Close()
	cached := httptest.NewServer(f.handler(Config{Answers: cache}))
	defer cached.Close()

	// compare checks that every path of tenant's token answers through
	// the cache as without it, the first time with outcome first, and
	// returns the answers.
	compare := func(stage, token, first string) map[string]string {
		t.Helper()
		answers := map[string]string{}
		for _, p := range cachedPaths {
			want := fetch(ctx, plain, p, token)
			if want.code != 200 {
				t.Fatalf("%s: GET %s without the cache: %d %s", stage, p, want.code, want.raw)
			}
			for i, outcome := range []string{first, "hit"} {
				a := fetch(ctx, cached, p, token)
				if a.code != 200 || a.raw != want.raw {
					t.Errorf("%s: GET %s through the cache (%d): %d, %s", stage, p, i, a.code, difference(a.raw, want.raw))
				}
				if got := a.h.Get(HeaderCache); got != outcome {
					t.Errorf("%s: GET %s (%d): %s %q, want %q", stage, p, i, HeaderCache, got, outcome)
				}
				if _, err := time.Parse(time.RFC3339, a.h.Get(HeaderComputedAt)); err != nil || a.h.Get("Age") == "" {
					t.Errorf("%s: GET %s: %s %q, Age %q", stage, p, HeaderComputedAt, a.h.Get(HeaderComputedAt), a.h.Get("Age"))
				}
				if a.h.Get("Content-Type") != "application/json" || a.h.Get("Cache-Control") != "no-store" {
					t.Errorf("%s: GET %s: headers %v", stage, p, a.h)
				}
			}
			answers[p] = want.raw
		}
		return answers
	}
	before := compare("before", tokenAcme, "miss")
	compare("before", tokenGlobex, "miss")

	signal := func() {
		t.Helper()
		if err := nc.Publish(bus.DerivedPrefix+"acme.commitment_gained", []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// New deals of acme, one won and one open and stalled: in every
	// answer's period and as of its dates.
	addDeal := func(id string) {
		t.Helper()
		won := opp{"acme", id + "w", "cy", "south", 3000, "2024-01-06", []string{"2024-01-09", "2024-01-25"}, "2024-03-20", "won", "", "2024-02-15"}
		open := opp{"acme", id + "o", "cy", "south", 4000, "2024-01-07", []string{"2024-01-12"}, "", "", "2024-03-05", ""}
		if err := f.st.InsertDerivedWithStates(ctx, append(won.rows(f.l), open.rows(f.l)...), f.l.Len()); err != nil {
			t.Fatal(err)
		}
	}
	addDeal("a-4")
	signal()
	// The signal arrives asynchronously: the first answer after it is
	// new once it has.
	waitFor(t, "the change signal", func() bool {
		return fetch(ctx, cached, cachedPaths[0], tokenAcme).raw != before[cachedPaths[0]]
	})
	time.Sleep(settle) // answers computed while the change settles are not kept past it
	after := compare("after a change", tokenAcme, "miss")
	for _, p := range cachedPaths {
		if after[p] == before[p] {
			t.Errorf("GET %s: the new deal did not change the answer; the test shows nothing", p)
		}
	}
	for _, p := range cachedPaths {
		if a := fetch(ctx, cached, p, tokenGlobex); a.h.Get(HeaderCache) != "hit" {
			t.Errorf("globex's GET %s after acme's change: %s, want hit", p, a.h.Get(HeaderCache))
		}
	}

	// Signal first, rows later: the answer computed in between may be
	// old, but only until the change settled.
	signal()
	time.Sleep(100 * time.Millisecond)
	fetch(ctx, cached, cachedPaths[0], tokenAcme)
	addDeal("a-5")
	time.Sleep(settle)
	want := fetch(ctx, plain, cachedPaths[0], tokenAcme)
	if want.raw == after[cachedPaths[0]] {
		t.Fatal("the second new deal did not change the funnel")
	}
	if a := fetch(ctx, cached, cachedPaths[0], tokenAcme); a.raw != want.raw {
		t.Errorf("a change signalled before its rows were stored, once settled: %s", difference(a.raw, want.raw))
	}
}

// TestFlightComputesOnce: identical reports in flight are computed once,
// holding one query slot, and every request gets the answer; a different
// question is computed apart.
func TestFlightComputesOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	cache := answercache.New(answercache.Options{}) // single-flight only
	if err := cache.Instrument(reg); err != nil {
		t.Fatal(err)
	}
	var computed atomic.Int64
	gate := make(chan struct{})
	hold := func(ctx context.Context) {
		computed.Add(1)
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	srv := httptest.NewServer(f.handler(Config{Registry: reg, Answers: cache, MaxConcurrent: 4, Hold: hold}))
	defer srv.Close()
	plain := httptest.NewServer(f.handler(Config{}))
	defer plain.Close()
	const path = "/v1/missed?" + period
	want := fetch(ctx, plain, path, tokenAcme)

	const clients = 30
	answers := make([]answer, clients)
	var wg sync.WaitGroup
	// The first client goes away while the others wait: they still get
	// the answer.
	first, cancelFirst := context.WithCancel(ctx)
	wg.Go(func() { answers[0] = fetch(first, srv, path, tokenAcme) })
	waitFor(t, "the first computation", func() bool { return computed.Load() == 1 })
	for i := 1; i < clients; i++ {
		wg.Go(func() { answers[i] = fetch(ctx, srv, path, tokenAcme) })
	}
	waitFor(t, "the others waiting", func() bool {
		return metricValue(t, reg, "commitflow_answer_cache_requests_total", "outcome", "shared") == clients-1
	})
	cancelFirst()
	time.Sleep(50 * time.Millisecond)
	close(gate)
	wg.Wait()
	for i, a := range answers[1:] {
		if a.code != 200 || a.raw != want.raw || a.h.Get(HeaderCache) != "shared" {
			t.Errorf("client %d: %d %s %s", i+1, a.code, a.h.Get(HeaderCache), a.raw)
		}
	}
	if n := computed.Load(); n != 1 {
		t.Errorf("%d identical requests computed %d times, want once", clients, n)
	}
	if a := fetch(ctx, srv, "/v1/missed?from=2024-02-01&to=2024-07-01&as_of=2024-07-01", tokenAcme); a.code != 200 || computed.Load() != 2 {
		t.Errorf("another question: %d, computed %d times in all, want 2", a.code, computed.Load())
	}
}

// difference describes where got first differs from want.
func difference(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	start := max(0, i-80)
	return fmt.Sprintf("at byte %d got …%s… want …%s…", i, got[start:min(len(got), i+80)], want[start:min(len(want), i+80)])
}

// TestCacheOpenAPIHeaders: every metrics endpoint documents the headers
// that say when its answer was computed and how it was found.
func TestCacheOpenAPIHeaders(t *testing.T) {
	doc := openAPIDoc(t)
	for _, e := range Endpoints() {
		ok := resolve(t, doc, mapAt(doc, "paths", e.Path, "get", "responses", "200"))
		for _, h := range []string{HeaderComputedAt, "Age", HeaderCache} {
			if resolve(t, doc, mapAt(ok, "headers", h)) == nil {
				t.Errorf("%s: the 200 does not document %s", e.Path, h)
			}
		}
	}
}
