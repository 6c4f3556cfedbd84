package forecast

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
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
type ModelCache struct {
	opt ModelCacheOptions
	now func() time.Time

	mu      sync.Mutex
	tenants map[string]*history
	epoch   uint64    // bumped by ChangedAll
	allAt   time.Time // the last ChangedAll
	entries map[modelKey]*list.Element
	lru     *list.List // of *modelEntry, most recently used first
	flights map[modelFlightKey]*modelFlight
	fits    int // fits started
}

// history is one tenant's generation of closed-deal history.
type history struct {
	gen uint64
	at  time.Time // the last change
}

// modelVersion is the history version a model was fitted at.
type modelVersion struct{ epoch, gen uint64 }

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

type modelEntry struct {
	key     modelKey
	version modelVersion
	fit     fitted
	from    time.Time // the model holds from this date on (its HistoryTo)
	expires time.Time // zero: until the history changes (or MaxAge)
}

type modelFlightKey struct {
	key     modelKey
	version modelVersion
}

// modelFlight is one fit in progress.
type modelFlight struct {
	done    chan struct{}
	fit     fitted
	err     error
	waiters int
	cancel  context.CancelFunc
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
	return &ModelCache{
		opt:     o,
		now:     time.Now,
		tenants: map[string]*history{},
		entries: map[modelKey]*list.Element{},
		lru:     list.New(),
		flights: map[modelFlightKey]*modelFlight{},
	}
}

// Changed notes a derived event of tenant of kind, dated occurredAt, and
// for a deal.created the CRM's creation time createdAt (zero if none), and
// drops the tenant's models if it changes their history (see ModelCache).
func (c *ModelCache) Changed(tenant string, kind derive.Kind, occurredAt, createdAt time.Time) {
	now := c.now()
	day := startOfDay(now)
	switch {
	case kind == derive.DealClosed, kind == derive.DealReopened:
	case occurredAt.Before(day):
	case kind == derive.DealCreated && !createdAt.IsZero() && createdAt.Before(day):
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.tenants[tenant]
	if h == nil {
		h = &history{}
		c.tenants[tenant] = h
	}
	h.gen++
	h.at = now
}

// ChangedAll drops every kept model, as if every tenant's history had
// changed now: Follow calls it when change signals may have been lost.
func (c *ModelCache) ChangedAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.allAt = c.now()
}

// Fits returns how many models the cache has fitted.
func (c *ModelCache) Fits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fits
}

// model returns the model of p: a kept one of the tenant's current
// history, or the one a fit in flight for the same key and history is
// about to give, or else the one fit gives. fit runs apart from ctx; it is
// cancelled when every caller waiting for it has gone.
func (c *ModelCache) model(ctx context.Context, p params, fit func(ctx context.Context) (fitted, error)) (fitted, error) {
	exact, open := modelKeys(p)
	c.mu.Lock()
	now := c.now()
	v, changed := c.version(p.Tenant)
	if e := c.lookup(exact, v, now); e != nil {
		c.mu.Unlock()
		return e.fit, nil
	}
	if e := c.lookup(open, v, now); e != nil && !p.at.Before(e.from) {
		c.mu.Unlock()
		return e.fit, nil
	}
	fk := modelFlightKey{exact, v}
	f, joined := c.flights[fk]
	if joined {
		f.waiters++
	} else {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &modelFlight{done: make(chan struct{}), waiters: 1, cancel: cancel}
		c.flights[fk] = f
		c.fits++
		go c.run(fctx, fk, open, p, f, now, changed, fit)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.fit, f.err
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel()
			if c.flights[fk] == f {
				delete(c.flights, fk)
			}
		}
		c.mu.Unlock()
		return fitted{}, ctx.Err()
	}
}

// run fits the model of one flight and keeps it if the tenant's history
// did not change meanwhile and the rules of ModelCache allow.
func (c *ModelCache) run(ctx context.Context, fk modelFlightKey, open modelKey, p params, f *modelFlight, began, changed time.Time, fit func(ctx context.Context) (fitted, error)) {
	defer f.cancel()
	f.fit, f.err = fit(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.flights[fk] == f {
		delete(c.flights, fk)
	}
	close(f.done)
	if f.err != nil {
		return
	}
	if v, _ := c.version(p.Tenant); v != fk.version {
		return
	}
	day := startOfDay(began)
	if !p.refs[len(p.refs)-1].Before(day) {
		// A reference date from today on: changes dated today would
		// reach the model, and they are not signalled.
		return
	}
	e := &modelEntry{key: fk.key, version: fk.version, fit: f.fit, from: p.at}
	if p.at.Before(day) {
		if settled := changed.Add(c.opt.Settle); began.Before(settled) {
			e.expires = settled
		}
		c.store(e)
		return
	}
	if !changed.Before(p.at.Add(-c.opt.Settle)) {
		return // a close may have arrived between the forecast date and the fit
	}
	if old := c.lookup(open, fk.version, began); old != nil && !old.from.After(p.at) {
		return // the kept one holds from earlier on
	}
	e.key = open
	c.store(e)
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

// lookup returns the entry of k if it is of version v and fresh at now,
// marking it used; a stale one is dropped. c.mu is held.
func (c *ModelCache) lookup(k modelKey, v modelVersion, now time.Time) *modelEntry {
	el, ok := c.entries[k]
	if !ok {
		return nil
	}
	e := el.Value.(*modelEntry)
	if e.version == v && (e.expires.IsZero() || now.Before(e.expires)) && now.Sub(e.fit.model.FittedAt) < c.opt.MaxAge {
		c.lru.MoveToFront(el)
		return e
	}
	c.remove(el)
	return nil
}

// version returns tenant's current history version and the time of its
// last change. c.mu is held.
func (c *ModelCache) version(tenant string) (modelVersion, time.Time) {
	v, at := modelVersion{epoch: c.epoch}, c.allAt
	if h := c.tenants[tenant]; h != nil {
		v.gen = h.gen
		if h.at.After(at) {
			at = h.at
		}
	}
	return v, at
}

// store adds e, dropping the least recently used models to make room.
// c.mu is held.
func (c *ModelCache) store(e *modelEntry) {
	if el, ok := c.entries[e.key]; ok {
		c.remove(el)
	}
	for len(c.entries) >= c.opt.MaxModels {
		c.remove(c.lru.Back())
	}
	c.entries[e.key] = c.lru.PushFront(e)
}

// remove drops the entry of el. c.mu is held.
func (c *ModelCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*modelEntry)
	delete(c.entries, e.key)
}

// startOfDay returns 00:00 UTC of t's day.
func startOfDay(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour)
}
