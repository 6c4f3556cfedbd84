package tenantcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/timetest"
)

// key names a test value: tenant and name.
type key struct{ tenant, name string }

func newTestCache(capacity int64) (*Cache[key, string], *timetest.Clock) {
	clk := timetest.NewClock(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	c := New[key, string](Options{Name: "test cache", Capacity: capacity, MaxAge: time.Hour, Now: clk.Now,
		Metrics: Metrics{Prefix: "test_cache", Values: "values", SizeUnit: "bytes"}})
	return c, clk
}

// counter is a compute function that gives "<name>#<n>", n counting its
// calls.
type counter struct {
	name  string
	calls atomic.Int64
}

func (k *counter) compute(ctx context.Context) (string, error) {
	return fmt.Sprintf("%s#%d", k.name, k.calls.Add(1)), nil
}

// keepFor stores a value of size 1 with expiry expires (zero: none).
func keepFor(k key, expires time.Time) func(Computed[key, string]) (Entry[key], bool) {
	return func(Computed[key, string]) (Entry[key], bool) {
		return Entry[key]{Key: k, Size: 1, Expires: expires}, true
	}
}

func do(t *testing.T, c *Cache[key, string], r Request[key, string]) (string, Outcome) {
	t.Helper()
	if r.Tenant == "" {
		r.Tenant = r.Key.tenant
	}
	v, o, err := c.Do(context.Background(), r)
	if err != nil {
		t.Fatalf("Do %+v: %v", r.Key, err)
	}
	return v, o
}

// TestInvalidation: a stored value is served until its tenant's data
// changes; another tenant's change leaves it; ChangedAll ends every one;
// none outlives its expiry or MaxAge.
func TestInvalidation(t *testing.T) {
	c, clk := newTestCache(100)
	a, b := key{"acme", "a"}, key{"globex", "b"}
	fa, fb := &counter{name: "a"}, &counter{name: "b"}
	var aExpires time.Time
	ra := Request[key, string]{Key: a, Compute: fa.compute, Keep: func(cv Computed[key, string]) (Entry[key], bool) {
		return keepFor(a, aExpires)(cv)
	}}
	rb := Request[key, string]{Key: b, Compute: fb.compute, Keep: keepFor(b, time.Time{})}
	for i, st := range []struct {
		do      func()
		r       Request[key, string]
		value   string
		outcome Outcome
	}{
		{nil, ra, "a#1", Miss},
		{nil, ra, "a#1", Hit},
		{nil, rb, "b#1", Miss},
		{func() { c.Changed("globex") }, ra, "a#1", Hit},
		{nil, rb, "b#2", Miss},
		{func() { c.Changed("acme") }, ra, "a#2", Miss},
		{func() { clk.Add(59 * time.Minute) }, ra, "a#2", Hit},
		{func() { clk.Add(time.Minute) }, ra, "a#3", Miss}, // MaxAge
		{func() { c.ChangedAll() }, ra, "a#4", Miss},
		{nil, rb, "b#3", Miss},
		{func() {
			aExpires = clk.Now().Add(time.Minute)
			c.Changed("acme")
		}, ra, "a#5", Miss},
		{func() { clk.Add(59 * time.Second) }, ra, "a#5", Hit},
		{func() { clk.Add(time.Second) }, ra, "a#6", Miss}, // expired
	} {
		if st.do != nil {
			st.do()
		}
		v, o := do(t, c, st.r)
		if v != st.value || o != st.outcome {
			t.Errorf("step %d: %s %s, want %s %s", i, v, o, st.value, st.outcome)
		}
	}
	if n := c.Changes("acme"); n != 2 {
		t.Errorf("Changes(acme) = %d, want 2", n)
	}
}

// TestChangeDuringFlight: a value whose computation began before its
// tenant's data changed goes to its callers but is not stored; Keep is not
// asked.
func TestChangeDuringFlight(t *testing.T) {
	c, _ := newTestCache(100)
	k := key{"acme", "a"}
	f := &counter{name: "a"}
	v, _ := do(t, c, Request[key, string]{Key: k, Keep: func(Computed[key, string]) (Entry[key], bool) {
		t.Error("Keep asked after a change")
		return Entry[key]{}, false
	}, Compute: func(ctx context.Context) (string, error) {
		c.Changed("acme")
		return f.compute(ctx)
	}})
	if v != "a#1" {
		t.Fatalf("got %s", v)
	}
	if v, o := do(t, c, Request[key, string]{Key: k, Compute: f.compute, Keep: keepFor(k, time.Time{})}); v != "a#2" || o != Miss {
		t.Errorf("after a change during the flight: %s %s, want a#2 miss", v, o)
	}
}

// TestLookupAndKeep: Lookup finds values under other keys than the
// request's, Keep stores under another key and sees what is stored, and
// Began and Changed are the cache's clock readings.
func TestLookupAndKeep(t *testing.T) {
	c, clk := newTestCache(100)
	exact, open := key{"acme", "exact"}, key{"acme", "open"}
	changedAt := clk.Now()
	c.Changed("acme")
	clk.Add(time.Minute)
	var kept []Computed[key, string]
	r := Request[key, string]{
		Key: exact,
		Lookup: func(get func(key) (string, bool)) (string, bool) {
			if v, ok := get(exact); ok {
				return v, true
			}
			return get(open)
		},
		Compute: (&counter{name: "v"}).compute,
		Keep: func(cv Computed[key, string]) (Entry[key], bool) {
			kept = append(kept, cv)
			if _, ok := cv.Stored(open); ok {
				return Entry[key]{}, false
			}
			return Entry[key]{Key: open, Size: 1}, true
		},
	}
	if v, o := do(t, c, r); v != "v#1" || o != Miss {
		t.Errorf("first: %s %s", v, o)
	}
	if v, o := do(t, c, r); v != "v#1" || o != Hit {
		t.Errorf("second, found under the other key: %s %s", v, o)
	}
	if len(kept) != 1 || !kept[0].Began.Equal(clk.Now()) || !kept[0].Changed.Equal(changedAt) || kept[0].Value != "v#1" {
		t.Errorf("Keep saw %+v, want began %v, changed %v", kept, clk.Now(), changedAt)
	}
}

// TestSingleFlight: identical requests in flight are computed once and all
// get the value; a first caller that goes away does not cancel the others;
// when every caller has gone the computation is cancelled; errors are
// shared, not stored.
func TestSingleFlight(t *testing.T) {
	c, _ := newTestCache(0) // stores nothing: single-flight alone
	reg := prometheus.NewRegistry()
	if err := c.Instrument(reg); err != nil {
		t.Fatal(err)
	}
	k := key{"acme", "forecast"}
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	r := Request[key, string]{Key: k, Tenant: "acme", Keep: keepFor(k, time.Time{}), Compute: func(ctx context.Context) (string, error) {
		calls.Add(1)
		close(started)
		select {
		case <-release:
			return "value", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}}
	firstCtx, cancelFirst := context.WithCancel(context.Background())
	firstErr := make(chan error, 1)
	go func() {
		_, _, err := c.Do(firstCtx, r)
		firstErr <- err
	}()
	<-started
	const others = 20
	var wg sync.WaitGroup
	values := make([]string, others)
	outcomes := make([]Outcome, others)
	for i := range others {
		wg.Go(func() {
			v, o, err := c.Do(context.Background(), r)
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
			values[i], outcomes[i] = v, o
		})
	}
	timetest.WaitFor(t, "the other callers waiting on the flight", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, f := range c.flights {
			return f.waiters == others+1
		}
		return false
	})
	if n := testutil.ToFloat64(c.requests.WithLabelValues("shared")); n != others {
		t.Errorf("%v requests counted shared, want %d", n, others)
	}
	cancelFirst()
	if err := <-firstErr; !errors.Is(err, context.Canceled) {
		t.Errorf("the first caller, gone: %v", err)
	}
	close(release)
	wg.Wait()
	for i := range others {
		if values[i] != "value" || outcomes[i] != Shared {
			t.Errorf("caller %d: %q %s", i, values[i], outcomes[i])
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("computed %d times, want 1", n)
	}
	if n, _ := c.Len(); n != 0 {
		t.Errorf("a cache of capacity 0 stored %d values", n)
	}

	// Every caller gone: the computation is cancelled, and the next
	// caller starts a new one.
	cancelled := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		c.Do(ctx, Request[key, string]{Key: k, Tenant: "acme", Keep: r.Keep, Compute: func(ctx context.Context) (string, error) {
			cancel()
			<-ctx.Done()
			close(cancelled)
			return "", ctx.Err()
		}})
	}()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("the computation of callers that all went away was not cancelled")
	}
	boom := errors.New("boom")
	if _, _, err := c.Do(context.Background(), Request[key, string]{Key: k, Tenant: "acme", Keep: r.Keep, Compute: func(context.Context) (string, error) { return "", boom }}); !errors.Is(err, boom) {
		t.Errorf("error: %v", err)
	}
	if v, o := do(t, c, Request[key, string]{Key: k, Keep: r.Keep, Compute: (&counter{name: "b"}).compute}); v != "b#1" || o != Miss {
		t.Errorf("after an error: %s %s", v, o)
	}
}

