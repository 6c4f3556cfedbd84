package metrics

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/snapshot"
)

// partCache keeps, per tenant and part of opportunity_state, a summary
// of the tenant's rows in that part (partSummary). Parts never change once
// written, so the summary of the rows a View reads is that of its parts,
// and only the parts new since the tenant's last View (inserts and merge
// results) are read. Superseded rows count too: a superset, which at worst
// makes a scan read what it could have done without.
type partCache struct {
	mu sync.Mutex
	m  map[string]map[string]partSummary // tenant → part → summary
}

// partSummary is what a scan may take from the rows of some parts instead
// of reading each row.
type partSummary struct {
	// curs are the currencies (curSQL numbers) of the rows' non-zero
	// amounts, sorted.
	curs []uint32
	// latest is the latest latest_at of the rows (UInt32 seconds, 0 for
	// none): as of a time at or after it, every row's facts and state are
	// its latest_* columns (migration 0115).
	latest uint32
}

// maxCachedTenants bounds partCache: beyond it, one tenant's entry is
// dropped for each new one.
const maxCachedTenants = 256

// summary returns the partSummary of tenant's rows in the parts v reads
// (v must not read with FINAL).
func (q *Querier) summary(ctx context.Context, tenant string, v *snapshot.View) (partSummary, error) {
	parts := v.Parts()
	c := &q.parts
	have := make(map[string]partSummary, len(parts))
	var missing []string
	c.mu.Lock()
	for _, p := range parts {
		if ps, ok := c.m[tenant][p]; ok {
			have[p] = ps
		} else {
			missing = append(missing, p)
		}
	}
	c.mu.Unlock()
	if len(missing) > 0 {
		found, err := q.partSummaries(ctx, tenant, missing)
		if err != nil {
			return partSummary{}, err
		}
		for p, ps := range found {
			have[p] = ps
		}
	}

	// Keep the parts of this View only: the others have been merged away,
	// or are newer than this View and will be read again.
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]map[string]partSummary{}
	}
	if _, ok := c.m[tenant]; !ok && len(c.m) >= maxCachedTenants {
		for t := range c.m {
			delete(c.m, t)
			break
		}
	}
	c.m[tenant] = have
	c.mu.Unlock()

	var all partSummary
	for _, ps := range have {
		all.curs = append(all.curs, ps.curs...)
		all.latest = max(all.latest, ps.latest)
	}
	slices.Sort(all.curs)
	all.curs = slices.Compact(all.curs)
	return all, nil
}

// partSummaries reads the partSummary of tenant's rows in each of parts
// (the zero summary for a part without the tenant's rows).
func (q *Querier) partSummaries(ctx context.Context, tenant string, parts []string) (map[string]partSummary, error) {
	rows, err := q.conn.Query(q.queryCtx(ctx), partSummariesSQL,
		clickhouse.Named("tenant", tenant), clickhouse.Named("parts", snapshot.PartSet(parts)))
	if err != nil {
		return nil, fmt.Errorf("summaries of opportunity states: %w", err)
	}
	defer rows.Close()
	found := make(map[string]partSummary, len(parts))
	for _, p := range parts {
		found[p] = partSummary{}
	}
	for rows.Next() {
		var (
			part string
			ps   partSummary
		)
		if err := rows.Scan(&part, &ps.curs, &ps.latest); err != nil {
			return nil, fmt.Errorf("summaries of opportunity states: %w", err)
		}
		slices.Sort(ps.curs)
		found[part] = ps
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summaries of opportunity states: %w", err)
	}
	return found, nil
}

// partSummariesSQL is the query of partSummaries: per part, the
// currencies (as curSQL's numbers) of the non-zero amounts of the tenant's
// rows and their latest latest_at.
var partSummariesSQL = `SELECT _part,
	groupUniqArrayArray(arrayMap(c -> reinterpretAsUInt32(c), arrayFilter((c, a) -> a != 0, currencies, amounts))),
	toUInt32(max(latest_at))
FROM ` + snapshot.Table + `
WHERE tenant = @tenant AND _part IN @parts
GROUP BY _part`

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

// sumCurLatestSQL is sumCurSQL for a deal's latest_currency (see
// shape.latestBy).
func (sh shape) sumCurLatestSQL() string {
	if sh.oneCurrency {
		return sh.sumCurSQL("")
	}
	return "reinterpretAsUInt32(latest_currency)"
}
