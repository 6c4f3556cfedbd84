// Package tenantcache keeps values computed from a tenant's data until that
// data changes, and computes identical requests in flight once: the
// machinery that the API's answer cache (package answercache) and the
// forecast's model cache (forecast.ModelCache) share, each with its own
// policy of what to keep, for how long, and what a value costs.
//
// Every tenant's data has a version: Changed(tenant) starts a new one,
// ChangedAll a new one for every tenant. A value is stored with the version
// current when its computation began, and is fresh while that version is
// current, its expiry (if any) has not passed, and less than MaxAge has
// passed since its computation began. A value whose computation began
// before a change goes to the callers waiting for it but is not stored.
//
// The stored values' sizes (bytes, or 1 each to bound a count) add up to at
// most Capacity, the least recently used evicted first. A Capacity of 0
// stores nothing: requests in flight are still computed once.
//
// Follow feeds the change signals from the derived events' subjects on
// NATS.
package tenantcache

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Cache.
type Options struct {
	// Name names the cache in errors ("answer cache").
	Name string
	// Capacity bounds the sum of the stored values' sizes (see Entry); 0
	// stores none.
	Capacity int64
	// MaxAge bounds the age of every stored value, from when its
	// computation began: what a lost change signal can cost. A value is
	// fresh for less than MaxAge, so 0 keeps none.
	MaxAge time.Duration
	// Now is the cache's clock; nil is time.Now.
	Now func() time.Time
	// Metrics names the cache's metrics.
	Metrics Metrics
}

// Metrics names a cache's metrics: <Prefix>_requests_total{outcome},
// <Prefix>_evictions_total and <Prefix>_<SizeUnit>.
type Metrics struct {
	Prefix string
	// Values is what the cache stores, plural ("answers"), for the help
	// texts.
	Values string
	// SizeUnit is what the sizes count ("bytes").
	SizeUnit string
}

// Outcome says how Do answered.
type Outcome string

// The outcomes of Do.
const (
	Hit    Outcome = "hit"    // a stored value
	Miss   Outcome = "miss"   // computed for this request
	Shared Outcome = "shared" // computed once for this and other requests in flight
)

// Request is one call of Do.
type Request[K comparable, V any] struct {
	// Tenant is whose data the value is computed from.
	Tenant string
	// Key names the value: requests of the same Key in flight at the same
	// version of the tenant's data compute it once.
	Key K
	// Lookup, when not nil, finds a stored value in place of looking Key
	// up: get returns the fresh stored value of a key of the tenant's
	// current data, marking it used.
	Lookup func(get func(K) (V, bool)) (V, bool)
	// Compute computes the value.
	Compute func(ctx context.Context) (V, error)
	// Keep says whether (ok) and how to store a value Compute gave, when
	// the tenant's data has not changed since the computation began. It
	// is called with the cache locked.
	Keep func(c Computed[K, V]) (e Entry[K], ok bool)
}

// Computed is a value Compute gave, as Keep sees it.
type Computed[K comparable, V any] struct {
	Value V
	// Began is when the computation began; Changed is the last change of
	// the tenant's data before that (zero: none).
	Began, Changed time.Time
	// Stored returns the fresh stored value of a key of the tenant's
	// data, as Request.Lookup's get.
	Stored func(K) (V, bool)
}

// Entry says how to store a value.
type Entry[K comparable] struct {
	Key K
	// Size is what the value counts against Capacity, more than 0; a
	// value larger than Capacity is not stored.
	Size int64
	// Expires, when not zero, is when the value stops being fresh.
	Expires time.Time
}

// Cache is safe for concurrent use.
type Cache[K comparable, V any] struct {
	opt Options

	mu      sync.Mutex
	tenants map[string]*tenantState
	epoch   uint64    // bumped by ChangedAll
	allAt   time.Time // the last ChangedAll
	entries map[K]*list.Element
	lru     *list.List // of *entry[K, V], most recently used first
	used    int64      // the sum of the entries' sizes
	flights map[flightKey[K]]*flight[V]

	requests  *prometheus.CounterVec
	evictions prometheus.Counter
	size      prometheus.Gauge
}

// tenantState is one tenant's data version.
type tenantState struct {
	gen uint64
	at  time.Time // the last change
}

// version is the data version a value was computed at.
type version struct{ epoch, gen uint64 }

type entry[K comparable, V any] struct {
	key     K
	version version
	value   V
	began   time.Time
	expires time.Time // zero: until the data changes (or MaxAge)
	size    int64
}

type flightKey[K comparable] struct {
	key     K
	version version
}

// flight is one computation in progress.
type flight[V any] struct {
	done    chan struct{}
	value   V
	err     error
	waiters int
	cancel  context.CancelFunc
}

// New returns a Cache with the options o.
func New[K comparable, V any](o Options) *Cache[K, V] {
	if o.Now == nil {
		o.Now = time.Now
	}
	m := o.Metrics
	return &Cache[K, V]{
		opt:     o,
		tenants: map[string]*tenantState{},
		entries: map[K]*list.Element{},
		lru:     list.New(),
		flights: map[flightKey[K]]*flight[V]{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: m.Prefix + "_requests_total",
			Help: fmt.Sprintf("Requests of %s by how they were answered: hit (stored), miss (computed), shared (computed once for several identical requests in flight).", m.Values),
		}, []string{"outcome"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: m.Prefix + "_evictions_total",
			Help: fmt.Sprintf("Stored %s evicted to keep the cache within its size.", m.Values),
		}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: m.Prefix + "_" + m.SizeUnit,
			Help: fmt.Sprintf("Size of the stored %s, in %s.", m.Values, m.SizeUnit),
		}),
	}
}