// TestEvicts: the stored values' sizes stay within Capacity, the least
// recently used evicted first; a value larger than Capacity is given but
// not stored; a value stored again under its key replaces the old one
// without an eviction.
func TestEvicts(t *testing.T) {
	c, _ := newTestCache(10)
	req := func(i int, size int64) Request[key, string] {
		k := key{"acme", fmt.Sprint(i)}
		return Request[key, string]{Key: k, Compute: (&counter{name: k.name}).compute,
			Keep: func(Computed[key, string]) (Entry[key], bool) { return Entry[key]{Key: k, Size: size}, true }}
	}
	for i := range 20 {
		do(t, c, req(i, 3))
		do(t, c, req(0, 3)) // 0 stays the most recently used
	}
	n, size := c.Len()
	if n != 3 || size != 9 {
		t.Errorf("%d values of size %d stored, want 3 of 9", n, size)
	}
	if testutil.ToFloat64(c.evictions) != 20-3 {
		t.Errorf("evictions %v, want %d", testutil.ToFloat64(c.evictions), 20-3)
	}
	if _, o := do(t, c, req(0, 3)); o != Hit {
		t.Errorf("the most recently used value: %s, want hit", o)
	}
	if _, o := do(t, c, req(17, 3)); o != Miss {
		t.Errorf("the least recently used value: %s, want miss (evicted)", o)
	}
	do(t, c, req(99, 11))
	if _, o := do(t, c, req(99, 11)); o != Miss {
		t.Errorf("a value larger than the cache: %s, want miss (not stored)", o)
	}
	// A stale value stored anew under its key: no eviction.
	c.Changed("acme")
	before := testutil.ToFloat64(c.evictions)
	do(t, c, req(0, 3))
	if n, _ := c.Len(); n != 3 || testutil.ToFloat64(c.evictions) != before {
		t.Errorf("after storing a stale key anew: %d values, %v evictions, want 3, %v", n, testutil.ToFloat64(c.evictions), before)
	}
}

