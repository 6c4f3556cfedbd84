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
//
// The data versions, the single flight and the LRU are package
// tenantcache's; this package says what an answer costs and how long it is
// kept.
package answercache

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/tenantcache"
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
type Outcome = tenantcache.Outcome

// The outcomes of Do.
const (
	Hit    = tenantcache.Hit    // a stored answer
	Miss   = tenantcache.Miss   // computed for this request
	Shared = tenantcache.Shared // computed once for this and other requests in flight
)

// Cache is safe for concurrent use.
type Cache struct {
	opt     Options
	now     func() time.Time
	answers *tenantcache.Cache[Key, Answer]
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
	c := &Cache{opt: o, now: time.Now}
	c.answers = tenantcache.New[Key, Answer](tenantcache.Options{
		Name:     "answer cache",
		Capacity: o.MaxBytes,
		MaxAge:   o.MaxAge,
		Now:      func() time.Time { return c.now() },
		Metrics:  tenantcache.Metrics{Prefix: "commitflow_answer_cache", Values: "answers", SizeUnit: "bytes"},
	})
	return c
}

// Instrument registers the cache's metrics on reg:
// commitflow_answer_cache_requests_total{outcome}, _evictions_total and
// _bytes. Call it before the cache is used.
func (c *Cache) Instrument(reg prometheus.Registerer) error {
	return c.answers.Instrument(reg)
}

// Changed starts a new generation of tenant's data: the answers stored
// before are stale.
func (c *Cache) Changed(tenant string) { c.answers.Changed(tenant) }

// ChangedAll makes every stored answer stale, as if every tenant's data
// had changed now: Follow calls it when change signals may have been lost.
func (c *Cache) ChangedAll() { c.answers.ChangedAll() }

// Do returns the answer of k: a stored one of the tenant's current data,
// or the one a computation in flight for the same key and data is about to
// give, or else the one compute gives. compute runs apart from ctx: a
// caller that goes away gets ctx's error while the others keep waiting; it
// is cancelled when every caller waiting for it has gone. Errors are
// shared by the callers waiting, never stored.
func (c *Cache) Do(ctx context.Context, k Key, compute func(ctx context.Context) ([]byte, error)) (Answer, Outcome, error) {
	return c.answers.Do(ctx, tenantcache.Request[Key, Answer]{
		Tenant: k.Tenant,
		Key:    k,
		Compute: func(ctx context.Context) (Answer, error) {
			began := c.now()
			body, err := compute(ctx)
			return Answer{Body: body, ComputedAt: began}, err
		},
		Keep: func(a tenantcache.Computed[Key, Answer]) (tenantcache.Entry[Key], bool) {
			return c.keep(k, a)
		},
	})
}

// keep says how a of k is stored: until its tenant's data changes, but if
// its computation began less than Settle after the last change only until
// Settle has passed since, and if k is as of now at most NowMaxAge. An
// answer larger than an eighth of MaxBytes is not stored: it would evict
// many others.
func (c *Cache) keep(k Key, a tenantcache.Computed[Key, Answer]) (tenantcache.Entry[Key], bool) {
	e := tenantcache.Entry[Key]{Key: k, Size: size(k, a.Value)}
	if e.Size > c.opt.MaxBytes/8 {
		return e, false
	}
	if settled := a.Changed.Add(c.opt.Settle); a.Began.Before(settled) {
		e.Expires = settled
	}
	if k.Now {
		if end := a.Began.Add(c.opt.NowMaxAge); e.Expires.IsZero() || end.Before(e.Expires) {
			e.Expires = end
		}
	}
	return e, true
}

// size is what an answer is counted as: its body and a fixed overhead for
// the key and bookkeeping.
func size(k Key, a Answer) int64 {
	return int64(len(a.Body)+len(k.Query)+len(k.Tenant)+len(k.Endpoint)+len(k.Ladder)) + 200
}

// Len returns how many answers are stored and their bytes.
func (c *Cache) Len() (answers int, bytes int64) {
	return c.answers.Len()
}
