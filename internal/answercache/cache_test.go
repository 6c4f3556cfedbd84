package answercache

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/commitflow/commitflow/internal/bus"
)

// clock is a settable time for the tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestCache(o Options) (*Cache, *clock) {
	c := New(o)
	clk := &clock{t: time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)}
	c.now = clk.now
	return c, clk
}

// counter is a compute function that answers "<name>#<n>", n counting its
// calls.
type counter struct {
	name  string
	calls atomic.Int64
}

func (k *counter) compute(ctx context.Context) ([]byte, error) {
	return fmt.Appendf(nil, "%s#%d", k.name, k.calls.Add(1)), nil
}

func do(t *testing.T, c *Cache, k Key, compute func(context.Context) ([]byte, error)) (string, Outcome) {
	t.Helper()
	a, o, err := c.Do(context.Background(), k, compute)
	if err != nil {
		t.Fatalf("Do %+v: %v", k, err)
	}
	return string(a.Body), o
}

// TestCacheInvalidation: a stored answer is served until its tenant's data
// changes, as of the past or not; another tenant's change leaves it; an
// answer without as_of ages out; one computed just after a change lives
// only until the change has settled; none outlives MaxAge.
func TestCacheInvalidation(t *testing.T) {
	c, clk := newTestCache(Options{MaxBytes: 1 << 20, Settle: 10 * time.Second, NowMaxAge: time.Minute, MaxAge: time.Hour})
	past := Key{Endpoint: "funnel", Tenant: "acme", Query: "as_of=2024-01-01", Ladder: "v1"}
	now := Key{Endpoint: "stalls", Tenant: "acme", Ladder: "v1", Now: true}
	fp, fn := &counter{name: "past"}, &counter{name: "now"}
	steps := []struct {
		do         func()
		key        Key
		f          *counter
		body       string
		wantOutome Outcome
	}{
		{nil, past, fp, "past#1", Miss},
		{nil, past, fp, "past#1", Hit},
		{func() { c.Changed("globex") }, past, fp, "past#1", Hit},
		// computed right after the change: kept until the change settled
		{func() { clk.add(time.Minute); c.Changed("acme") }, past, fp, "past#2", Miss},
		{func() { clk.add(9 * time.Second) }, past, fp, "past#2", Hit},
		{func() { clk.add(time.Second) }, past, fp, "past#3", Miss},
		{func() { clk.add(30 * time.Minute) }, past, fp, "past#3", Hit},
		{func() { clk.add(30 * time.Minute) }, past, fp, "past#4", Miss},
		{nil, now, fn, "now#1", Miss},
		{func() { clk.add(59 * time.Second) }, now, fn, "now#1", Hit},
		{func() { clk.add(time.Second) }, now, fn, "now#2", Miss},
		{func() { c.ChangedAll() }, past, fp, "past#5", Miss},
	}
	for i, st := range steps {
		if st.do != nil {
			st.do()
		}
		body, o := do(t, c, st.key, st.f.compute)
		if body != st.body || o != st.wantOutome {
			t.Errorf("step %d: %s %s, want %s %s", i, body, o, st.body, st.wantOutome)
		}
	}
}

// TestCacheChangeDuringFlight: an answer whose computation began before its
// tenant's data changed goes to its callers but is not stored.
func TestCacheChangeDuringFlight(t *testing.T) {
	c, _ := newTestCache(Options{MaxBytes: 1 << 20})
	k := Key{Endpoint: "funnel", Tenant: "acme", Query: "as_of=2024-01-01"}
	f := &counter{name: "a"}
	body, _ := do(t, c, k, func(ctx context.Context) ([]byte, error) {
		c.Changed("acme")
		return f.compute(ctx)
	})
	if body != "a#1" {
		t.Fatalf("got %s", body)
	}
	if body, o := do(t, c, k, f.compute); body != "a#2" || o != Miss {
		t.Errorf("after a change during the flight: %s %s, want a#2 miss", body, o)
	}
}

