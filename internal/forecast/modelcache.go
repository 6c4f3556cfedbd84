package forecast

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/tenantcache"
)

// Defaults of ModelCacheOptions.
const (
	DefaultMaxModels   = 256
	DefaultModelSettle = 10 * time.Second
	DefaultModelMaxAge = time.Hour
)

// ModelCacheOptions configures a ModelCache. Zero values take the
// defaults.
type ModelCacheOptions struct {
	// MaxModels bounds the models kept (a model is cells × outcomes
	// estimates: some tens of KiB), the least recently used dropped
	// first.
	MaxModels int
	// Settle is how long after a tenant's change signal its data may
	// still be on its way to ClickHouse (the derive worker publishes
	// before it writes), and how far a CRM's clock may be ahead of ours.
	Settle time.Duration
	// MaxAge bounds the age of every model: what a lost change signal can
	// cost.
	MaxAge time.Duration
}

// ModelCache keeps the models a Forecaster fits, per tenant, until the
// history they learned from changes, and fits identical models in flight
// once. The training set of a forecast date A is the deals' states at the
// reference dates (month starts before A's month) and their closes after
// them up to A, followed for whole days up to A. So, for the same tenant,
// ladder version, reference dates, horizon and prior strength:
//
//   - A model fitted for a date before the day of its fit ("past") is
//     kept for exactly that date.
//   - A model fitted for a date B of the day of its fit or later, with no
//     change signal of the tenant in the Settle before B, is kept for every
//     date from B to the end of B's day (UTC): within a day the censored
//     samples' whole days of follow-up are the same, and a close after B
//     would have arrived after the fit, with its signal.
//
// A kept model is exactly the model a fresh fit would give. It is dropped
// when the tenant's history changes: a deal closed or reopened (whatever its
// date), a deal created with a CRM creation time before the day, or any
// other derived event dated before the day it arrives (a late change to the
// states at the reference dates, all of which are before the day of any
// model kept). Other derived events — the day's commitments, updates and
// interactions of open deals — leave the models alone. Follow feeds the
// signals from NATS; a model fitted within Settle of a change signal
// is kept only until Settle has passed since it.
//
// The history versions, the single flight and the LRU are package
// tenantcache's; ModelCache says which models are kept under which key.
type ModelCache struct {
	opt    ModelCacheOptions
	now    func() time.Time
	models *tenantcache.Cache[modelKey, kept]
	fits   atomic.Int64 // fits started
}

// modelKey names a kept model. A past model has its forecast date in
// bound; a model kept for the rest of a day has bound 0 and that day in
// day.
type modelKey struct {
	tenant    string
	ladder    string
	firstRef  int64
	refMonths int
	horizon   int
	prior     float64
	bound     int64
	day       int64
}

// fitted is a model with the totals of its training set.
type fitted struct {
	model *Model
	stats trainingStats
}

// kept is a fitted model and the forecast date it was fitted for: a model
// kept for the rest of a day holds from that date on (its HistoryTo).
type kept struct {
	fitted
	from time.Time
}

// NewModelCache returns a ModelCache with the options o.
func NewModelCache(o ModelCacheOptions) *ModelCache {
	if o.MaxModels <= 0 {
		o.MaxModels = DefaultMaxModels
	}
	if o.Settle <= 0 {
		o.Settle = DefaultModelSettle
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultModelMaxAge
	}
	c := &ModelCache{opt: o, now: time.Now}
	c.models = tenantcache.New[modelKey, kept](tenantcache.Options{
		Name:     "forecast models",
		Capacity: int64(o.MaxModels),
		MaxAge:   o.MaxAge,
		Now:      func() time.Time { return c.now() },
		Metrics:  tenantcache.Metrics{Prefix: "commitflow_forecast_model_cache", Values: "forecast models", SizeUnit: "models"},
	})
	return c
}

// Instrument registers the cache's metrics on reg:
// commitflow_forecast_model_cache_requests_total{outcome} (a miss is a
// fit), _evictions_total and _models. Call it before the cache is used.
func (c *ModelCache) Instrument(reg prometheus.Registerer) error {
	return c.models.Instrument(reg)
}

