package pipeline

import "container/list"

// cache keeps the most recently used opportunities' histories and derived
// sets, bounded by count so memory stays flat however large the backlog. A
// miss is loaded from ClickHouse.
type cache struct {
	max   int
	order *list.List // front: most recent; values are *opp
	byKey map[string]*list.Element
}

func newCache(max int) *cache {
	if max < 1 {
		max = 1
	}
	return &cache{max: max, order: list.New(), byKey: map[string]*list.Element{}}
}

func oppKey(tenant, id string) string { return tenant + "\x00" + id }

func (c *cache) get(tenant, id string) *opp {
	e, ok := c.byKey[oppKey(tenant, id)]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*opp)
}

func (c *cache) put(o *opp) {
	k := oppKey(o.tenant, o.id)
	if e, ok := c.byKey[k]; ok {
		e.Value = o
		c.order.MoveToFront(e)
		return
	}
	c.byKey[k] = c.order.PushFront(o)
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		lo := last.Value.(*opp)
		delete(c.byKey, oppKey(lo.tenant, lo.id))
	}
}
