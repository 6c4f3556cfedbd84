package metrics

import (
	"context"
	"fmt"
	"strconv"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/snapshot"
)

// viewFacts is what the answers need to know of the rows of one
// snapshot.View before they read them: the ladders the states were derived
// with (CheckLadder) and whether the amounts are in one currency (scan).
// Parts never change, so the facts of a View hold for every View with its
// Key and are kept per tenant until the parts change (an insert or a
// merge): then one query finds them again.
type viewFacts struct {
	// versions counts the states by the version of the ladder they were
	// derived with; states without derived events (no version) are left
	// out.
	versions map[string]uint64
	// oneCurrency reports that every non-zero amount of the rows, at any
	// time, is in the one currency cur (a curSQL number; 0 when there is
	// no non-zero amount).
	oneCurrency bool
	cur         uint32
}

// factsCache keeps the viewFacts of the last View of each tenant, and
// lets concurrent readers of one View wait for a single query.
type factsCache struct {
	mu sync.Mutex
	m  map[string]*factsCall // by tenant
}

// factsCall is the facts of the View with Key key, done when found.
type factsCall struct {
	key  string
	done chan struct{}
	f    *viewFacts
	err  error
}

// maxFactsTenants bounds factsCache: beyond it, one tenant's entry is
// dropped for each new one.
const maxFactsTenants = 256

// facts returns the facts of the rows of tenant that v reads, which must
// not read with FINAL.
func (q *Querier) facts(ctx context.Context, tenant string, v *snapshot.View) (*viewFacts, error) {
	key := v.Key()
	c := &q.factsCache
	c.mu.Lock()
	if call, ok := c.m[tenant]; ok && call.key == key {
		c.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if call.err != nil {
			// The query failed for its own caller (whose context may
			// have ended); this caller asks for itself.
			return q.readFacts(ctx, tenant, v)
		}
		return call.f, nil
	}
	call := &factsCall{key: key, done: make(chan struct{})}
	if c.m == nil {
		c.m = map[string]*factsCall{}
	}
	if len(c.m) >= maxFactsTenants {
		for t := range c.m {
			delete(c.m, t)
			break
		}
	}
	c.m[tenant] = call
	c.mu.Unlock()

	call.f, call.err = q.readFacts(ctx, tenant, v)
	if call.err != nil {
		c.mu.Lock()
		if c.m[tenant] == call {
			delete(c.m, tenant)
		}
		c.mu.Unlock()
	}
	close(call.done)
	return call.f, call.err
}

// readFacts queries the facts of the rows of tenant that v reads.
func (q *Querier) readFacts(ctx context.Context, tenant string, v *snapshot.View) (*viewFacts, error) {
	qctx, err := v.Context(q.queryCtx(ctx))
	if err != nil {
		return nil, err
	}
	rows, err := q.conn.Query(qctx, factsSQL(v.From(), v.Prewhere(), v.Where()),
		append([]any{clickhouse.Named("tenant", tenant)}, v.Args()...)...)
	if err != nil {
		return nil, fmt.Errorf("facts of opportunity states: %w", err)
	}
	defer rows.Close()
	f := &viewFacts{versions: map[string]uint64{}}
	curs := map[uint32]bool{}
	for rows.Next() {
		var (
			version string
			n       uint64
			cs      []uint32
		)
		if err := rows.Scan(&version, &n, &cs); err != nil {
			return nil, fmt.Errorf("facts of opportunity states: %w", err)
		}
		if version != "" {
			f.versions[version] = n
		}
		for _, c := range cs {
			curs[c] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("facts of opportunity states: %w", err)
	}
	if len(curs) <= 1 {
		f.oneCurrency = true
		for c := range curs {
			f.cur = c
		}
	}
	return f, nil
}

// factsSQL is the query of viewFacts on a View's from, prewhere and where:
// per ladder version, the number of states and the currencies of their
// non-zero amounts.
func factsSQL(from, prewhere, where string) string {
	return `SELECT ladder_version, count(),
	groupUniqArrayArray(arrayMap(c -> reinterpretAsUInt32(c), arrayFilter((c, a) -> a != 0, currencies, amounts)))
FROM ` + from + `
` + prewhere + `
WHERE tenant = @tenant AND ` + where + `
GROUP BY ladder_version`
}

// sumCurSQL is the currency number (curSQL) a deal's amount at fact index
// fi is summed under: its currency then, or, when every non-zero amount
// the scan reads is in one currency, that currency for every deal: a zero
// amount adds nothing under any currency, so the sums are the same, and
// the currencies are not read. Only sums may use it: a deal listed with
// its currency takes curSQL.
func (sh shape) sumCurSQL(fi string) string {
	if sh.oneCurrency {
		return "toUInt32(" + strconv.FormatUint(uint64(sh.cur), 10) + ")"
	}
	return curSQL("currencies", fi)
}
