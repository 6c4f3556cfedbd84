package pipeline

import (
	"context"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
)

// TestPerTenantLadders runs two tenants with ladders of different step
// counts through the live pipeline: each tenant's derived events and
// states are those of its own ladder. A replay of one tenant with a
// changed ladder then rewrites that tenant only: the other's stored rows
// keep their versions.
func TestPerTenantLadders(t *testing.T) {
	const partitions = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t, partitions)
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	now := end.Add(24 * time.Hour)
	short, err := ladder.Parse("acme.yaml", []byte(shortLadder))
	if err != nil {
		t.Fatal(err)
	}
	ls := ladder.NewSet(nil, map[string]*ladder.Ladder{"acme": short})
	evs := map[string][]event.Event{}
	for i, tenant := range []string{"acme", "globex"} {
		cfg := gen.Config{Seed: int64(11 + i), Opportunities: 25, Tenant: tenant, End: end}
		if err := gen.Generate(ctx, cfg, func(ev event.Event) error {
			evs[tenant] = append(evs[tenant], ev)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}

	js := e.ingest(t)
	d, err := NewDeriver(ctx, js, e.st, ls, Config{BatchSize: 200, MaxWait: 100 * time.Millisecond, LeaseTTL: 2 * time.Second, Sweep: -1,
		Now: func() time.Time { return now }}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	go d.Run(ctx)
	pub := bus.NewPublisher(js, partitions)
	for _, tenant := range []string{"acme", "globex"} {
		if err := pub.PublishBatch(ctx, evs[tenant]); err != nil {
			t.Fatal(err)
		}
	}
	waitDrained(t, js, partitions)

	check := func(name, tenant string, l *ladder.Ladder) {
		t.Helper()
		got, err := e.st.CurrentDerived(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		want := expectedFor(tenant, evs[tenant], l, now)
		if len(want) == 0 {
			t.Fatalf("%s: %s derived nothing", name, tenant)
		}
		diffSets(t, name+" "+tenant, got, want)
		versions := stateVersions(t, e.st, tenant)
		if len(versions) != 1 || versions[l.Version] == 0 {
			t.Errorf("%s: %s's opportunity states by ladder version: %v, want all of %s", name, tenant, versions, l.Version)
		}
	}
	check("live", "acme", short)
	check("live", "globex", ladder.Default())
	if short.Len() == ladder.Default().Len() {
		t.Fatal("the ladders have as many steps")
	}

	// acme's ladder changes: a replay of acme alone rewrites acme with it
	// and leaves globex's rows as they were.
	changed, err := ladder.Parse("acme.yaml", []byte(strings.NewReplacer("version: short-1", "version: short-2", ": meet", ": intro").Replace(shortLadder)))
	if err != nil {
		t.Fatal(err)
	}
	globexBefore := rowVersions(t, e.st, "globex")
	if _, err := Replay(ctx, e.st, ladder.NewSet(nil, map[string]*ladder.Ladder{"acme": changed}), ReplayOptions{Tenants: []string{"acme"}, Now: now}, quiet); err != nil {
		t.Fatal(err)
	}
	check("replayed", "acme", changed)
	check("not replayed", "globex", ladder.Default())
	if after := rowVersions(t, e.st, "globex"); !maps.Equal(after, globexBefore) {
		t.Errorf("globex's stored rows changed by acme's replay: %d rows before, %d after", len(globexBefore), len(after))
	}
}

// expectedFor derives a tenant's events directly, without infrastructure.
func expectedFor(tenant string, evs []event.Event, l *ladder.Ladder, now time.Time) []derive.Derived {
	byOpp := map[string][]event.Event{}
	for _, ev := range evs {
		if ev.OpportunityID != "" {
			byOpp[ev.OpportunityID] = append(byOpp[ev.OpportunityID], ev)
		}
	}
	var out []derive.Derived
	for id, hist := range byOpp {
		out = append(out, derive.Derive(tenant, id, hist, l, now)...)
	}
	return out
}

// stateVersions counts a tenant's current opportunity states by ladder
// version.
func stateVersions(t *testing.T, st *store.Store, tenant string) map[string]uint64 {
	t.Helper()
	rows, err := st.Conn().Query(context.Background(), `SELECT ladder_version, count() FROM opportunity_state FINAL WHERE tenant = ? GROUP BY ladder_version`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var v string
		var n uint64
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		out[v] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rowVersions returns every stored row of a tenant, superseded ones
// included, derived events and opportunity states, with its version.
func rowVersions(t *testing.T, st *store.Store, tenant string) map[string]uint64 {
	t.Helper()
	rows, err := st.Conn().Query(context.Background(), `SELECT concat('derived ', id), version FROM derived_events WHERE tenant = ?
UNION ALL SELECT concat('state ', opportunity_id, ' ', toString(version)), version FROM opportunity_state WHERE tenant = ?`, tenant, tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var k string
		var v uint64
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		if v > out[k] {
			out[k] = v
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