// TestFlightShared: identical requests in flight are computed once and all
// get the answer; a first caller that goes away does not cancel the
// others; when every caller has gone the computation is cancelled; errors
// are shared, not stored.
func TestFlightShared(t *testing.T) {
	c, _ := newTestCache(Options{}) // stores nothing: single-flight alone
	reg := prometheus.NewRegistry()
	if err := c.Instrument(reg); err != nil {
		t.Fatal(err)
	}
	k := Key{Endpoint: "forecast", Tenant: "acme"}
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	compute := func(ctx context.Context) ([]byte, error) {
		calls.Add(1)
		close(started)
		select {
		case <-release:
			return []byte("answer"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, _, err := c.Do(firstCtx, k, compute)
		firstErr <- err
	}()
	<-started
	const others = 20
	var wg sync.WaitGroup
	bodies := make([]string, others)
	outcomes := make([]Outcome, others)
	for i := range others {
		wg.Go(func() {
			a, o, err := c.Do(context.Background(), k, compute)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
			bodies[i], outcomes[i] = string(a.Body), o
		})
	}
	waitFor(t, func() bool { return value(c.requests.WithLabelValues("shared")) == others })
	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Errorf("the first caller, gone: %v", err)
	}
	close(release)
	wg.Wait()
	for i := range others {
		if bodies[i] != "answer" || outcomes[i] != Shared {
			t.Errorf("caller %d: %q %s", i, bodies[i], outcomes[i])
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("computed %d times, want 1", n)
	}
	if n, _ := c.Len(); n != 0 {
		t.Errorf("a cache of 0 bytes stored %d answers", n)
	}

	// Every caller gone: the computation is cancelled, and the next
	// caller starts a new one.
	cancelled := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		c.Do(ctx, k, func(ctx context.Context) ([]byte, error) {
			cancel()
			<-ctx.Done()
			close(cancelled)
			return nil, ctx.Err()
		})
	}()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the computation of callers that all went away was not cancelled")
	}
	boom := errors.New("boom")
	if _, _, err := c.Do(context.Background(), k, func(context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("error: %v", err)
	}
	if body, o := do(t, c, k, (&counter{name: "b"}).compute); body != "b#1" || o != Miss {
		t.Errorf("after an error: %s %s", body, o)
	}
}

// TestCacheEvicts: the stored answers stay within MaxBytes, the least
// recently used evicted first; an answer too large for the cache is served
// but not stored.
func TestCacheEvicts(t *testing.T) {
	c, _ := newTestCache(Options{MaxBytes: 8 * 1000})
	body := func(n int) func(context.Context) ([]byte, error) {
		return func(context.Context) ([]byte, error) { return make([]byte, n), nil }
	}
	key := func(i int) Key { return Key{Endpoint: "funnel", Tenant: "acme", Query: fmt.Sprint("q=", i)} }
	for i := range 20 {
		do(t, c, key(i), body(500))
		do(t, c, key(0), body(500)) // 0 stays the most recently used
	}
	n, bytes := c.Len()
	if bytes > 8000 || n == 0 || n >= 20 {
		t.Errorf("%d answers of %d bytes stored, want some, within 8000", n, bytes)
	}
	if value(c.evictions) != float64(20-n) {
		t.Errorf("evictions %v, want %d", value(c.evictions), 20-n)
	}
	if _, o := do(t, c, key(0), body(500)); o != Hit {
		t.Errorf("the most recently used answer: %s, want hit", o)
	}
	if _, o := do(t, c, key(1), body(500)); o != Miss {
		t.Errorf("the least recently used answer: %s, want miss (evicted)", o)
	}
	do(t, c, key(99), body(2000))
	if _, o := do(t, c, key(99), body(2000)); o != Miss {
		t.Errorf("an answer of a quarter of the cache: %s, want miss (not stored)", o)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"to=2025-01-01&from=2024-01-01", "from=2024-01-01&to=2025-01-01"},
		{"from=2024-01-01&tenant=acme&by=&to=2025-01-01", "from=2024-01-01&to=2025-01-01"},
		{"by=owner,team", "by=owner%2Cteam"},
	}
	for _, tt := range tests {
		v, err := url.ParseQuery(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := Normalize(v, "tenant"); got != tt.want {
			t.Errorf("Normalize(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestCacheFollow: a message on a tenant's derived subject makes that
// tenant's answers stale, and only that tenant's.
func TestCacheFollow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	emb, err := bus.StartEmbedded(ctx, t.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	nc, err := nats.Connect(emb.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c := New(Options{MaxBytes: 1 << 20})
	if err := Follow(ctx, nc, c); err != nil {
		t.Fatal(err)
	}
	acme, globex := Key{Endpoint: "funnel", Tenant: "acme"}, Key{Endpoint: "funnel", Tenant: "glo.bex"}
	fa, fg := &counter{name: "acme"}, &counter{name: "globex"}
	do(t, c, acme, fa.compute)
	do(t, c, globex, fg.compute)
	if err := nc.Publish(bus.DerivedPrefix+"acme.commitment_made", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.tenants["acme"] != nil
	})
	if body, o := do(t, c, acme, fa.compute); body != "acme#2" || o != Miss {
		t.Errorf("acme after its change: %s %s", body, o)
	}
	if body, o := do(t, c, globex, fg.compute); body != "globex#1" || o != Hit {
		t.Errorf("globex after acme's change: %s %s", body, o)
	}
	for subject, want := range map[string]string{"cf.derived.acme.x": "acme", "cf.derived.glo.bex.x": "glo.bex", "cf.derived.x": ""} {
		if got, _ := subjectTenant(subject); got != want {
			t.Errorf("subjectTenant(%s) = %q, want %q", subject, got, want)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// value reads a counter.
func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
