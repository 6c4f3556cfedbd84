// Package snapshot reads opportunity_state (one row per opportunity, a
// ReplacingMergeTree by version) as a consistent, de-duplicated view without
// FINAL.
//
// FINAL de-duplicates while it reads, in one stream on ClickHouse 18.16:
// at 10M raw events (438k opportunities) it made the metric queries 1.3-2x
// slower than the same reads without it, although the table held no
// duplicates at all. A View instead pins the parts the table consists of
// right now (system.parts), reads only those (_part IN ...), and leaves out
// the rows in them that a newer version of the same opportunity replaces.
// Those superseded rows are found with one GROUP BY over the pinned parts,
// cached per tenant and, when the parts change (an insert or a merge),
// updated from the opportunities in the new parts only; they are sent with
// each query as an external table of (opp_hash, version), opp_hash being
// the stored cityHash64 of the id (migration 0104). Parts never change once
// written, so every query of one View sees exactly the same rows, and an
// answer made of several queries is consistent.
//
// A merge may retire a pinned part while a View is in use; Read checks
// afterwards that every pinned part is still active and otherwise reads
// again on a fresh View. It falls back to FINAL when the table has no parts
// of its own (the Distributed table of the cluster variant, or an empty
// table), when system.parts cannot be read (a user without the grant), when
// one opportunity has two rows with the same highest version
// (the same state written twice), or after repeated retries.
package snapshot

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/ext"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
)

// Table is the table a View reads.
const Table = "opportunity_state"

// attempts is how many Views Read tries before it reads with FINAL.
const attempts = 3

// maxTenants bounds the cache: the superseded rows of this many tenants are
// kept, the least recently used dropped first.
const maxTenants = 64

// Pinner hands out Views of Table. It is safe for concurrent use.
type Pinner struct {
	conn  driver.Conn
	final bool
	m     *pinMetrics // nil until Instrument

	mu    sync.Mutex
	cache map[string]*entry // by tenant
	clock uint64
}

// entry is the superseded rows of one tenant in one set of parts.
type entry struct {
	parts      []string // sorted
	superseded []row    // may also name rows merges have dropped since
	final      bool     // two rows share the highest version: read with FINAL
	// updates counts the incremental updates since the last full
	// listing; the rows merges dropped pile up until the next one.
	updates int
	used    uint64
}

// maxUpdates is how many incremental updates of an entry come before a
// full listing again.
const maxUpdates = 32

// row names one row of Table: the hash of its opportunity id and its
// version.
type row struct {
	hash    uint64 // cityHash64(opportunity_id), the column opp_hash
	version uint64
}

// New returns a Pinner reading through conn.
func New(conn driver.Conn) *Pinner {
	return &Pinner{conn: conn, cache: map[string]*entry{}}
}

// NewFinal returns a Pinner whose Views always read with FINAL, as the
// queries did before there were Views: for users who may not read
// system.parts, and to compare the two.
func NewFinal(conn driver.Conn) *Pinner {
	return &Pinner{conn: conn, final: true}
}

// pinMetrics counts what Read does.
type pinMetrics struct {
	reads      *prometheus.CounterVec
	retries    prometheus.Counter
	loads      *prometheus.CounterVec
	superseded prometheus.Histogram
}

// Instrument registers the Pinner's metrics on reg:
// commitflow_snapshot_reads_total{mode="view"|"final"} (answers read on a
// View or with FINAL), commitflow_snapshot_retries_total (answers read
// again because a merge retired a pinned part),
// commitflow_snapshot_superseded_loads_total{kind="full"|"incremental"}
// (listings of superseded rows, one per tenant and change of parts) and
// commitflow_snapshot_superseded_rows (how many each listing found). Call it
// before the Pinner is used.
func (p *Pinner) Instrument(reg prometheus.Registerer) error {
	m := &pinMetrics{
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_snapshot_reads_total",
			Help: "Answers read from opportunity_state, on a snapshot View or with FINAL.",
		}, []string{"mode"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commitflow_snapshot_retries_total",
			Help: "Answers read again because a merge retired a part of their View meanwhile (on a new View, with FINAL after 3 tries).",
		}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_snapshot_superseded_loads_total",
			Help: "Listings of the superseded rows of opportunity_state, one per tenant and change of parts: full, or incremental from the parts added since the last.",
		}, []string{"kind"}),
		superseded: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "commitflow_snapshot_superseded_rows",
			Help:    "Superseded rows each listing found (an incremental one: the rows it added).",
			Buckets: prometheus.ExponentialBuckets(1, 10, 8),
		}),
	}
	for _, c := range []prometheus.Collector{m.reads, m.retries, m.loads, m.superseded} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("snapshot metrics: %w", err)
		}
	}
	p.m = m
	return nil
}

