//go:build cluster

package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/api/apitest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// The cluster variant of internal/store's TestUpgradeFromEveryVersion, for
// a few representative earlier versions.

// upgradeVersions are the earlier versions upgraded from: the first, the
// first with opportunity_state, the one before 0106 (seq), the one with
// stage entries; the one before the latest is added by the test.
var upgradeVersions = []int{1, 101, 105, 107}

// upgradeNow is the clock of every replay in TestUpgrade, so that the
// reference and the upgraded databases judge stalls alike.
var upgradeNow = time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)

// computedOnly are the DEFAULT columns the releases up to 0116 left to
// ClickHouse to compute from the other columns (0103); an old release's
// rows are written without them. Today's InsertStates writes them, with
// the values the DEFAULT gives (store.TestMissLookbacks).
var computedOnly = []string{"miss_prev", "miss_prev_step", "miss_prev_reason", "miss_prev_owner"}

// TestUpgrade upgrades databases on the cluster from earlier schema
// versions (issue 19: migrations from each earlier version). For each, it
// applies the migrations up to that version (--clickhouse-cluster),
// writes through the Distributed tables what that release wrote — the
// events, derived events and states of a generated book, with only the
// columns that existed then, by explicit column lists —, and migrates the
// rest. It checks that the migration applies exactly the rest and that
// migrating again through another host has nothing to do; that every
// host's schema_migrations records every version with its checksum and
// every host's tables have the columns of a database migrated from zero
// (the Distributed tables those of their local tables, MATERIALIZED as
// ALIAS); that today's code reads the old rows through the Distributed
// tables (LoadEvents, LoadDerived, the columns added since as their
// migrations say); that every API answer is given; and that after a replay
// the derived events, the states and every answer equal those of a single
// server migrated from zero and given the same input.
func TestUpgrade(t *testing.T) {
	e := env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	const tenant = "t-upgrade"
	cfg := gen.Config{Seed: 19, Opportunities: 16, Tenant: tenant, End: upgradeNow.AddDate(0, 0, -1)}
	evs := generate(t, ctx, cfg)
	for _, ev := range evs {
		// Attributes and a second currency, so that the columns added for
		// them have something to lose.
		if o, ok := ev.Payload.(*event.Opportunity); ok && ev.Type == event.OpportunityCreated {
			n := len(ev.OpportunityID)
			o.Attributes = map[string]string{"region": []string{"EMEA", "AMER", "APAC"}[int(ev.OpportunityID[n-1])%3]}
			if ev.OpportunityID[n-1]%2 == 0 {
				o.Currency = "EUR"
			}
		}
	}
	ref := upgradeReference(t, ctx, evs)
	asOf, from := cfg.End, cfg.End.AddDate(-1, 0, 0)
	refAnswers := apitest.Answers(t, ctx, ref.Conn(), tenant, from, cfg.End, asOf)
	var opps []string
	for _, ev := range evs {
		if !slices.Contains(opps, ev.OpportunityID) {
			opps = append(opps, ev.OpportunityID)
		}
	}
	refEvents, err := ref.LoadEvents(ctx, tenant, opps)
	if err != nil {
		t.Fatal(err)
	}
	refDerived, err := ref.LoadDerived(ctx, tenant, opps)
	if err != nil {
		t.Fatal(err)
	}
	refStates := stateRows(t, ctx, ref.Conn(), "opportunity_state", tenant)
	refSchema := map[string][]string{}
	for _, table := range []string{"events", "derived_events", "opportunity_state"} {
		refSchema[table] = columnDefs(t, ctx, ref.Conn(), ref.Database(), table)
	}

	files := make([]string, len(ms))
	for i, m := range ms {
		files[i] = m.File
	}
	for _, v := range append(upgradeVersions, ms[len(ms)-2].Version) {
		n := slices.IndexFunc(ms, func(m store.Migration) bool { return m.Version == v }) + 1
		if n == 0 {
			t.Fatalf("no migration %04d", v)
		}
		t.Run(fmt.Sprintf("from_%04d", v), func(t *testing.T) {
			start := time.Now()
			db := newDatabase(t, e)
			st := openStore(t, ctx, e, db)
			if applied, err := st.MigrateTo(ctx, v); err != nil || !slices.Equal(applied, files[:n]) {
				t.Fatalf("MigrateTo(%d) = %v, %v; want %v", v, applied, err, files[:n])
			}
			old := map[string][]string{}
			for _, table := range []string{"events", "derived_events", "opportunity_state"} {
				old[table] = insertable(t, ctx, connect(t, e.hosts[0], db), db, table+"_local")
				copyRows(t, ctx, ref.Conn(), st.Conn(), table, old[table])
			}
			if applied, err := st.Migrate(ctx); err != nil || !slices.Equal(applied, files[n:]) {
				t.Fatalf("Migrate from %04d = %v, %v; want %v", v, applied, err, files[n:])
			}
			out := commitflow(t, ctx, "migrate", "--clickhouse", dsn(db, e.hosts[3]), "--clickhouse-cluster", e.cluster, "--log-level", "warn")
			if !strings.Contains(out, "schema is up to date") {
				t.Errorf("second migrate through another host:\n%s", out)
			}
			checkHosts(t, ctx, e, db, ms, refSchema)
			t.Logf("migrated in %s", time.Since(start).Round(time.Millisecond))

			// Today's code reads the old rows through the Distributed tables.
			syncReplicas(t, ctx, e, db, "events", "derived_events", "opportunity_state")
			got, err := st.LoadEvents(ctx, tenant, opps)
			if err != nil || !reflect.DeepEqual(got, refEvents) {
				t.Errorf("LoadEvents: %d events, %v; want the %d written", len(got), err, len(refEvents))
			}
			derived, err := st.LoadDerived(ctx, tenant, opps)
			if err != nil {
				t.Fatal(err)
			}
			if want := storetest.OldDerived(refDerived, old["derived_events"]); !reflect.DeepEqual(derived, want) {
				t.Errorf("LoadDerived: derived events of %d deals, want %d as written before (seq 0, currency '', no attributes as their migrations say)",
					len(derived), len(want))
			}
			checkOldStates(t, stateRows(t, ctx, st.Conn(), "opportunity_state", tenant), refStates, old["opportunity_state"])
			apitest.Answers(t, ctx, st.Conn(), tenant, from, cfg.End, asOf)

			// After a replay, everything equals the single server's.
			if _, err := pipeline.Replay(ctx, st, ladder.Default(), pipeline.ReplayOptions{Tenants: []string{tenant}, Now: upgradeNow},
				slog.New(slog.DiscardHandler)); err != nil {
				t.Fatalf("replay: %v", err)
			}
			syncReplicas(t, ctx, e, db, "derived_events", "opportunity_state")
			if bad := compareDerivation(t, ctx, st.Conn(), ref.Conn(), tenant); bad > 0 {
				t.Errorf("after replay, %d deals differ from the single server migrated from zero", bad)
			}
			answers := apitest.Answers(t, ctx, st.Conn(), tenant, from, cfg.End, asOf)
			for q, want := range refAnswers {
				if answers[q] != want {
					t.Errorf("after replay, %s answers\n%.400s\nthe single server\n%.400s", q, answers[q], want)
				}
			}
			t.Logf("upgraded, checked and replayed in %s", time.Since(start).Round(time.Millisecond))
		})
	}
}

