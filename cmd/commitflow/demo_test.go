package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/people"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestLoadDemoNamesOwners loads the demo into ClickHouse and an embedded
// JetStream: afterwards the people table names every owner of the demo's
// events, with an e-mail; loading again writes no person twice.
func TestLoadDemoNamesOwners(t *testing.T) {
	ctx := context.Background()
	st := storetest.OpenDSN(t, chtest.DSN(t), store.Options{})
	_, js := embeddedBus(t, 2)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	const opps = 60
	if err := loadDemo(ctx, st, js, opps, log); err != nil {
		t.Fatal(err)
	}
	owners := map[string]bool{}
	if err := gen.Generate(ctx, demoConfig(opps), func(ev event.Event) error {
		switch p := ev.Payload.(type) {
		case *event.Opportunity:
			owners[p.OwnerID] = p.OwnerID != ""
		case *event.OwnerChange:
			owners[p.To] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	dir := people.New(st.Conn())
	ids := make([]string, 0, len(owners))
	for id := range owners {
		ids = append(ids, id)
	}
	named, err := dir.Lookup(ctx, demoTenant, ids)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if p, ok := named[id]; id != "" && (!ok || p.Name == "" || p.Email == "") {
			t.Errorf("owner %q of the demo is not named: %+v", id, p)
		}
	}
	if len(named) == 0 {
		t.Fatal("no owner of the demo in the people table")
	}
	users, err := gen.Users(demoConfig(opps))
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]people.Person, 0, len(users[demoTenant]))
	for _, u := range users[demoTenant] {
		ps = append(ps, people.Person{ID: u.ID, Name: u.Name, Email: u.Email, Team: u.Team, Manager: u.Manager})
	}
	if c, err := dir.Import(ctx, demoTenant, ps); err != nil || c.New != 0 || c.Changed != 0 {
		t.Errorf("the demo's users again: %+v, %v; want all unchanged", c, err)
	}
}
