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

// currencyCache keeps, per tenant and part of opportunity_state, the
// currencies of the non-zero amounts of the tenant's rows in that part.
// Parts never change once written, so the currencies a View reads are the
// union over its parts, and only the parts new since the tenant's last
// View (inserts and merge results) are read. Superseded rows count too: a
// superset, which at worst makes a scan read each deal's currency where it
// could have summed under one.
type currencyCache struct {
	mu sync.Mutex
	m  map[string]map[string][]uint32 // tenant → part → curSQL numbers
}

// maxCurrencyTenants bounds currencyCache: beyond it, one tenant's entry
// is dropped for each new one.
const maxCurrencyTenants = 256

// oneCurrency reports whether every non-zero amount of tenant's rows in
// the parts v reads (v must not read with FINAL) is in one currency, and
// which (a curSQL number; 0 when there is no non-zero amount).
func (q *Querier) oneCurrency(ctx context.Context, tenant string, v *snapshot.View) (bool, uint32, error) {
	parts := v.Parts()
	c := &q.currencies
	have := make(map[string][]uint32, len(parts))
	var missing []string
	c.mu.Lock()
	for _, p := range parts {
		if cs, ok := c.m[tenant][p]; ok {
			have[p] = cs
		} else {
			missing = append(missing, p)
		}
	}
	c.mu.Unlock()
	if len(missing) > 0 {
		found, err := q.partCurrencies(ctx, tenant, missing)
		if err != nil {
			return false, 0, err
		}
		for p, cs := range found {
			have[p] = cs
		}
	}

	// Keep the parts of this View only: the others have been merged away,
	// or are newer than this View and will be read again.
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]map[string][]uint32{}
	}
	if _, ok := c.m[tenant]; !ok && len(c.m) >= maxCurrencyTenants {
		for t := range c.m {
			delete(c.m, t)
			break
		}
	}
	c.m[tenant] = have
	c.mu.Unlock()

	all := map[uint32]bool{}
	for _, cs := range have {
		for _, n := range cs {
			all[n] = true
		}
	}
	if len(all) > 1 {
		return false, 0, nil
	}
	var cur uint32
	for n := range all {
		cur = n
	}
	return true, cur, nil
}

// partCurrencies reads the currencies of the non-zero amounts of tenant's
// rows in each of parts (none for a part without the tenant's rows).
func (q *Querier) partCurrencies(ctx context.Context, tenant string, parts []string) (map[string][]uint32, error) {
	rows, err := q.conn.Query(q.queryCtx(ctx), partCurrenciesSQL,
		clickhouse.Named("tenant", tenant), clickhouse.Named("parts", snapshot.PartSet(parts)))
	if err != nil {
		return nil, fmt.Errorf("currencies of opportunity states: %w", err)
	}
	defer rows.Close()
	found := make(map[string][]uint32, len(parts))
	for _, p := range parts {
		found[p] = nil
	}
	for rows.Next() {
		var (
			part string
			cs   []uint32
		)
		if err := rows.Scan(&part, &cs); err != nil {
			return nil, fmt.Errorf("currencies of opportunity states: %w", err)
		}
		slices.Sort(cs)
		found[part] = cs
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("currencies of opportunity states: %w", err)
	}
	return found, nil
}

// partCurrenciesSQL is the query of partCurrencies: per part, the
// currencies (as curSQL's numbers) of the non-zero amounts of the tenant's
// rows.
var partCurrenciesSQL = `SELECT _part,
	groupUniqArrayArray(arrayMap(c -> reinterpretAsUInt32(c), arrayFilter((c, a) -> a != 0, currencies, amounts)))
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
