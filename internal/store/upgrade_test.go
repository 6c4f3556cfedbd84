package store_test

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
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// The upgrade tests (issue 19): a database left by each earlier release —
// every prefix of the migration list, holding rows written with the
// columns that release had — is migrated to today's schema, read by
// today's code, replayed, and compared with a database migrated from zero
// that was given the same input.

const upgradeTenant = "acme"

var (
	// upgradeEnd is where the generated book ends; upgradeNow is the
	// clock of every replay, and upgradeAsOf, upgradeFrom and upgradeTo
	// the dates of every answer compared.
	upgradeEnd        = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	upgradeNow        = upgradeEnd.Add(24 * time.Hour)
	upgradeAsOf       = upgradeEnd
	upgradePeriodFrom = upgradeEnd.AddDate(-1, 0, 0)
	upgradePeriodTo   = upgradeEnd
	upgradeQuiet      = slog.New(slog.DiscardHandler)
)

// computedOnly are the DEFAULT columns the releases up to 0116 left to
// ClickHouse to compute from the other columns (0103); an old release's
// rows are written without them. Today's InsertStates writes them, with
// the values the DEFAULT gives (store.TestMissLookbacks).
var computedOnly = []string{"miss_prev", "miss_prev_step", "miss_prev_reason", "miss_prev_owner"}

