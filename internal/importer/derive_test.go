package importer

import (
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

// TestSalesforceHistoryDerives folds the events of sfHistory with the
// default ladder: the stage names of the standard Salesforce pipeline
// give commitments, and the moves to Closed Won and Closed Lost close the
// deals at the time of their history rows, with the amount of that row.
func TestSalesforceHistoryDerives(t *testing.T) {
	byOpp := eventsByOpp(t, SalesforceHistory("acme", "USD"), []byte(sfHistory))
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		opp, status string
		at          time.Time
		amount      float64
		gains       bool // Prospecting maps to no step: a deal lost from it gains none
	}{
		{"0065g00000AAAAAAA1", derive.StatusWon, time.Date(2024, 5, 20, 8, 0, 0, 0, time.UTC), 12500, true},
		{"0065g00000AAAAAAA2", derive.StatusLost, time.Date(2024, 3, 5, 12, 0, 0, 0, time.UTC), 5000, false},
	} {
		_, gained, closed := fold(byOpp[tc.opp], tc.opp, ladder.Default(), now)
		if len(closed) != 1 || closed[0].Status != tc.status || !closed[0].OccurredAt.Equal(tc.at) || closed[0].Amount != tc.amount {
			t.Errorf("%s: closes %+v, want one %s at %s for %v", tc.opp, closed, tc.status, tc.at, tc.amount)
		}
		if (len(gained) > 0) != tc.gains {
			t.Errorf("%s: %d commitments gained from its stages, want some: %v", tc.opp, len(gained), tc.gains)
		}
	}
}

// eventsByOpp parses data with p and gathers the events of the rows by
// opportunity, in row order.
func eventsByOpp(t *testing.T, p Parser, data []byte) map[string][]event.Event {
	t.Helper()
	rows, err := p.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	byOpp := map[string][]event.Event{}
	for _, r := range rows {
		for _, ev := range r.Events {
			byOpp[ev.OpportunityID] = append(byOpp[ev.OpportunityID], ev)
		}
	}
	return byOpp
}

// fold derives the events of opp, a deal of tenant acme, with l at now,
// and returns the derived events, the steps gained in order and the
// closes.
func fold(evs []event.Event, opp string, l *ladder.Ladder, now time.Time) (out []derive.Derived, gained []string, closes []derive.Derived) {
	out = derive.Derive("acme", opp, evs, l, now)
	for _, d := range out {
		switch d.Type {
		case derive.CommitmentGained:
			gained = append(gained, d.Step)
		case derive.DealClosed:
			closes = append(closes, d)
		}
	}
	return out, gained, closes
}

// checkCloses fails t unless closes is one close at at, or none when at
// is zero.
func checkCloses(t *testing.T, opp string, closes []derive.Derived, at time.Time) {
	t.Helper()
	if at.IsZero() != (len(closes) == 0) || len(closes) > 1 || len(closes) == 1 && !closes[0].OccurredAt.Equal(at) {
		t.Errorf("%s: closes %+v, want one at %s", opp, closes, at)
	}
}