// View is one consistent view of a tenant's rows of Table.
type View struct {
	final      bool
	parts      []string
	superseded []row
}

// Final reports whether the View reads with FINAL. Queries then see the
// table as it is when each runs, one stream per range of keys.
func (v *View) Final() bool { return v.final }

// Parts returns the names of the parts the View reads, sorted; nil for a
// View that reads with FINAL, whose rows are whatever the table holds when
// each query runs. Parts never change once written, so what is computed
// from one part's rows can be kept under its name.
func (v *View) Parts() []string {
	if v.final {
		return nil
	}
	return slices.Clone(v.parts)
}

// From is the table expression to read: Table, followed by FINAL when the
// View reads with FINAL.
func (v *View) From() string {
	if v.final {
		return Table + " FINAL"
	}
	return Table
}

// Where is the condition that keeps the View's parts ("1" when reading
// with FINAL). It names the bound argument @snapshot_parts (Args). Read a
// View with both: FROM v.From() [ARRAY JOIN ...] v.Prewhere() WHERE
// v.Where() AND ...
func (v *View) Where() string {
	if v.final {
		return "1"
	}
	return "_part IN @snapshot_parts"
}

// Prewhere is the clause that leaves out the superseded rows, "PREWHERE
// <condition>", or nothing when there are none or when reading with FINAL
// (18.16 fails on FINAL with PREWHERE 1). It names the external table
// _superseded (Context). As a PREWHERE it applies to the table's rows
// before any ARRAY JOIN and reads only the key and version first
// (ClickHouse does not allow _part there, hence Where).
func (v *View) Prewhere() string {
	if v.final || len(v.superseded) == 0 {
		return ""
	}
	return "PREWHERE (opp_hash, version) NOT IN _superseded"
}

// Args returns the bound arguments Where and Prewhere name.
func (v *View) Args() []any {
	if v.final {
		return nil
	}
	return []any{clickhouse.Named("snapshot_parts", PartSet(v.parts))}
}

// Context returns ctx carrying the external table Prewhere names, if any. Give
// every query of the View a context made by Context, after any other
// clickhouse.Context options.
func (v *View) Context(ctx context.Context) (context.Context, error) {
	if v.final || len(v.superseded) == 0 {
		return ctx, nil
	}
	t, err := supersededTable(v.superseded)
	if err != nil {
		return nil, err
	}
	return clickhouse.Context(ctx, clickhouse.WithExternalTable(t)), nil
}

// supersededTable is the external table _superseded holding rows.
func supersededTable(rows []row) (*ext.Table, error) {
	t, err := ext.NewTable("_superseded", ext.Column("h", "UInt64"), ext.Column("v", "UInt64"))
	if err != nil {
		return nil, fmt.Errorf("superseded rows table: %w", err)
	}
	hs, vs := make([]uint64, len(rows)), make([]uint64, len(rows))
	for i, r := range rows {
		hs[i], vs[i] = r.hash, r.version
	}
	cols := t.Block().Columns
	if _, err := cols[0].Append(hs); err != nil {
		return nil, fmt.Errorf("superseded rows table: %w", err)
	}
	if _, err := cols[1].Append(vs); err != nil {
		return nil, fmt.Errorf("superseded rows table: %w", err)
	}
	return t, nil
}

