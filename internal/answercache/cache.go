// Package answercache keeps the API's encoded answers per tenant until that
// tenant's data changes, and computes identical requests in flight once.
//
// An answer is stored under its Key (endpoint, tenant, normalized query,
// ladder version) with the tenant's generation at the time its
// computation began. Changed(tenant) starts a new generation: every answer
// stored before is stale from then on, whatever its as_of (late events
// change the past), and an answer whose computation began before the
// change is given to the requests that were waiting for it but not stored.
// Follow calls Changed for every message on the derived-events subjects
// (cf.derived.<tenant>.<type>).
//
// The derive worker publishes a change before it writes it to ClickHouse,
// so an answer computed just after a change signal may not show it yet:
// an answer whose computation began less than Settle after its tenant's
// last change is kept only until Settle has passed since that change. An
// answer to a request without as_of ("now") depends on the clock as well
// (days since, the forecast's reference date): it is kept at most NowMaxAge.
// No answer is kept longer than MaxAge, which bounds what a lost change
// signal can cost.
//
// The stored answers take at most MaxBytes, the least recently used
// evicted first. A MaxBytes of 0 stores nothing: requests in flight are
// still computed once.
package answercache

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Options.
const (
	DefaultMaxBytes  = 64 << 20
	DefaultSettle    = 10 * time.Second
	DefaultNowMaxAge = 60 * time.Second
	DefaultMaxAge    = 10 * time.Minute
)

// Options configures a Cache. Zero durations take the defaults.
type Options struct {
	// MaxBytes bounds the bytes of the stored answers; 0 stores none.
	MaxBytes int64
	// Settle is how long after a tenant's change signal its data may
	// still be on its way to ClickHouse.
	Settle time.Duration
	// NowMaxAge bounds the age of an answer to a request without as_of.
	NowMaxAge time.Duration
	// MaxAge bounds the age of every answer.
	MaxAge time.Duration
}

// Key names one answer.
type Key struct {
	Endpoint string
	Tenant   string
	// Query is the request's normalized parameters (see Normalize).
	Query string
	// Ladder is the version of the tenant's ladder in force.
	Ladder string
	// Now says the answer is as of the time it is computed (no as_of).
	Now bool
}

// Answer is an encoded answer and when its computation began: it reflects
// the tenant's data stored at that time.
type Answer struct {
	Body       []byte
	ComputedAt time.Time
}

// Outcome says how Do answered.
type Outcome string

// The outcomes of Do.
const (
	Hit    Outcome = "hit"    // a stored answer
	Miss   Outcome = "miss"   // computed for this request
	Shared Outcome = "shared" // computed once for this and other requests in flight
)

// Cache is safe for concurrent use.
type Cache struct {
	opt Options
	now func() time.Time

	mu      sync.Mutex
	tenants map[string]*tenantState
	epoch   uint64    // bumped by ChangedAll
	allAt   time.Time // the last ChangedAll
	entries map[Key]*list.Element
	lru     *list.List // of *entry, most recently used first
	bytes   int64
	flights map[flightKey]*flight

	requests  *prometheus.CounterVec
	evictions prometheus.Counter
	stored    prometheus.Gauge
}

// tenantState is one tenant's generation.
type tenantState struct {
	gen uint64
	at  time.Time // the last change
}

// version is the data version an answer was computed at.
type version struct{ epoch, gen uint64 }

type entry struct {
	key     Key
	version version
	answer  Answer
	expires time.Time // zero: until the data changes (or MaxAge)
}

type flightKey struct {
	key     Key
	version version
}

// flight is one computation in progress.
type flight struct {
	done    chan struct{}
	answer  Answer
	err     error
	waiters int
	cancel  context.CancelFunc
}

// New returns a Cache with the options o.
func New(o Options) *Cache {
	if o.Settle <= 0 {
		o.Settle = DefaultSettle
	}
	if o.NowMaxAge <= 0 {
		o.NowMaxAge = DefaultNowMaxAge
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	return &Cache{
		opt:     o,
		now:     time.Now,
		tenants: map[string]*tenantState{},
		entries: map[Key]*list.Element{},
		lru:     list.New(),
		flights: map[flightKey]*flight{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_answer_cache_requests_total",
			Help: "Report requests by how they were answered: hit (a stored answer), miss (computed), shared (computed once for several identical requests in flight).",
		}, []string{"outcome"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commitflow_answer_cache_evictions_total",
			Help: "Stored answers evicted to keep the cache within its size.",
		}),
		stored: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commitflow_answer_cache_bytes",
			Help: "Bytes of the stored answers.",
		}),
	}
}

