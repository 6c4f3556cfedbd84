package metrics

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/metrics/synth"
	"github.com/commitflow/commitflow/internal/snapshot"
)

// TestOneCurrencySums checks that the answers which sum amounts under one
// currency when every non-zero amount is in it (sumCurSQL) equal those
// reading each deal's currency, on deals in USD and deals without a
// currency or an amount (a currency of their own, "", with nothing to
// add), and that a tenant with non-zero amounts in two currencies is not
// taken for one.
func TestOneCurrencySums(t *testing.T) {
	ladder := synth.DefaultLadder()
	s := openStore(t)
	start := date("2024-01-01T00:00:00Z")
	gen := synth.Generator{Tenant: "acme", Seed: 5, Ladder: ladder, LadderVersion: "v1",
		Start: start, Span: 180 * 24 * time.Hour, Currencies: []string{"USD"}}
	rows := gen.Rows(300)
	for i := range rows {
		var n int
		fmt.Sscanf(rows[i].OpportunityID, "opp-%d", &n)
		if n%4 == 0 {
			rows[i].Amount, rows[i].Currency = 0, ""
		}
	}
	mixed := synth.Generator{Tenant: "mixed", Seed: 6, Ladder: ladder, LadderVersion: "v1",
		Start: start, Span: 180 * 24 * time.Hour, Currencies: []string{"USD", "EUR"}}
	rows = append(rows, mixed.Rows(50)...)
	insertShuffled(t, s, rand.New(rand.NewSource(5)), rows, len(ladder))

	ctx := context.Background()
	fast := New(s.Conn())
	slow := New(s.Conn())
	slow.readCurrencies = true
	for _, c := range []struct {
		tenant string
		one    bool
		cur    string
	}{{"acme", true, "USD"}, {"mixed", false, ""}} {
		for range 2 { // read, then from the cache
			type currency struct {
				one bool
				cur uint32
			}
			got, err := snapshot.Read(ctx, fast.pin, c.tenant, func(ctx context.Context, v *snapshot.View) (currency, error) {
				if v.Final() {
					t.Fatal("read with FINAL")
				}
				sum, _, err := fast.parts.Of(ctx, s.Conn(), c.tenant, v)
				if len(sum.Currencies) == 1 {
					return currency{true, sum.Currencies[0]}, err
				}
				return currency{len(sum.Currencies) == 0, 0}, err
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.one != c.one || (c.one && curCode(got.cur) != c.cur) {
				t.Errorf("%s: one currency %v (%q), want %v (%q)", c.tenant, got.one, curCode(got.cur), c.one, c.cur)
			}
		}
	}

	for _, asOf := range []time.Time{date("2025-06-01T00:00:00Z"), date("2024-04-15T12:00:00Z")} {
		from, to := start, date("2025-01-01T00:00:00Z")
		for _, by := range []string{"", "owner"} {
			fq := FunnelQuery{Tenant: "acme", AsOf: asOf, From: from, To: to, By: by, Interval: "month", Ladder: ladder, LadderVersion: "v1"}
			sameAnswer(t, fmt.Sprintf("funnel as of %s by %q", asOf, by), fast, slow, (*Querier).Funnel, fq)
		}
		mq := MissedQuery{Tenant: "acme", AsOf: asOf, From: from, To: to, Ladder: ladder, LadderVersion: "v1"}
		a := sameAnswer(t, fmt.Sprintf("missed as of %s", asOf), fast, slow, (*Querier).Missed, mq)
		if a.Total.ValueAtStake == nil || *a.Total.ValueAtStake == 0 {
			t.Errorf("missed as of %s: value at stake %v, want a USD sum", asOf, a.Total.ValueAtStake)
		}
		vq := MovementQuery{Tenant: "acme", AsOf: asOf, From: from, To: to, Ladder: ladder, LadderVersion: "v1"}
		sameAnswer(t, fmt.Sprintf("movement as of %s", asOf), fast, slow, (*Querier).Movement, vq)
	}
}

// TestOneCurrencyFollowsNewParts checks that a tenant whose amounts were
// all in USD when its currencies were kept is not summed under USD once
// deals in EUR arrive in a new part: the new part is read, and the
// answers equal those reading each deal's currency.
func TestOneCurrencyFollowsNewParts(t *testing.T) {
	ladder := synth.DefaultLadder()
	s := openStore(t)
	ctx := context.Background()
	// Merges stopped: a merge of the old and new parts would be a part not
	// seen before, read whatever the cache does with the new one.
	if err := s.Conn().Exec(ctx, "SYSTEM STOP MERGES opportunity_state"); err != nil {
		t.Fatal(err)
	}
	defer s.Conn().Exec(ctx, "SYSTEM START MERGES opportunity_state")
	start := date("2024-01-01T00:00:00Z")
	usd := synth.Generator{Tenant: "acme", Seed: 7, Ladder: ladder, LadderVersion: "v1",
		Start: start, Span: 90 * 24 * time.Hour, Currencies: []string{"USD"}}
	insertShuffled(t, s, rand.New(rand.NewSource(7)), usd.Rows(100), len(ladder))

	fast := New(s.Conn())
	slow := New(s.Conn())
	slow.readCurrencies = true
	fq := FunnelQuery{Tenant: "acme", AsOf: date("2025-01-01T00:00:00Z"), From: start, To: date("2025-01-01T00:00:00Z"),
		Ladder: ladder, LadderVersion: "v1"}
	before, err := fast.Funnel(ctx, fq)
	if err != nil {
		t.Fatal(err)
	}
	if c := before.Definitions.Currency; c == nil || *c != "USD" {
		t.Fatalf("USD deals only: definitions.currency %v, want USD", c)
	}

	eur := synth.Generator{Tenant: "acme", Seed: 8, Ladder: ladder, LadderVersion: "v1",
		Start: start, Span: 90 * 24 * time.Hour, Currencies: []string{"EUR"}}
	rows := eur.Rows(20)
	for i := range rows {
		rows[i].OpportunityID = "eur-" + rows[i].OpportunityID
	}
	insertShuffled(t, s, rand.New(rand.NewSource(8)), rows, len(ladder))

	a := sameAnswer(t, "funnel after EUR deals", fast, slow, (*Querier).Funnel, fq)
	if c := a.Definitions.Currency; c == nil || *c != "" || a.Steps[0].AmountsByCurrency["EUR"].ReachedAmount == 0 {
		t.Fatalf("after EUR deals: definitions.currency %v, step 1 amounts %v; want mixed (\"\"), with EUR",
			c, a.Steps[0].AmountsByCurrency)
	}
	mq := MissedQuery{Tenant: "acme", AsOf: fq.AsOf, From: fq.From, To: fq.To, Ladder: ladder, LadderVersion: "v1"}
	sameAnswer(t, "missed after EUR deals", fast, slow, (*Querier).Missed, mq)
}

// sameAnswer asks fast (which sums under the tenant's one currency) and
// slow (which reads each deal's currency) with q and returns fast's
// answer, failing t when either fails and marking it failed when the two
// differ; what names the question in the failure.
func sameAnswer[Q, R any](t *testing.T, what string, fast, slow *Querier, ask func(*Querier, context.Context, Q) (R, error), q Q) R {
	t.Helper()
	a, err := ask(fast, context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	b, err := ask(slow, context.Background(), q)
	if err != nil {
		t.Fatalf("%s, reading each deal's currency: %v", what, err)
	}
	if err := approxEqual(a, b); err != nil {
		t.Errorf("%s: %v", what, err)
	}
	return a
}

// latestBy reports whether q's scan of tenant takes the facts as of asOf
// from the latest_* columns (shape.latestBy).
func latestBy(t *testing.T, q *Querier, tenant string, asOf time.Time) bool {
	t.Helper()
	latest, err := readScan(context.Background(), q, tenant, func(s *scan) (bool, error) { return s.latestBy(ts(asOf)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return latest
}