// Instrument registers the cache's metrics on reg (see Metrics). Call it
// before the cache is used.
func (c *Cache[K, V]) Instrument(reg prometheus.Registerer) error {
	for _, m := range []prometheus.Collector{c.requests, c.evictions, c.size} {
		if err := reg.Register(m); err != nil {
			return fmt.Errorf("%s metrics: %w", c.opt.Name, err)
		}
	}
	return nil
}

// Changed starts a new version of tenant's data: the values stored before
// are stale.
func (c *Cache[K, V]) Changed(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[tenant]
	if t == nil {
		t = &tenantState{}
		c.tenants[tenant] = t
	}
	t.gen++
	t.at = c.opt.Now()
}

// ChangedAll makes every stored value stale, as if every tenant's data had
// changed now: Follow calls it when change signals may have been lost.
func (c *Cache[K, V]) ChangedAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.allAt = c.opt.Now()
}

// Changes returns how many times tenant's data changed (Changed calls;
// ChangedAll aside).
func (c *Cache[K, V]) Changes(tenant string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.tenants[tenant]; t != nil {
		return t.gen
	}
	return 0
}

// Do returns the value of r: a stored one of the tenant's current data, or
// the one a computation in flight for the same key and data is about to
// give, or else the one r.Compute gives. Compute runs apart from ctx: a
// caller that goes away gets ctx's error while the others keep waiting; it
// is cancelled when every caller waiting for it has gone. Errors are
// shared by the callers waiting, never stored.
func (c *Cache[K, V]) Do(ctx context.Context, r Request[K, V]) (V, Outcome, error) {
	c.mu.Lock()
	now := c.opt.Now()
	v, changed := c.version(r.Tenant)
	get := func(k K) (V, bool) { return c.get(k, v, now) }
	var (
		val V
		hit bool
	)
	if r.Lookup != nil {
		val, hit = r.Lookup(get)
	} else {
		val, hit = get(r.Key)
	}
	if hit {
		c.mu.Unlock()
		c.requests.WithLabelValues(string(Hit)).Inc()
		return val, Hit, nil
	}
	fk := flightKey[K]{r.Key, v}
	f, joined := c.flights[fk]
	if joined {
		f.waiters++
	} else {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight[V]{done: make(chan struct{}), waiters: 1, cancel: cancel}
		c.flights[fk] = f
		go c.run(fctx, r, fk, f, now, changed)
	}
	c.mu.Unlock()
	outcome := Miss
	if joined {
		outcome = Shared
	}
	c.requests.WithLabelValues(string(outcome)).Inc()
	select {
	case <-f.done:
		return f.value, outcome, f.err
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody waits for it any more: later callers start anew.
			f.cancel()
			if c.flights[fk] == f {
				delete(c.flights, fk)
			}
		}
		c.mu.Unlock()
		var zero V
		return zero, outcome, ctx.Err()
	}
}

// run computes the value of one flight and stores it as r.Keep says, if
// the tenant's data did not change meanwhile.
func (c *Cache[K, V]) run(ctx context.Context, r Request[K, V], fk flightKey[K], f *flight[V], began, changed time.Time) {
	defer f.cancel()
	f.value, f.err = r.Compute(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flights[fk] == f {
		delete(c.flights, fk)
	}
	close(f.done)
	if f.err != nil {
		return
	}
	if v, _ := c.version(r.Tenant); v != fk.version {
		return
	}
	now := c.opt.Now()
	e, ok := r.Keep(Computed[K, V]{
		Value:   f.value,
		Began:   began,
		Changed: changed,
		Stored:  func(k K) (V, bool) { return c.get(k, fk.version, now) },
	})
	if ok {
		c.store(&entry[K, V]{key: e.Key, version: fk.version, value: f.value, began: began, expires: e.Expires, size: e.Size})
	}
}

// version returns tenant's current data version and the time of its last
// change. c.mu is held.
func (c *Cache[K, V]) version(tenant string) (version, time.Time) {
	v, at := version{epoch: c.epoch}, c.allAt
	if t := c.tenants[tenant]; t != nil {
		v.gen = t.gen
		if t.at.After(at) {
			at = t.at
		}
	}
	return v, at
}

// get returns the value of k if it is of version v and fresh at now,
// marking it used; a stale one is dropped. c.mu is held.
func (c *Cache[K, V]) get(k K, v version, now time.Time) (V, bool) {
	el, ok := c.entries[k]
	if !ok {
		var zero V
		return zero, false
	}
	e := el.Value.(*entry[K, V])
	if e.version == v && (e.expires.IsZero() || now.Before(e.expires)) && now.Sub(e.began) < c.opt.MaxAge {
		c.lru.MoveToFront(el)
		return e.value, true
	}
	c.remove(el)
	var zero V
	return zero, false
}

// store adds e in place of the entry of its key, evicting the least
// recently used entries to make room. c.mu is held.
func (c *Cache[K, V]) store(e *entry[K, V]) {
	if c.opt.Capacity <= 0 || e.size > c.opt.Capacity {
		return
	}
	if el, ok := c.entries[e.key]; ok {
		c.remove(el)
	}
	for c.used+e.size > c.opt.Capacity {
		c.remove(c.lru.Back())
		c.evictions.Inc()
	}
	c.entries[e.key] = c.lru.PushFront(e)
	c.used += e.size
	c.size.Set(float64(c.used))
}

// remove drops the entry of el. c.mu is held.
func (c *Cache[K, V]) remove(el *list.Element) {
	e := c.lru.Remove(el).(*entry[K, V])
	delete(c.entries, e.key)
	c.used -= e.size
	c.size.Set(float64(c.used))
}

// Len returns how many values are stored and the sum of their sizes.
func (c *Cache[K, V]) Len() (values int, size int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.used
}
