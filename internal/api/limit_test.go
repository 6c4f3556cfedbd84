package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metricValue reads a gauge or counter from reg; labels are name, value
// pairs the series must carry.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if have[labels[i]] != labels[i+1] {
					continue series
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// answer is one response, timed.
type answer struct {
	path string
	code int
	h    http.Header
	raw  string
	took time.Duration
}

// fetch is get from a goroutine: errors become a code of 0.
func fetch(ctx context.Context, srv *httptest.Server, path, token string) answer {
	start := time.Now()
	a := answer{path: path}
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
	if err != nil {
		a.raw = err.Error()
		return a
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := srv.Client().Do(req)
	if err != nil {
		a.raw = err.Error()
		return a
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.raw = err.Error()
		return a
	}
	a.code, a.h, a.raw, a.took = resp.StatusCode, resp.Header, fittedAt.ReplaceAllString(string(body), `"fitted_at":"(when)"`), time.Since(start)
	return a
}

// fittedAt matches a forecast model's fitted_at, which fetch replaces: it
// is when the computation that answered ran.
var fittedAt = regexp.MustCompile(`"fitted_at":"[^"]*"`)

// checkBusy checks that a is the API's 503 for a busy server.
func checkBusy(t *testing.T, a answer) {
	t.Helper()
	if a.code != http.StatusServiceUnavailable {
		t.Errorf("GET %s: %d %s, want 503", a.path, a.code, a.raw)
		return
	}
	if a.h.Get("Retry-After") != "2" {
		t.Errorf("GET %s: 503 with Retry-After %q, want 2", a.path, a.h.Get("Retry-After"))
	}
	if a.h.Get("Content-Type") != "application/json" || !strings.HasPrefix(a.raw, `{"error":"server busy: `) {
		t.Errorf("GET %s: 503 body %q, want the API's JSON error", a.path, a.raw)
	}
}

// TestBusyAnswers503: with every query slot taken and the queue full, a
// report is refused at once with 503 and Retry-After; one that waits
// longer than the queue timeout too; the reports that got a slot answer
// correctly; probes and the ladder are never held back.
func TestBusyAnswers503(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	plain := httptest.NewServer(f.handler(Config{}))
	defer plain.Close()
	const path = "/v1/stalls?as_of=2024-07-01"
	want := map[string]string{}
	for _, token := range []string{tokenAcme, tokenGlobex} {
		a := fetch(ctx, plain, path, token)
		if a.code != 200 {
			t.Fatalf("GET %s: %d %s", path, a.code, a.raw)
		}
		want[token] = a.raw
	}

	gate := make(chan struct{})
	entered := make(chan struct{}, 100)
	hold := func(ctx context.Context) {
		entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(f.handler(Config{Registry: reg, MaxConcurrent: 1, MaxQueued: 1, QueueTimeout: time.Minute, Hold: hold}))
	defer srv.Close()

	// A takes the only slot, B the only place in the queue.
	type heldAnswer struct {
		token string
		answer
	}
	held := make(chan heldAnswer, 2)
	go func() { held <- heldAnswer{tokenAcme, fetch(ctx, srv, path, tokenAcme)} }()
	<-entered
	go func() { held <- heldAnswer{tokenGlobex, fetch(ctx, srv, path, tokenGlobex)} }()
	waitFor(t, "one report queued", func() bool { return metricValue(t, reg, "commitflow_http_reports_queued") == 1 })

	// The others are refused at once: the queue is full.
	var wg sync.WaitGroup
	rejected := make([]answer, 8)
	for i := range rejected {
		wg.Go(func() { rejected[i] = fetch(ctx, srv, path, tokenAcme) })
	}
	wg.Wait()
	for _, a := range rejected {
		checkBusy(t, a)
		if a.took > 2*time.Second {
			t.Errorf("a refused report took %s", a.took)
		}
	}

	// Probes, the ladder, the dashboard and bad requests are not queued.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/v1/ladder", "/", "/v1/stalls?page=0"} {
		a := fetch(ctx, srv, p, tokenAcme)
		if a.code == 503 || a.code == 0 || a.took > time.Second {
			t.Errorf("GET %s while busy: %d in %s", p, a.code, a.took)
		}
	}
	if n := metricValue(t, reg, "commitflow_http_reports_in_flight"); n != 1 {
		t.Errorf("in flight %v, want 1", n)
	}
	if n := metricValue(t, reg, "commitflow_http_reports_rejected_total", "reason", "queue_full"); n != 8 {
		t.Errorf("rejected (queue_full) %v, want 8", n)
	}

	// Freed, A and B answer, and correctly.
	close(gate)
	for range 2 {
		a := <-held
		if a.code != 200 || a.raw != want[a.token] {
			t.Errorf("a held report answered %d\n%s\nwant\n%s", a.code, a.raw, want[a.token])
		}
	}
	waitFor(t, "no report in flight or queued", func() bool {
		return metricValue(t, reg, "commitflow_http_reports_in_flight") == 0 && metricValue(t, reg, "commitflow_http_reports_queued") == 0
	})
	if a := fetch(ctx, srv, path, tokenAcme); a.code != 200 || a.raw != want[tokenAcme] {
		t.Errorf("after the load: %d %s", a.code, a.raw)
	}
}

// TestQueueTimeout: a report that waits for a slot longer than the queue
// timeout is answered 503, as soon as the timeout passes; a client that
// gives up while queued leaves the queue.
func TestQueueTimeout(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	gate := make(chan struct{})
	entered := make(chan struct{}, 100)
	hold := func(ctx context.Context) {
		entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	reg := prometheus.NewRegistry()
	const queueTimeout = 300 * time.Millisecond
	srv := httptest.NewServer(f.handler(Config{Registry: reg, MaxConcurrent: 1, MaxQueued: 1, QueueTimeout: queueTimeout, Hold: hold}))
	defer srv.Close()
	const path = "/v1/missed?" + period

	held := make(chan answer, 1)
	go func() { held <- fetch(ctx, srv, path, tokenAcme) }()
	<-entered

	a := fetch(ctx, srv, path, tokenAcme)
	checkBusy(t, a)
	if a.took < queueTimeout || a.took > queueTimeout+2*time.Second {
		t.Errorf("a report queued behind a held slot answered after %s, want just past %s", a.took, queueTimeout)
	}
	if n := metricValue(t, reg, "commitflow_http_reports_rejected_total", "reason", "queue_timeout"); n != 1 {
		t.Errorf("rejected (queue_timeout) %v, want 1", n)
	}

	// A client that gives up while queued frees its place.
	cctx, cancel := context.WithCancel(ctx)
	gone := make(chan answer, 1)
	go func() { gone <- fetch(cctx, srv, path, tokenAcme) }()
	waitFor(t, "one report queued", func() bool { return metricValue(t, reg, "commitflow_http_reports_queued") == 1 })
	cancel()
	<-gone
	waitFor(t, "the queue empty", func() bool { return metricValue(t, reg, "commitflow_http_reports_queued") == 0 })

	close(gate)
	if a := <-held; a.code != 200 {
		t.Errorf("the held report: %d %s", a.code, a.raw)
	}
}

type startKey struct{}

// TestConcurrentLoad: many clients at once against one query slot and a
// queue of one. Every answer is either right (200, the same as unloaded)
// or a 503 with Retry-After; no report waited for its slot longer than the
// queue timeout.
func TestConcurrentLoad(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	paths := []string{
		"/v1/funnel?" + period,
		"/v1/stalls?as_of=2024-07-01",
		"/v1/missed?" + period,
		"/v1/movement?" + period,
		"/v1/forecast?as_of=2024-07-01&draws=100",
	}
	plain := httptest.NewServer(f.handler(Config{}))
	defer plain.Close()
	want := map[string]string{}
	for _, p := range paths {
		a := fetch(ctx, plain, p, tokenAcme)
		if a.code != 200 {
			t.Fatalf("GET %s: %d %s", p, a.code, a.raw)
		}
		want[p] = a.raw
	}

	const queueTimeout = 3 * time.Second
	var mu sync.Mutex
	var maxWait time.Duration
	hold := func(ctx context.Context) {
		waited := time.Since(ctx.Value(startKey{}).(time.Time))
		mu.Lock()
		maxWait = max(maxWait, waited)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // a slow report
	}
	reg := prometheus.NewRegistry()
	h := f.handler(Config{Registry: reg, MaxConcurrent: 1, MaxQueued: 1, QueueTimeout: queueTimeout, Hold: hold})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), startKey{}, time.Now())))
	}))
	defer srv.Close()

	const clients = 40
	answers := make([]answer, clients)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i] = fetch(ctx, srv, paths[i%len(paths)], tokenAcme) })
		time.Sleep(10 * time.Millisecond) // arrivals over 400 ms
	}
	// The liveness probe answers at once throughout.
	for range 5 {
		if a := fetch(ctx, srv, "/healthz", ""); a.code != 200 || a.took > time.Second {
			t.Errorf("/healthz under load: %d in %s", a.code, a.took)
		}
	}
	wg.Wait()

	var ok, busy int
	for _, a := range answers {
		switch a.code {
		case 200:
			ok++
			if a.raw != want[a.path] {
				t.Errorf("GET %s under load answered\n%s\nwant\n%s", a.path, a.raw, want[a.path])
			}
		case 503:
			busy++
			checkBusy(t, a)
			if a.took > queueTimeout+2*time.Second {
				t.Errorf("GET %s: 503 after %s", a.path, a.took)
			}
		default:
			t.Errorf("GET %s under load: %d %s", a.path, a.code, a.raw)
		}
	}
	t.Logf("%d clients: %d answered, %d busy; longest wait for a slot %s", clients, ok, busy, maxWait)
	if ok < 2 || busy == 0 {
		t.Errorf("%d answered and %d busy, want at least 2 and 1", ok, busy)
	}
	if maxWait > queueTimeout+250*time.Millisecond {
		t.Errorf("a report waited %s for its slot, past the queue timeout %s", maxWait, queueTimeout)
	}
	rej := metricValue(t, reg, "commitflow_http_reports_rejected_total", "reason", "queue_full") +
		metricValue(t, reg, "commitflow_http_reports_rejected_total", "reason", "queue_timeout")
	if int(rej) != busy {
		t.Errorf("rejected_total %v, %d answers 503", rej, busy)
	}
}