// TestFollow: a message on a tenant's derived subject is signalled with
// its tenant, type token and body.
func TestFollow(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, _ := bustest.Connect(t, bustest.Server(t).ClientURL())
	c, _ := newTestCache(100)
	got := make(chan string, 4)
	if err := c.Follow(ctx, nc, func(tenant, token string, body []byte) {
		got <- tenant + " " + token + " " + string(body)
	}); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{bus.DerivedPrefix + "glo.bex.commitment_made", bus.DerivedPrefix + "x"} {
		if err := nc.Publish(subject, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Publish(bus.DerivedPrefix+"acme.deal_closed", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"glo.bex commitment_made {}", "acme deal_closed {}"} {
		select {
		case s := <-got:
			if s != want {
				t.Errorf("signalled %q, want %q", s, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("timed out")
		}
	}
}

func TestDerivedSubject(t *testing.T) {
	for _, tc := range []struct {
		subject, tenant, token string
		ok                     bool
	}{
		{"cf.derived.acme.deal_closed", "acme", "deal_closed", true},
		{"cf.derived.glo.bex.x", "glo.bex", "x", true},
		{"cf.derived.x", "", "", false},
		{"cf.events.acme.x", "", "", false},
	} {
		tenant, token, ok := DerivedSubject(tc.subject)
		if tenant != tc.tenant || token != tc.token || ok != tc.ok {
			t.Errorf("DerivedSubject(%s) = %q %q %v, want %q %q %v", tc.subject, tenant, token, ok, tc.tenant, tc.token, tc.ok)
		}
	}
}
