package snapshot

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Summary is what a query may take from the rows of a View's parts
// instead of reading each row: a superset of what the View's rows hold,
// since the parts' superseded rows count too.
type Summary struct {
	// Currencies are the currencies of the rows' non-zero amounts, each
	// as reinterpretAsUInt32 makes a number of its code, sorted.
	Currencies []uint32
	// Latest is the latest latest_at of the rows (UInt32 seconds, 0 for
	// none): as of a time at or after it, every row's facts and state are
	// its latest_* columns (migration 0115).
	Latest uint32
	// LadderVersions are the versions of the ladders the rows were
	// derived with (ladder_version, "" left out), sorted.
	LadderVersions []string
}

// Summaries keeps, per tenant and part of Table, the Summary of the
// tenant's rows in that part. Parts never change once written, so the
// Summary of the rows a View reads is that of its parts, and only the
// parts new since the tenant's last View (inserts and merge results) are
// read. It is safe for concurrent use; the zero value is ready.
type Summaries struct {
	mu sync.Mutex
	m  map[string]map[string]Summary // tenant → part → summary
}

// maxSummaryTenants bounds Summaries: beyond it, one tenant's entry is
// dropped for each new one.
const maxSummaryTenants = 256

// Of returns the Summary of tenant's rows in the parts v reads, reading
// the parts it has not seen through conn with ctx, and false for a View
// read with FINAL, which has no parts of its own.
func (s *Summaries) Of(ctx context.Context, conn driver.Conn, tenant string, v *View) (Summary, bool, error) {
	if v.Final() {
		return Summary{}, false, nil
	}
	parts := v.Parts()
	have := make(map[string]Summary, len(parts))
	var missing []string
	s.mu.Lock()
	for _, p := range parts {
		if ps, ok := s.m[tenant][p]; ok {
			have[p] = ps
		} else {
			missing = append(missing, p)
		}
	}
	s.mu.Unlock()
	if len(missing) > 0 {
		found, err := partSummaries(ctx, conn, tenant, missing)
		if err != nil {
			return Summary{}, false, err
		}
		for p, ps := range found {
			have[p] = ps
		}
	}

	// Keep the parts of this View only: the others have been merged away,
	// or are newer than this View and will be read again.
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]map[string]Summary{}
	}
	if _, ok := s.m[tenant]; !ok && len(s.m) >= maxSummaryTenants {
		for t := range s.m {
			delete(s.m, t)
			break
		}
	}
	s.m[tenant] = have
	s.mu.Unlock()

	var all Summary
	for _, ps := range have {
		all.Currencies = append(all.Currencies, ps.Currencies...)
		all.Latest = max(all.Latest, ps.Latest)
		all.LadderVersions = append(all.LadderVersions, ps.LadderVersions...)
	}
	slices.Sort(all.Currencies)
	all.Currencies = slices.Compact(all.Currencies)
	slices.Sort(all.LadderVersions)
	all.LadderVersions = slices.Compact(all.LadderVersions)
	return all, true, nil
}

// partSummaries reads the Summary of tenant's rows in each of parts (the
// zero Summary for a part without the tenant's rows).
func partSummaries(ctx context.Context, conn driver.Conn, tenant string, parts []string) (map[string]Summary, error) {
	rows, err := conn.Query(ctx, summariesSQL, clickhouse.Named("tenant", tenant), clickhouse.Named("parts", PartSet(parts)))
	if err != nil {
		return nil, fmt.Errorf("summaries of %s parts: %w", Table, err)
	}
	defer rows.Close()
	found := make(map[string]Summary, len(parts))
	for _, p := range parts {
		found[p] = Summary{}
	}
	for rows.Next() {
		var (
			part string
			ps   Summary
		)
		if err := rows.Scan(&part, &ps.Currencies, &ps.Latest, &ps.LadderVersions); err != nil {
			return nil, fmt.Errorf("summaries of %s parts: %w", Table, err)
		}
		slices.Sort(ps.Currencies)
		slices.Sort(ps.LadderVersions)
		found[part] = ps
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summaries of %s parts: %w", Table, err)
	}
	return found, nil
}

// summariesSQL is the query of the Summaries of parts: per part, the
// currencies of the non-zero amounts of the tenant's rows, their latest
// latest_at and their ladder versions.
const summariesSQL = `SELECT _part,
	groupUniqArrayArray(arrayMap(c -> reinterpretAsUInt32(c), arrayFilter((c, a) -> a != 0, currencies, amounts))),
	toUInt32(max(latest_at)),
	groupUniqArrayIf(ladder_version, ladder_version != '')
FROM ` + Table + `
WHERE tenant = @tenant AND _part IN @parts
GROUP BY _part`
