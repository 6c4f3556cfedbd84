package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"testing"

	"github.com/commitflow/commitflow/internal/event"
)

// TestNeverAddsCurrencies checks, on the JSON a client reads, that an
// answer whose deals are in USD and EUR does not add the two: its scalar
// amounts are null, and each counts object holds the sums per currency.
func TestNeverAddsCurrencies(t *testing.T) {
	s := openStore(t)
	at := date("2024-02-01T00:00:00Z")
	deals := map[string][]event.Event{}
	for i, c := range []struct {
		amount float64
		cur    string
	}{{100, "USD"}, {200, "EUR"}, {50, "USD"}} {
		opp := fmt.Sprintf("opp-%d", i)
		deals[opp] = []event.Event{{V: 1, ID: "e-" + opp, Tenant: "acme", Source: "salesforce", Type: event.OpportunityCreated,
			OccurredAt: at, ReceivedAt: at, OpportunityID: opp,
			Payload: &event.Opportunity{Stage: "Qualification", Amount: c.amount, Currency: c.cur, OwnerID: "ann"}}}
	}
	l := loadRaw(t, s, rand.New(rand.NewSource(1)), deals, date("2024-03-01T00:00:00Z"))
	q := New(s.Conn())
	ctx := context.Background()
	asOf, from, to := date("2024-03-01T00:00:00Z"), date("2024-01-01T00:00:00Z"), date("2024-03-01T00:00:00Z")
	f, err := q.Funnel(ctx, FunnelQuery{Tenant: "acme", AsOf: asOf, From: from, To: to, Ladder: ladderKeys(l), LadderVersion: l.Version})
	if err != nil {
		t.Fatal(err)
	}
	st, err := q.Stalls(ctx, StallsQuery{Tenant: "acme", AsOf: asOf, Ladder: ladderKeys(l), LadderVersion: l.Version})
	if err != nil {
		t.Fatal(err)
	}
	mv, err := q.Movement(ctx, MovementQuery{Tenant: "acme", AsOf: asOf, From: from, To: to, Ladder: ladderKeys(l), LadderVersion: l.Version})
	if err != nil {
		t.Fatal(err)
	}
	type obj = map[string]any
	js := func(v any) obj {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m obj
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, c := range []struct {
		name   string
		counts obj
		field  string
		n      string
	}{
		{"funnel step 1", js(f)["steps"].([]any)[0].(obj), "reached_amount", "reached"},
		{"stalls", js(st), "open_amount", "open"},
		{"movement", js(mv)["total"].(obj), "new_amount", "new"},
	} {
		if c.counts[c.n] != 3.0 {
			t.Errorf("%s: %s = %v, want 3", c.name, c.n, c.counts[c.n])
		}
		if v, ok := c.counts[c.field]; !ok || v != nil {
			t.Errorf("%s: %s = %v, want null: USD and EUR are not added", c.name, c.field, v)
		}
		by, _ := c.counts["amounts_by_currency"].(obj)
		usd, _ := by["USD"].(obj)
		eur, _ := by["EUR"].(obj)
		if len(by) != 2 || usd[c.field] != 150.0 || eur[c.field] != 200.0 {
			t.Errorf("%s: amounts_by_currency %v, want USD %s 150 and EUR %s 200", c.name, by, c.field, c.field)
		}
	}
	if d := js(f)["definitions"].(obj); d["currency"] != "" {
		t.Errorf("funnel definitions.currency = %v, want \"\" (mixed)", d["currency"])
	}
}
