package main

import (
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestReportStageHistory: report stage-history prints the stages and the
// transition matrix, by owner too, of a deal that moved back and forth.
func TestReportStageHistory(t *testing.T) {
	ctx := context.Background()
	dsn := chtest.DSN(t)
	st := storetest.OpenDSN(t, dsn, store.Options{})
	d0 := time.Date(2024, 1, 8, 0, 0, 0, 0, time.UTC)
	ev := func(id string, days int, p event.Payload, typ event.Type) event.Event {
		at := d0.AddDate(0, 0, days)
		return event.Event{V: 1, ID: id, Tenant: "acme", Source: "salesforce", Type: typ, OccurredAt: at, ReceivedAt: at, OpportunityID: "a-1", Payload: p}
	}
	l := ladder.Default()
	var rows []store.DerivedRow
	for _, d := range derive.Derive("acme", "a-1", []event.Event{
		ev("1", 0, &event.Opportunity{Stage: "Qualification", OwnerID: "ann"}, event.OpportunityCreated),
		ev("2", 4, &event.StageChange{To: "Needs Analysis"}, event.StageChanged),
		ev("3", 6, &event.StageChange{To: "Qualification"}, event.StageChanged),
	}, l, d0.AddDate(0, 1, 0)) {
		rows = append(rows, store.DerivedRow{Derived: d, Version: 1})
	}
	if err := st.InsertDerivedWithStates(ctx, rows, l.Len()); err != nil {
		t.Fatal(err)
	}
	base := []string{"--clickhouse", dsn, "--tenant", "acme", "--log-level", "error", "--as-of", "2024-02-01"}

	out, err := runReport(append([]string{"stage-history"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"entries 3 (re-entries 1), moves 2: forward 1, backward 1", "transitions", "Needs Analysis"} {
		if !strings.Contains(out, want) {
			t.Errorf("stage-history table lacks %q:\n%s", want, out)
		}
	}
	out, err = runReport(append([]string{"stage-history", "--by", "owner", "--format", "csv", "--table", "transitions"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("csv: %v\n%s", err, out)
	}
	want := [][]string{
		{"key", "from", "to", "from_step", "to_step", "direction", "count"},
		{"", "Qualification", "Needs Analysis", "explore", "change", "forward", "1"},
		{"", "Needs Analysis", "Qualification", "change", "explore", "backward", "1"},
		{"ann", "Qualification", "Needs Analysis", "explore", "change", "forward", "1"},
		{"ann", "Needs Analysis", "Qualification", "change", "explore", "backward", "1"},
	}
	if strings.Join(flat(recs), "|") != strings.Join(flat(want), "|") {
		t.Errorf("transitions csv:\n%s", out)
	}
}

func flat(recs [][]string) []string {
	var out []string
	for _, r := range recs {
		out = append(out, strings.Join(r, ","))
	}
	return out
}