// Read returns what read returns on a View of tenant's rows. read may be
// called more than once: when a merge retired a pinned part meanwhile, it
// is called again on a fresh View (with FINAL after repeated retries).
// Read returns the value of the last call only, and drops what the earlier
// ones returned, so read must build its answer in what it returns, never in
// variables it shares with its caller: then nothing of a call that was
// read again can leak into the answer. On an error Read returns T's zero
// value.
func Read[T any](ctx context.Context, p *Pinner, tenant string, read func(ctx context.Context, v *View) (T, error)) (T, error) {
	var zero T
	for range attempts {
		v, err := p.pin(ctx, tenant)
		if err != nil {
			return zero, err
		}
		out, err := read(ctx, v)
		if err != nil {
			return zero, err
		}
		if v.final {
			p.count("final")
			return out, nil
		}
		ok, err := p.active(ctx, v.parts)
		if err != nil {
			return zero, err
		}
		if ok {
			p.count("view")
			return out, nil
		}
		if p.m != nil {
			p.m.retries.Inc()
		}
	}
	p.count("final")
	out, err := read(ctx, &View{final: true})
	if err != nil {
		return zero, err
	}
	return out, nil
}

// count counts an answer read in mode.
func (p *Pinner) count(mode string) {
	if p.m != nil {
		p.m.reads.WithLabelValues(mode).Inc()
	}
}

// pin returns a View of the parts Table consists of now.
func (p *Pinner) pin(ctx context.Context, tenant string) (*View, error) {
	if p.final {
		return &View{final: true}, nil
	}
	parts, err := p.parts(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		// A user who may not read system.parts still gets answers,
		// with FINAL; if the server is down, the read says so.
		return &View{final: true}, nil
	}
	if len(parts) == 0 {
		return &View{final: true}, nil
	}
	p.mu.Lock()
	old := p.cache[tenant]
	p.clock++
	if old != nil {
		old.used = p.clock
	}
	p.mu.Unlock()
	e := old
	if old == nil || !slices.Equal(old.parts, parts) {
		if e, err = p.load(ctx, tenant, parts, old); err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.clock++
		e.used = p.clock
		p.cache[tenant] = e
		if len(p.cache) > maxTenants {
			p.evict()
		}
		p.mu.Unlock()
	}
	if e.final {
		return &View{final: true}, nil
	}
	return &View{parts: parts, superseded: e.superseded}, nil
}

// evict drops the least recently used entry. p.mu must be held.
func (p *Pinner) evict() {
	var oldest string
	var used uint64
	for t, e := range p.cache {
		if oldest == "" || e.used < used {
			oldest, used = t, e.used
		}
	}
	delete(p.cache, oldest)
}

// parts returns the sorted names of Table's active parts in the current
// database.
func (p *Pinner) parts(ctx context.Context) ([]string, error) {
	rows, err := p.conn.Query(ctx, `SELECT name FROM system.parts
WHERE database = currentDatabase() AND table = @table AND active`, clickhouse.Named("table", Table))
	if err != nil {
		return nil, fmt.Errorf("list parts of %s: %w", Table, err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list parts of %s: %w", Table, err)
		}
		parts = append(parts, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list parts of %s: %w", Table, err)
	}
	slices.Sort(parts)
	return parts, nil
}

// active reports whether all of parts are still active.
func (p *Pinner) active(ctx context.Context, parts []string) (bool, error) {
	var n uint64
	err := p.conn.QueryRow(ctx, `SELECT count() FROM system.parts
WHERE database = currentDatabase() AND table = @table AND active AND name IN @parts`,
		clickhouse.Named("table", Table), clickhouse.Named("parts", PartSet(parts))).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("check parts of %s: %w", Table, err)
	}
	return n == uint64(len(parts)), nil
}