// upgradeInput returns a small generated book of one tenant, with free
// attributes on some deals and a second currency on others, so that the
// columns added for them have something to lose.
func upgradeInput(t *testing.T) []store.RawEvent {
	t.Helper()
	var rows []store.RawEvent
	cfg := gen.Config{Seed: 19, Opportunities: 24, Tenant: upgradeTenant, End: upgradeEnd, DuplicateRate: 0.02}
	err := gen.Generate(context.Background(), cfg, func(ev event.Event) error {
		if o, ok := ev.Payload.(*event.Opportunity); ok && ev.Type == event.OpportunityCreated {
			n := len(ev.OpportunityID)
			o.Attributes = map[string]string{"region": []string{"EMEA", "AMER", "APAC"}[int(ev.OpportunityID[n-1])%3]}
			if ev.OpportunityID[n-1]%2 == 0 {
				o.Currency = "EUR"
			}
		}
		data, err := event.Marshal(ev)
		if err != nil {
			return err
		}
		rows = append(rows, store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source, EventID: ev.ID,
			Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: uint64(len(rows) + 1), Payload: data})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// upgradeRef is the database migrated from zero, with the input stored
// and derived, and what today's code reads from it.
type upgradeRef struct {
	st      *store.Store
	opps    []string
	events  []store.RawEvent
	derived map[string][]derive.Derived
	states  map[string]map[string]any // by opportunity id, by column
	answers map[string]string         // by query, as JSON
}

// TestUpgradeFromEveryVersion builds, for each earlier schema version V
// (the first i migrations, i = 1 .. all but one), a database holding what
// that release wrote: the same input's events, derived events and
// opportunity states, each with only the columns that existed at V,
// inserted with explicit column lists. It then migrates it with Migrate
// and checks that the migration applies exactly the rest and is
// idempotent, that schema_migrations records every version with its
// checksum, that today's code reads the old rows (LoadEvents,
// LoadDerived, the columns added since reading as their migrations say),
// that every API answer is given without error, and that after a replay
// the derived events, the states and every answer equal those of the
// database migrated from zero.
func TestUpgradeFromEveryVersion(t *testing.T) {
	ctx := context.Background()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	ref := buildUpgradeRef(t, ctx, upgradeInput(t))
	for i := 1; i < len(ms); i++ {
		t.Run("from_"+strings.TrimSuffix(ms[i-1].File, ".sql"), func(t *testing.T) {
			upgradeFromVersion(t, ctx, ms, i, ref)
		})
	}
}

// buildUpgradeRef stores evs in a database migrated from zero and derives
// them (the replay path of commitflow replay).
func buildUpgradeRef(t *testing.T, ctx context.Context, evs []store.RawEvent) *upgradeRef {
	t.Helper()
	st := storetest.Open(t, store.Options{})
	if err := st.InsertEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Replay(ctx, st, ladder.Default(), pipeline.ReplayOptions{Now: upgradeNow}, upgradeQuiet); err != nil {
		t.Fatalf("replay the reference: %v", err)
	}
	ref := &upgradeRef{st: st}
	seen := map[string]bool{}
	for _, e := range evs {
		if !seen[e.OpportunityID] {
			seen[e.OpportunityID] = true
			ref.opps = append(ref.opps, e.OpportunityID)
		}
	}
	var err error
	if ref.events, err = st.LoadEvents(ctx, upgradeTenant, ref.opps); err != nil {
		t.Fatal(err)
	}
	if ref.derived, err = st.LoadDerived(ctx, upgradeTenant, ref.opps); err != nil {
		t.Fatal(err)
	}
	ref.states = stateRows(t, ctx, st.Conn())
	if len(ref.events) == 0 || len(ref.derived) == 0 || len(ref.states) == 0 {
		t.Fatalf("reference: %d events, derived events of %d deals, %d states", len(ref.events), len(ref.derived), len(ref.states))
	}
	var seqs, currencies, attrs, entries int
	for _, ds := range ref.derived {
		for _, d := range ds {
			seqs += min(d.Seq, 1)
			currencies += min(len(d.Currency), 1)
			attrs += min(len(d.Attrs), 1)
		}
	}
	for _, r := range ref.states {
		entries += len(r["stage_entries"].([]string))
	}
	// The columns added since the first releases must have something to
	// lose, or the test proves nothing about them.
	if seqs == 0 || currencies == 0 || attrs == 0 || entries == 0 {
		t.Fatalf("reference: derived events with seq %d, a currency %d, attributes %d; stage entries %d", seqs, currencies, attrs, entries)
	}
	ref.answers = apitest.Answers(t, ctx, st.Conn(), upgradeTenant, upgradePeriodFrom, upgradePeriodTo, upgradeAsOf)
	return ref
}

// upgradeFromVersion runs the upgrade from the schema of the first n
// migrations.
func upgradeFromVersion(t *testing.T, ctx context.Context, ms []store.Migration, n int, ref *upgradeRef) {
	st, err := store.Open(ctx, chtest.DSN(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	files := make([]string, len(ms))
	for i, m := range ms {
		files[i] = m.File
	}
	applied, err := st.MigrateTo(ctx, ms[n-1].Version)
	if err != nil || !slices.Equal(applied, files[:n]) {
		t.Fatalf("MigrateTo(%d) = %v, %v; want %v", ms[n-1].Version, applied, err, files[:n])
	}

	// What the release at this version wrote: the reference's rows, with
	// its columns.
	old := map[string][]string{}
	for _, table := range []string{"events", "derived_events", "opportunity_state"} {
		cols := insertable(t, ctx, st.Conn(), table)
		old[table] = cols
		if len(cols) == 0 {
			continue
		}
		list := strings.Join(cols, ", ")
		q := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s.%s", table, list, list, ref.st.Database(), table)
		if err := st.Conn().Exec(ctx, q); err != nil {
			t.Fatalf("write %s as of %s: %v", table, ms[n-1].File, err)
		}
	}

	applied, err = st.Migrate(ctx)
	if err != nil || !slices.Equal(applied, files[n:]) {
		t.Fatalf("Migrate from %s = %v, %v; want %v", ms[n-1].File, applied, err, files[n:])
	}
	if applied, err := st.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("second Migrate = %v, %v; want nothing", applied, err)
	}
	checkRecorded(t, ctx, st.Conn(), ms)
	if got, want := schemaOf(t, ctx, st.Conn()), schemaOf(t, ctx, ref.st.Conn()); !slices.Equal(got, want) {
		t.Errorf("schema after the upgrade:\n%s\nmigrated from zero:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Today's code reads the old rows.
	evs, err := st.LoadEvents(ctx, upgradeTenant, ref.opps)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(evs, ref.events) {
		t.Errorf("LoadEvents: %d events, want the %d written", len(evs), len(ref.events))
	}
	derived, err := st.LoadDerived(ctx, upgradeTenant, ref.opps)
	if err != nil {
		t.Fatal(err)
	}
	checkOldDerived(t, derived, ref.derived, old["derived_events"])
	if states := stateRows(t, ctx, st.Conn()); len(old["opportunity_state"]) == 0 {
		// Releases before 0101 kept no states: a replay writes them.
		if len(states) != 0 {
			t.Errorf("%d states, none written", len(states))
		}
	} else {
		checkOldStates(t, "before a merge", states, ref.states, old["opportunity_state"])
		// A merge writes the added columns into the old parts: the same
		// values.
		if err := st.Conn().Exec(ctx, "OPTIMIZE TABLE opportunity_state FINAL"); err != nil {
			t.Fatal(err)
		}
		checkOldStates(t, "after a merge", stateRows(t, ctx, st.Conn()), ref.states, old["opportunity_state"])
	}
	// Every answer is given (from what the old rows hold: no states before
	// 0101, per-second stage entries, unknown currencies, no attributes).
	apitest.Answers(t, ctx, st.Conn(), upgradeTenant, upgradePeriodFrom, upgradePeriodTo, upgradeAsOf)

	// After a replay, everything equals the database migrated from zero.
	if _, err := pipeline.Replay(ctx, st, ladder.Default(), pipeline.ReplayOptions{Now: upgradeNow}, upgradeQuiet); err != nil {
		t.Fatalf("replay: %v", err)
	}
	derived, err = st.LoadDerived(ctx, upgradeTenant, ref.opps)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(derived, ref.derived) {
		t.Errorf("after replay, the derived events differ from those migrated from zero")
	}
	checkOldStates(t, "after replay", stateRows(t, ctx, st.Conn()), ref.states, nil)
	got := apitest.Answers(t, ctx, st.Conn(), upgradeTenant, upgradePeriodFrom, upgradePeriodTo, upgradeAsOf)
	for q, want := range ref.answers {
		if got[q] != want {
			t.Errorf("after replay, %s answers\n%.400s\nfrom zero\n%.400s", q, got[q], want)
		}
	}
}

// insertable lists the columns of table that commitflow inserts, as the
// schema of conn's database has them: none without the table.
func insertable(t *testing.T, ctx context.Context, conn driver.Conn, table string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT name FROM system.columns
WHERE database = currentDatabase() AND table = ? AND default_kind NOT IN ('MATERIALIZED', 'ALIAS') AND NOT has(?, name)
ORDER BY name`, table, computedOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols
}

// schemaOf lists the tables and columns of conn's database, with their
// types and defaults.
func schemaOf(t *testing.T, ctx context.Context, conn driver.Conn) []string {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT t.name, t.engine, c.name, c.type, c.default_kind, c.default_expression
FROM system.tables AS t LEFT JOIN (SELECT table, name, type, default_kind, default_expression FROM system.columns WHERE database = currentDatabase()) AS c
ON t.name = c.table
WHERE t.database = currentDatabase() ORDER BY t.name, c.name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var table, engine, name, typ, kind, expr string
		if err := rows.Scan(&table, &engine, &name, &typ, &kind, &expr); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join([]string{table, engine, name, typ, kind, expr}, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkRecorded checks that schema_migrations records each of ms once,
// with its name and checksum.
func checkRecorded(t *testing.T, ctx context.Context, conn driver.Conn, ms []store.Migration) {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT version, name, checksum FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got, want []string
	for rows.Next() {
		var v uint32
		var name, sum string
		if err := rows.Scan(&v, &name, &sum); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%04d %s %s", v, name, sum))
	}
	for _, m := range ms {
		want = append(want, fmt.Sprintf("%04d %s %s", m.Version, m.Name, m.Checksum))
	}
	if !slices.Equal(got, want) {
		t.Errorf("schema_migrations holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// checkOldDerived compares the derived events read after the upgrade with
// those written today, less the columns added after the old release (old,
// empty without the table), as storetest.OldDerived says.
func checkOldDerived(t *testing.T, got, ref map[string][]derive.Derived, old []string) {
	t.Helper()
	if len(old) == 0 {
		if len(got) != 0 {
			t.Errorf("LoadDerived: derived events of %d deals, none written", len(got))
		}
		return
	}
	want := storetest.OldDerived(ref, old)
	for opp := range want {
		if !reflect.DeepEqual(got[opp], want[opp]) {
			t.Errorf("LoadDerived %s:\n got %+v\nwant %+v", opp, got[opp], want[opp])
			return
		}
	}
	if len(got) != len(want) {
		t.Errorf("LoadDerived: derived events of %d deals, want %d", len(got), len(want))
	}
}

// checkOldStates compares the states read after the upgrade with those
// written today, column by column (version aside): a column the old
// release wrote (in old) reads as written, one added since reads as
// oldRowValue says. With old nil, every column must read as today's.
func checkOldStates(t *testing.T, when string, got, ref map[string]map[string]any, old []string) {
	t.Helper()
	if len(got) != len(ref) {
		t.Errorf("%s: %d states, want %d", when, len(got), len(ref))
	}
	bad := 0
	for opp, r := range ref {
		g, ok := got[opp]
		if !ok {
			t.Errorf("%s: no state of %s", when, opp)
			continue
		}
		for col, v := range r {
			want := v
			if col == "version" {
				continue
			}
			if old != nil && !slices.Contains(old, col) {
				f := storetest.OldStateValue[col]
				if f == nil {
					t.Fatalf("%s: opportunity_state.%s was added after the old release: say in storetest.OldStateValue what an old row reads", when, col)
				}
				want = f(r, g)
			}
			if a, b := show(g[col]), show(want); a != b {
				if bad++; bad <= 5 {
					t.Errorf("%s: state of %s: %s = %.200s, want %.200s", when, opp, col, a, b)
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

// stateRows reads the current opportunity states of conn's database, by
// opportunity id and column.
func stateRows(t *testing.T, ctx context.Context, conn driver.Conn) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	cols := strings.Join(append(insertable(t, ctx, conn, "opportunity_state"), materialized(t, ctx, conn, "opportunity_state")...), ", ")
	rows, err := conn.Query(ctx, "SELECT "+cols+" FROM opportunity_state FINAL WHERE tenant = ?", upgradeTenant)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	names := rows.Columns()
	for rows.Next() {
		ptrs := make([]any, len(names))
		for i, ct := range rows.ColumnTypes() {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := make(map[string]any, len(names))
		for i, p := range ptrs {
			r[names[i]] = reflect.ValueOf(p).Elem().Interface()
		}
		out[r["opportunity_id"].(string)] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// materialized lists the columns of table ClickHouse computes (MATERIALIZED,
// and the computed-only DEFAULT columns), which SELECT * leaves out.
func materialized(t *testing.T, ctx context.Context, conn driver.Conn, table string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT name FROM system.columns
WHERE database = currentDatabase() AND table = ? AND (default_kind = 'MATERIALIZED' OR has(?, name))
ORDER BY name`, table, computedOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var cols []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		cols = append(cols, c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return cols
}