// Instrument registers the cache's metrics on reg:
// commitflow_answer_cache_requests_total{outcome}, _evictions_total and
// _bytes. Call it before the cache is used.
func (c *Cache) Instrument(reg prometheus.Registerer) error {
	for _, m := range []prometheus.Collector{c.requests, c.evictions, c.stored} {
		if err := reg.Register(m); err != nil {
			return fmt.Errorf("answer cache metrics: %w", err)
		}
	}
	return nil
}

// Changed starts a new generation of tenant's data: the answers stored
// before are stale.
func (c *Cache) Changed(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.tenants[tenant]
	if t == nil {
		t = &tenantState{}
		c.tenants[tenant] = t
	}
	t.gen++
	t.at = c.now()
}

// ChangedAll makes every stored answer stale, as if every tenant's data
// had changed now: Follow calls it when change signals may have been lost.
func (c *Cache) ChangedAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.allAt = c.now()
}

// Do returns the answer of k: a stored one of the tenant's current data,
// or the one a computation in flight for the same key and data is about to
// give, or else the one compute gives. compute runs apart from ctx: a
// caller that goes away gets ctx's error while the others keep waiting; it
// is cancelled when every caller waiting for it has gone. Errors are
// shared by the callers waiting, never stored.
func (c *Cache) Do(ctx context.Context, k Key, compute func(ctx context.Context) ([]byte, error)) (Answer, Outcome, error) {
	c.mu.Lock()
	now := c.now()
	v, changed := c.version(k.Tenant)
	if el, ok := c.entries[k]; ok {
		e := el.Value.(*entry)
		if e.version == v && (e.expires.IsZero() || now.Before(e.expires)) && now.Sub(e.answer.ComputedAt) < c.opt.MaxAge {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			c.requests.WithLabelValues(string(Hit)).Inc()
			return e.answer, Hit, nil
		}
		c.remove(el)
	}
	fk := flightKey{k, v}
	f, joined := c.flights[fk]
	if joined {
		f.waiters++
	} else {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), waiters: 1, cancel: cancel}
		c.flights[fk] = f
		go c.run(fctx, fk, f, now, changed, compute)
	}
	c.mu.Unlock()
	outcome := Miss
	if joined {
		outcome = Shared
	}
	c.requests.WithLabelValues(string(outcome)).Inc()
	select {
	case <-f.done:
		return f.answer, outcome, f.err
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
		return Answer{}, outcome, ctx.Err()
	}
}

// run computes the answer of one flight and stores it, if the tenant's
// data did not change meanwhile.
func (c *Cache) run(ctx context.Context, fk flightKey, f *flight, began, changed time.Time, compute func(ctx context.Context) ([]byte, error)) {
	defer f.cancel()
	body, err := compute(ctx)
	f.answer, f.err = Answer{Body: body, ComputedAt: began}, err
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flights[fk] == f {
		delete(c.flights, fk)
	}
	close(f.done)
	if err != nil {
		return
	}
	if v, _ := c.version(fk.key.Tenant); v != fk.version {
		return
	}
	var expires time.Time
	if settled := changed.Add(c.opt.Settle); began.Before(settled) {
		expires = settled
	}
	if fk.key.Now {
		if e := began.Add(c.opt.NowMaxAge); expires.IsZero() || e.Before(expires) {
			expires = e
		}
	}
	c.store(&entry{key: fk.key, version: fk.version, answer: f.answer, expires: expires})
}

// version returns tenant's current data version and the time of its last
// change. c.mu is held.
func (c *Cache) version(tenant string) (version, time.Time) {
	v, at := version{epoch: c.epoch}, c.allAt
	if t := c.tenants[tenant]; t != nil {
		v.gen = t.gen
		if t.at.After(at) {
			at = t.at
		}
	}
	return v, at
}

// size is what an entry is counted as: its body and a fixed overhead for
// the key and bookkeeping.
func (e *entry) size() int64 {
	return int64(len(e.answer.Body)+len(e.key.Query)+len(e.key.Tenant)+len(e.key.Endpoint)+len(e.key.Ladder)) + 200
}

// store adds e, evicting the least recently used answers to make room. An
// answer larger than an eighth of MaxBytes is not stored: it would evict
// many others. c.mu is held.
func (c *Cache) store(e *entry) {
	n := e.size()
	if n > c.opt.MaxBytes/8 {
		return
	}
	if el, ok := c.entries[e.key]; ok {
		c.remove(el)
	}
	for c.bytes+n > c.opt.MaxBytes {
		c.remove(c.lru.Back())
		c.evictions.Inc()
	}
	c.entries[e.key] = c.lru.PushFront(e)
	c.bytes += n
	c.stored.Set(float64(c.bytes))
}

// remove drops the entry of el. c.mu is held.
func (c *Cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*entry)
	delete(c.entries, e.key)
	c.bytes -= e.size()
	c.stored.Set(float64(c.bytes))
}

// Len returns how many answers are stored and their bytes.
func (c *Cache) Len() (answers int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.bytes
}