// Changed notes a derived event of tenant of kind, dated occurredAt, and
// for a deal.created the CRM's creation time createdAt (zero if none), and
// drops the tenant's models if it changes their history (see ModelCache).
func (c *ModelCache) Changed(tenant string, kind derive.Kind, occurredAt, createdAt time.Time) {
	if changesHistory(kind, occurredAt, createdAt, c.now()) {
		c.models.Changed(tenant)
	}
}

// changesHistory says whether a derived event of kind, dated occurredAt,
// with the CRM's creation time createdAt (zero if none), arriving at now,
// changes the history of the models kept.
func changesHistory(kind derive.Kind, occurredAt, createdAt, now time.Time) bool {
	day := startOfDay(now)
	switch {
	case kind == derive.DealClosed, kind == derive.DealReopened:
	case occurredAt.Before(day):
	case kind == derive.DealCreated && !createdAt.IsZero() && createdAt.Before(day):
	default:
		return false
	}
	return true
}

// ChangedAll drops every kept model, as if every tenant's history had
// changed now: Follow calls it when change signals may have been lost.
func (c *ModelCache) ChangedAll() { c.models.ChangedAll() }

// Fits returns how many models the cache has fitted.
func (c *ModelCache) Fits() int { return int(c.fits.Load()) }

// model returns the model of p: a kept one of the tenant's current
// history, or the one a fit in flight for the same key and history is
// about to give, or else the one fit gives. fit runs apart from ctx; it is
// cancelled when every caller waiting for it has gone.
func (c *ModelCache) model(ctx context.Context, p params, fit func(ctx context.Context) (fitted, error)) (fitted, error) {
	exact, open := modelKeys(p)
	k, _, err := c.models.Do(ctx, tenantcache.Request[modelKey, kept]{
		Tenant: p.Tenant,
		Key:    exact,
		Lookup: func(get func(modelKey) (kept, bool)) (kept, bool) {
			if k, ok := get(exact); ok {
				return k, true
			}
			if k, ok := get(open); ok && !p.at.Before(k.from) {
				return k, true
			}
			return kept{}, false
		},
		Compute: func(ctx context.Context) (kept, error) {
			c.fits.Add(1)
			f, err := fit(ctx)
			return kept{fitted: f, from: p.at}, err
		},
		Keep: func(k tenantcache.Computed[modelKey, kept]) (tenantcache.Entry[modelKey], bool) {
			return c.keep(p, exact, open, k)
		},
	})
	return k.fitted, err
}

// keep says under which key, if any, the model fitted for p is kept, by
// the rules of ModelCache.
func (c *ModelCache) keep(p params, exact, open modelKey, k tenantcache.Computed[modelKey, kept]) (tenantcache.Entry[modelKey], bool) {
	day := startOfDay(k.Began)
	if !p.refs[len(p.refs)-1].Before(day) {
		// A reference date from today on: changes dated today would
		// reach the model, and they are not signalled.
		return tenantcache.Entry[modelKey]{}, false
	}
	if p.at.Before(day) {
		e := tenantcache.Entry[modelKey]{Key: exact, Size: 1}
		if settled := k.Changed.Add(c.opt.Settle); k.Began.Before(settled) {
			e.Expires = settled
		}
		return e, true
	}
	if !k.Changed.Before(p.at.Add(-c.opt.Settle)) {
		return tenantcache.Entry[modelKey]{}, false // a close may have arrived between the forecast date and the fit
	}
	if old, ok := k.Stored(open); ok && !old.from.After(p.at) {
		return tenantcache.Entry[modelKey]{}, false // the kept one holds from earlier on
	}
	return tenantcache.Entry[modelKey]{Key: open, Size: 1}, true
}

// modelKeys returns the keys of p's model: that of a model fitted for p's
// date, and that of a model kept for the rest of its day.
func modelKeys(p params) (exact, open modelKey) {
	exact = modelKey{
		tenant:    p.Tenant,
		ladder:    p.LadderVersion,
		firstRef:  p.refs[0].Unix(),
		refMonths: len(p.refs),
		horizon:   p.HorizonDays,
		prior:     p.PriorStrength,
	}
	open = exact
	exact.bound = p.at.Unix()
	open.day = startOfDay(p.at).Unix()
	return exact, open
}

// startOfDay returns 00:00 UTC of t's day.
func startOfDay(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour)
}
