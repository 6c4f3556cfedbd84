package answercache

import (
	"context"
	"fmt"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/promtest"
	"github.com/commitflow/commitflow/internal/timetest"
)

func newTestCache(o Options) (*Cache, *timetest.Clock) {
	c := New(o)
	clk := timetest.NewClock(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	c.now = clk.Now
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
		{func() { clk.Add(time.Minute); c.Changed("acme") }, past, fp, "past#2", Miss},
		{func() { clk.Add(9 * time.Second) }, past, fp, "past#2", Hit},
		{func() { clk.Add(time.Second) }, past, fp, "past#3", Miss},
		{func() { clk.Add(30 * time.Minute) }, past, fp, "past#3", Hit},
		{func() { clk.Add(30 * time.Minute) }, past, fp, "past#4", Miss},
		{nil, now, fn, "now#1", Miss},
		{func() { clk.Add(59 * time.Second) }, now, fn, "now#1", Hit},
		{func() { clk.Add(time.Second) }, now, fn, "now#2", Miss},
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

// TestCacheEvicts: the stored answers' bytes stay within MaxBytes, the
// least recently used evicted first; an answer larger than an eighth of the
// cache is served but not stored. (Single flight, the LRU and invalidation
// are tested with package tenantcache.)
func TestCacheEvicts(t *testing.T) {
	c, _ := newTestCache(Options{MaxBytes: 8 * 1000})
	reg := prometheus.NewRegistry()
	if err := c.Instrument(reg); err != nil {
		t.Fatal(err)
	}
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
	if ev := promtest.Sum(t, reg, "commitflow_answer_cache_evictions_total"); ev != float64(20-n) {
		t.Errorf("evictions %v, want %d", ev, 20-n)
	}
	if b := promtest.Sum(t, reg, "commitflow_answer_cache_bytes"); b != float64(bytes) {
		t.Errorf("commitflow_answer_cache_bytes %v, want %d", b, bytes)
	}
	if hits := promtest.Sum(t, reg, "commitflow_answer_cache_requests_total"); hits != 2*20 {
		t.Errorf("commitflow_answer_cache_requests_total %v, want %d", hits, 2*20)
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
	nc, _ := bustest.Connect(t, bustest.Server(t).ClientURL())
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
	timetest.WaitFor(t, "acme's answer computed anew", func() bool {
		body, _ := do(t, c, acme, fa.compute)
		return body == "acme#2"
	})
	if body, o := do(t, c, globex, fg.compute); body != "globex#1" || o != Hit {
		t.Errorf("globex after acme's change: %s %s", body, o)
	}
}