func TestLimiterConfig(t *testing.T) {
	logger := slog.New(slog.DiscardHandler)
	tests := []struct {
		cfg     Config
		slots   int
		queued  int64
		timeout time.Duration
	}{
		{Config{}, DefaultMaxConcurrent(), DefaultMaxQueued, DefaultQueueTimeout},
		{Config{MaxConcurrent: 3, MaxQueued: 5, QueueTimeout: time.Second}, 3, 5, time.Second},
		{Config{MaxConcurrent: 1, MaxQueued: -1}, 1, 0, DefaultQueueTimeout},
	}
	for _, tt := range tests {
		l := newLimiter(tt.cfg, prometheus.NewRegistry(), logger)
		if cap(l.slots) != tt.slots || l.maxQueued != tt.queued || l.timeout != tt.timeout {
			t.Errorf("%+v: %d slots, %d queued, %s; want %d, %d, %s", tt.cfg, cap(l.slots), l.maxQueued, l.timeout, tt.slots, tt.queued, tt.timeout)
		}
	}
	// Without a queue, a report is refused at once while the slot is taken.
	l := newLimiter(Config{MaxConcurrent: 1, MaxQueued: -1}, prometheus.NewRegistry(), logger)
	release, err := l.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var be *busyError
	if _, err := l.acquire(context.Background()); !errors.As(err, &be) {
		t.Errorf("no queue, slot taken: %v, want busy", err)
	}
	release()
	release, err = l.acquire(context.Background())
	if err != nil {
		t.Errorf("slot given back: %v", err)
	} else {
		release()
	}
}