// load lists the superseded rows of tenant in parts: every row of an
// opportunity but the one with its highest version.
//
// From old, the listing of an earlier set of parts, it only looks at the
// opportunities that have rows in the parts old did not have (inserts and
// merge results): any other opportunity has all its rows in parts old
// listed, and a row superseded then stays superseded, since merges keep the
// highest version. The primary key finds those opportunities' rows
// without reading the whole table. Without old (or when old read with
// FINAL, or after maxUpdates updates) it lists from scratch, narrowing the
// opportunities with more than one row down by the hash of their id first
// (cheaper to group by than the id).
func (p *Pinner) load(ctx context.Context, tenant string, parts []string, old *entry) (*entry, error) {
	var added []string
	if old != nil && !old.final && old.updates < maxUpdates {
		for _, part := range parts {
			if _, ok := slices.BinarySearch(old.parts, part); !ok {
				added = append(added, part)
			}
		}
	}
	e := &entry{parts: parts}
	query := `SELECT opportunity_id, any(opp_hash), groupArray(version)
FROM ` + Table + `
WHERE tenant = @tenant AND _part IN @parts AND opp_hash IN (
	SELECT opp_hash FROM ` + Table + `
	WHERE tenant = @tenant AND _part IN @parts
	GROUP BY opp_hash HAVING count() > 1)
GROUP BY opportunity_id`
	args := []any{clickhouse.Named("tenant", tenant), clickhouse.Named("parts", PartSet(parts))}
	kind := "full"
	seen := map[row]bool{}
	if len(added) > 0 {
		kind = "incremental"
		e.updates = old.updates + 1
		kept, err := p.prune(ctx, tenant, parts, old)
		if err != nil {
			return nil, err
		}
		e.superseded = kept
		for _, r := range kept {
			seen[r] = true
		}
		query = `SELECT opportunity_id, any(opp_hash), groupArray(version)
FROM ` + Table + `
WHERE tenant = @tenant AND _part IN @parts AND opportunity_id IN (
	SELECT opportunity_id FROM ` + Table + `
	WHERE tenant = @tenant AND _part IN @added)
GROUP BY opportunity_id
HAVING count() > 1`
		args = append(args, clickhouse.Named("added", PartSet(added)))
	}
	rows, err := p.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("find superseded rows of %s: %w", Table, err)
	}
	defer rows.Close()
	n := len(e.superseded)
	for rows.Next() {
		var (
			id string
			h  uint64
			vs []uint64
		)
		if err := rows.Scan(&id, &h, &vs); err != nil {
			return nil, fmt.Errorf("find superseded rows of %s: %w", Table, err)
		}
		if len(vs) < 2 {
			continue
		}
		top := slices.Max(vs)
		tops := 0
		for _, v := range vs {
			if v == top {
				tops++
			} else if r := (row{h, v}); !seen[r] {
				seen[r] = true
				e.superseded = append(e.superseded, r)
			}
		}
		if tops > 1 {
			e.final = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find superseded rows of %s: %w", Table, err)
	}
	if p.m != nil {
		p.m.loads.WithLabelValues(kind).Inc()
		p.m.superseded.Observe(float64(len(e.superseded) - n))
	}
	return e, nil
}

// prune returns the superseded rows of old that are still in parts. Only a
// merge drops rows, so when every part of old is still there, that is all
// of them; otherwise it asks ClickHouse which remain. Without it, the rows
// a merge dropped would stay listed until the next full listing, and every
// query would go on checking for them: after run's compaction (one merge of
// the whole table), that is the whole cost compaction saves.
func (p *Pinner) prune(ctx context.Context, tenant string, parts []string, old *entry) ([]row, error) {
	if len(old.superseded) == 0 {
		return nil, nil
	}
	merged := false
	for _, part := range old.parts {
		if _, ok := slices.BinarySearch(parts, part); !ok {
			merged = true
			break
		}
	}
	if !merged {
		return slices.Clip(old.superseded), nil
	}
	t, err := supersededTable(old.superseded)
	if err != nil {
		return nil, err
	}
	rows, err := p.conn.Query(clickhouse.Context(ctx, clickhouse.WithExternalTable(t)), `SELECT DISTINCT opp_hash, version
FROM `+Table+`
PREWHERE (opp_hash, version) IN _superseded
WHERE tenant = @tenant AND _part IN @parts`,
		clickhouse.Named("tenant", tenant), clickhouse.Named("parts", PartSet(parts)))
	if err != nil {
		return nil, fmt.Errorf("find superseded rows of %s still there: %w", Table, err)
	}
	defer rows.Close()
	var kept []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.hash, &r.version); err != nil {
			return nil, fmt.Errorf("find superseded rows of %s still there: %w", Table, err)
		}
		kept = append(kept, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find superseded rows of %s still there: %w", Table, err)
	}
	return kept, nil
}

// PartSet is the value of a bound argument compared with _part IN: the
// names of parts as a set.
func PartSet(ss []string) clickhouse.GroupSet {
	vs := make([]any, len(ss))
	for i, s := range ss {
		vs[i] = s
	}
	return clickhouse.GroupSet{Value: vs}
}
