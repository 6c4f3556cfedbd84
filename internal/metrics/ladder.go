package metrics

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/snapshot"
)

// LadderError reports that a tenant's opportunity states were not all
// derived with the ladder a question names its steps by: step indexes
// would be read as another ladder's steps. The API maps it to 409
// Conflict.
type LadderError struct {
	Tenant string
	// Want is the version of the ladder the question was asked with.
	Want string
	// Found counts the tenant's current opportunity states by the version
	// of the ladder they were derived with. Want is among them when only
	// some states differ (a replay under way, say).
	Found map[string]uint64
}

func (e *LadderError) Error() string {
	var other []string
	var n, total uint64
	for _, v := range slices.Sorted(maps.Keys(e.Found)) {
		total += e.Found[v]
		if v == e.Want {
			continue
		}
		n += e.Found[v]
		other = append(other, fmt.Sprintf("%s (%d)", v, e.Found[v]))
	}
	return fmt.Sprintf("tenant %s: %d of %d opportunity states were derived with ladder %s, not with ladder %s",
		e.Tenant, n, total, strings.Join(other, ", "), e.Want)
}

// CheckLadder returns a *LadderError unless every current opportunity
// state of tenant was derived with the ladder of the given version; a
// tenant without states passes, and so do states without derived events
// (no ladder version), which name no step. On a View of the table's parts
// it first takes the versions of the tenant's rows in each part from the
// parts' Summaries (read once per part; superseded rows included, as after
// a replay until merges drop them); with FINAL, where there are none, it
// counts the versions of all the tenant's rows, one short column. Only
// when another version shows up there does it count again on the View,
// current states only.
func (q *Querier) CheckLadder(ctx context.Context, tenant, version string) error {
	found, err := snapshot.Read(ctx, q.pin, tenant, func(ctx context.Context, v *snapshot.View) (map[string]uint64, error) {
		sum, ok, err := q.parts.Of(q.queryCtx(ctx), q.conn, tenant, v)
		if err != nil {
			return nil, err
		}
		if ok && only(sum.LadderVersions, version) {
			return nil, nil
		}
		if !ok {
			found, err := ladderVersions(q.queryCtx(ctx), q.conn, "SELECT ladder_version, count() FROM "+snapshot.Table+
				" WHERE tenant = @tenant AND ladder_version != '' GROUP BY ladder_version", clickhouse.Named("tenant", tenant))
			if err != nil || only(slices.Collect(maps.Keys(found)), version) {
				return nil, err
			}
		}
		qctx, err := v.Context(q.queryCtx(ctx))
		if err != nil {
			return nil, err
		}
		query := "SELECT ladder_version, count() FROM " + v.From() + " " + v.Prewhere() +
			" WHERE tenant = @tenant AND ladder_version != '' AND " + v.Where() + " GROUP BY ladder_version"
		return ladderVersions(qctx, q.conn, query, append([]any{clickhouse.Named("tenant", tenant)}, v.Args()...)...)
	})
	if err != nil || only(slices.Collect(maps.Keys(found)), version) {
		return err
	}
	return &LadderError{Tenant: tenant, Want: version, Found: found}
}

// ladderVersions runs query, which yields (ladder_version, count) rows.
func ladderVersions(ctx context.Context, conn driver.Conn, query string, args ...any) (map[string]uint64, error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("ladder versions of opportunity states: %w", err)
	}
	defer rows.Close()
	found := map[string]uint64{}
	for rows.Next() {
		var v string
		var n uint64
		if err := rows.Scan(&v, &n); err != nil {
			return nil, fmt.Errorf("ladder versions of opportunity states: %w", err)
		}
		found[v] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ladder versions of opportunity states: %w", err)
	}
	return found, nil
}

// only reports whether versions holds no version but v.
func only(versions []string, v string) bool {
	for _, k := range versions {
		if k != v {
			return false
		}
	}
	return true
}
