package pipeline

import (
	"container/list"
	"sync/atomic"
)

// cacheBudget is the memory that the caches of a Deriver's partitions
// share, in estimated bytes (see opp.size).
type cacheBudget struct {
	limit int64
	used  atomic.Int64
}

// cache keeps a partition's most recently used opportunities' histories
// and derived sets. It is bounded by memory, not by count, so that the
// process stays within its memory limit however large the deals are and
// however many a backfill brings: a partition putting an opportunity
// while the caches of all partitions together are over the budget evicts
// its own least recently used ones. A miss is loaded from ClickHouse.
type cache struct {
	budget *cacheBudget
	order  *list.List // front: most recent; values are *cached
	byKey  map[string]*list.Element
	used   int64 // this cache's share of budget.used
}

// cached is an opportunity in a cache with its estimated size.
type cached struct {
	o    *opp
	size int64
}

func newCache(b *cacheBudget) *cache {
	return &cache{budget: b, order: list.New(), byKey: map[string]*list.Element{}}
}

func oppKey(tenant, id string) string { return tenant + "\x00" + id }

func (c *cache) get(tenant, id string) *opp {
	e, ok := c.byKey[oppKey(tenant, id)]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*cached).o
}

// put caches o in place of an earlier copy, then evicts the least
// recently used opportunities while the budget is exceeded, all but o.
func (c *cache) put(o *opp) {
	k := oppKey(o.tenant, o.id)
	size := o.size()
	if e, ok := c.byKey[k]; ok {
		v := e.Value.(*cached)
		c.grow(size - v.size)
		v.o, v.size = o, size
		c.order.MoveToFront(e)
	} else {
		c.byKey[k] = c.order.PushFront(&cached{o, size})
		c.grow(size)
	}
	for c.order.Len() > 1 && c.budget.used.Load() > c.budget.limit {
		last := c.order.Back()
		v := c.order.Remove(last).(*cached)
		delete(c.byKey, oppKey(v.o.tenant, v.o.id))
		c.grow(-v.size)
	}
}

// drop empties the cache and gives its memory back to the budget.
func (c *cache) drop() {
	c.grow(-c.used)
	c.order.Init()
	clear(c.byKey)
}

func (c *cache) grow(n int64) {
	c.used += n
	c.budget.used.Add(n)
}

// Estimates of the memory an opportunity takes in a cache beyond the
// bytes of JSON its events were parsed from (opp.size), fitted to a
// generated book of business and an imported OpportunityHistory
// (TestOppSizeEstimate): a parsed event takes about twice its JSON, a
// derived event ~350 bytes.
const (
	oppOverhead     = 512 // the opp, its cache entry and key
	eventOverhead   = 64  // a derive.Copy beyond its event's JSON
	derivedOverhead = 320 // a derive.Derived beyond the strings of its own
)

// size estimates the memory o takes: its events about twice their JSON
// (o.raw) and its derived events a structure each and the strings of their own; a
// derived event shares most of its strings (tenant, opportunity, snapshot
// facts) with the events.
func (o *opp) size() int64 {
	n := int64(oppOverhead + 2*o.raw + eventOverhead*len(o.events))
	for i := range o.derived {
		d := &o.derived[i]
		n += int64(derivedOverhead + len(d.ID) + len(d.Detail) + len(d.InteractionID))
		for _, e := range d.Evidence {
			n += int64(16 + len(e))
		}
	}
	return n
}