// upgradeReference stores one copy of each of evs on a private single
// server migrated from zero and derives them with the clock at
// upgradeNow.
func upgradeReference(t *testing.T, ctx context.Context, evs []event.Event) *store.Store {
	t.Helper()
	ch := chtest.Server(t)
	st, err := store.Open(ctx, fmt.Sprintf("clickhouse://127.0.0.1:%d/reference", ch.TCPPort()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rows := make([]store.RawEvent, len(evs))
	for i, ev := range evs {
		data, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source, EventID: ev.ID,
			Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: uint64(i + 1), Payload: data}
	}
	if err := st.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Replay(ctx, st, ladder.Default(), pipeline.ReplayOptions{Now: upgradeNow}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("reference: replay: %v", err)
	}
	return st
}

// insertable lists the columns of table in database db that commitflow
// inserts; none without the table.
func insertable(t *testing.T, ctx context.Context, conn driver.Conn, db, table string) []string {
	t.Helper()
	return strs(t, ctx, conn, `SELECT name FROM system.columns
WHERE database = ? AND table = ? AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') AND NOT has(?, name)
ORDER BY name`, db, table, computedOnly)
}

// strs returns the one String column of the rows of q.
func strs(t *testing.T, ctx context.Context, conn driver.Conn, q string, args ...any) []string {
	t.Helper()
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// copyRows copies every row of table from src to dst, columns cols, with
// an explicit column list, as the release that had those columns wrote
// them.
func copyRows(t *testing.T, ctx context.Context, src, dst driver.Conn, table string, cols []string) {
	t.Helper()
	if len(cols) == 0 {
		return
	}
	list := strings.Join(cols, ", ")
	rows, err := src.Query(ctx, "SELECT "+list+" FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	batch, err := dst.PrepareBatch(ctx, "INSERT INTO "+table+" ("+list+")")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		ptrs := make([]any, len(cols))
		for i, ct := range rows.ColumnTypes() {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		vals := make([]any, len(ptrs))
		for i, p := range ptrs {
			vals[i] = reflect.ValueOf(p).Elem().Interface()
		}
		if err := batch.Append(vals...); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("write %s: %v", table, err)
	}
}

// columnDefs lists the columns of table in db: name, type, default kind
// and expression.
func columnDefs(t *testing.T, ctx context.Context, conn driver.Conn, db, table string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT name, type, default_kind, default_expression FROM system.columns
WHERE database = ? AND table = ? ORDER BY name`, db, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name, typ, kind, expr string
		if err := rows.Scan(&name, &typ, &kind, &expr); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{name, typ, kind, expr}, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkHosts checks on every host that schema_migrations records each of
// ms with its name and checksum, that each local table has the columns of
// the reference (ref, by table), and that each Distributed table has
// those of its local table, MATERIALIZED ones as ALIAS.
func checkHosts(t *testing.T, ctx context.Context, e environment, db string, ms []store.Migration, ref map[string][]string) {
	t.Helper()
	var want []string
	for _, m := range ms {
		want = append(want, fmt.Sprintf("%04d %s %s", m.Version, m.Name, m.Checksum))
	}
	for _, host := range e.hosts {
		conn := connect(t, host, db)
		if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA "+db+".schema_migrations"); err != nil {
			t.Fatalf("%s: sync schema_migrations: %v", host, err)
		}
		var got []string
		rows, err := conn.Query(ctx, `SELECT version, name, checksum FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v uint32
			var name, sum string
			if err := rows.Scan(&v, &name, &sum); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%04d %s %s", v, name, sum))
		}
		rows.Close()
		if !slices.Equal(got, want) {
			t.Errorf("%s: schema_migrations holds\n%s\nwant\n%s", host, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for table, refCols := range ref {
			local := columnDefs(t, ctx, conn, db, table+"_local")
			if !slices.Equal(local, refCols) {
				t.Errorf("%s: %s_local has\n%s\nmigrated from zero on one server:\n%s", host, table, strings.Join(local, "\n"), strings.Join(refCols, "\n"))
			}
			var alias []string
			for _, c := range local {
				alias = append(alias, strings.Replace(c, " MATERIALIZED ", " ALIAS ", 1))
			}
			if dist := columnDefs(t, ctx, conn, db, table); !slices.Equal(dist, alias) {
				t.Errorf("%s: Distributed %s has\n%s\nits local table\n%s", host, table, strings.Join(dist, "\n"), strings.Join(local, "\n"))
			}
		}
	}
}

// checkOldStates compares the states read after the upgrade with those
// written today, column by column (version aside): a column the old
// release wrote (in old) reads as written, one added since as
// oldStateValue says. With no old columns (no table), there is none.
func checkOldStates(t *testing.T, got, ref map[string]map[string]any, old []string) {
	t.Helper()
	if len(old) == 0 {
		if len(got) != 0 {
			t.Errorf("%d states, none written", len(got))
		}
		return
	}
	if len(got) != len(ref) {
		t.Errorf("%d states, want %d", len(got), len(ref))
	}
	bad := 0
	for opp, r := range ref {
		g := got[opp]
		for col, want := range r {
			if col == "version" {
				continue
			}
			if !slices.Contains(old, col) {
				f := storetest.OldStateValue[col]
				if f == nil {
					t.Fatalf("opportunity_state.%s was added after the old release: say in storetest.OldStateValue what an old row reads", col)
				}
				want = f(r, g)
			}
			if a, b := show(g[col]), show(want); a != b {
				if bad++; bad <= 5 {
					t.Errorf("state of %s: %s = %.200s, want %.200s", opp, col, a, b)
				}
			}
		}
	}
}

// show formats a column value for comparison, times in UTC.
func show(v any) string {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().String()
	case []time.Time:
		out := make([]string, len(x))
		for i, tm := range x {
			out[i] = tm.UTC().String()
		}
		return fmt.Sprint(out)
	}
	return fmt.Sprint(v)
}

// stateRows reads tenant's current rows of table (opportunity_state, or
// the Distributed table of that name), every column, by opportunity id and
// column.
func stateRows(t *testing.T, ctx context.Context, conn driver.Conn, table, tenant string) map[string]map[string]any {
	t.Helper()
	cols := strs(t, ctx, conn, `SELECT name FROM system.columns WHERE database = currentDatabase() AND table = ? ORDER BY name`, table)
	rows, err := conn.Query(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM "+table+" FINAL WHERE tenant = ?", tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]map[string]any{}
	for rows.Next() {
		ptrs := make([]any, len(cols))
		for i, ct := range rows.ColumnTypes() {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := make(map[string]any, len(cols))
		for i, p := range ptrs {
			r[cols[i]] = reflect.ValueOf(p).Elem().Interface()
		}
		out[r["opportunity_id"].(string)] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
