package metrics

import (
	"context"
	"maps"
	"math"
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/param"
)

// rawCurrencies gives the deals' amounts currencies as a CRM export
// carries them: each deal's in USD, EUR, GBP or none (""), some written in
// lower case; some amount changes move a deal to another currency, some
// losses report the amount lost in another.
func rawCurrencies(rng *rand.Rand, deals map[string][]event.Event) {
	codes := []string{"USD", "EUR", "GBP", "", "usd", "eur"}
	for _, opp := range slices.Sorted(maps.Keys(deals)) { // in a fixed order: the same data every run
		for _, e := range deals[opp] {
			switch p := e.Payload.(type) {
			case *event.Opportunity:
				p.Currency = codes[rng.Intn(len(codes))]
			case *event.AmountChange:
				if rng.Intn(3) == 0 {
					p.Currency = codes[rng.Intn(3)]
				}
			case *event.Lost:
				if rng.Intn(3) == 0 {
					p.Amount, p.Currency = float64(100*(1+rng.Intn(100))), codes[rng.Intn(3)]
				}
			}
		}
	}
}

// fxTable is the rate table of the tests, in USD; rates change on
// 2024-06-01.
const fxTable = `date,currency,rate
2023-01-01,EUR,1.10
2023-01-01,GBP,1.25
2024-06-01,EUR,1.20
2024-06-01,GBP,1.30
`

// handRates are fxTable's rates read by hand: the value of a unit of each
// currency in to on on ("" is in the base, USD).
func handRates(to string, on time.Time) *oracleRates {
	usd := map[string]float64{"USD": 1, "": 1, "EUR": 1.10, "GBP": 1.25}
	if !on.Before(date("2024-06-01T00:00:00Z")) {
		usd["EUR"], usd["GBP"] = 1.20, 1.30
	}
	r := &oracleRates{rates: map[string]float64{}, to: to, base: "USD", on: on}
	for c, v := range usd {
		r.rates[c] = v / usd[to]
	}
	return r
}

func fxQuerier(t *testing.T, q *Querier) *Querier {
	t.Helper()
	tab, err := fx.Parse(strings.NewReader(fxTable), "USD")
	if err != nil {
		t.Fatal(err)
	}
	return NewWithOptions(q.conn, Options{Rates: tab})
}

// TestCurrenciesAgainstRawOracle loads export-shaped deals in USD, EUR, GBP
// and none through the real derivation and compares the funnel, the open
// pipeline and the won and lost movement with an oracle folded from the
// input events: the amounts per currency, the same counts as ever, null
// scalar amounts where currencies would be added, and, with a rate table,
// the scalars converted at the rates of as_of (before and after a rate
// change) or of the movement's to.
func TestCurrenciesAgainstRawOracle(t *testing.T) {
	s := openStore(t)
	rng := rand.New(rand.NewSource(418))
	deals := rawDeals(rng, "acme", 300)
	rawCurrencies(rng, deals)
	l := loadRaw(t, s, rng, deals, date("2025-01-01T00:00:00Z"))
	steps := ladderKeys(l)
	n := l.Len()
	q := New(s.Conn())
	qfx := fxQuerier(t, q)
	ctx := context.Background()
	from, to := date("2024-01-01T00:00:00Z"), date("2025-01-01T00:00:00Z")
	for _, asOf := range []time.Time{date("2024-04-15T00:00:00Z"), date("2025-01-01T00:00:00Z")} {
		// The funnel, unconverted and converted to the base and to EUR.
		for _, c := range []struct {
			q     *Querier
			cur   string
			rates *oracleRates
		}{
			{q, "", nil},
			{qfx, "", handRates("USD", asOf)},
			{qfx, "eur", handRates("EUR", asOf)},
		} {
			fq := FunnelQuery{Tenant: "acme", AsOf: asOf, From: from, To: to, Ladder: steps, LadderVersion: l.Version, Currency: c.cur}
			got, err := c.q.Funnel(ctx, fq)
			if err != nil {
				t.Fatal(err)
			}
			want := rawFunnel(deals, fq, c.rates)
			for i := range want {
				if err := approxEqual(got.Steps[i], want[i]); err != nil {
					t.Fatalf("funnel as of %s in %q, step %d: %v", asOf, c.cur, i+1, err)
				}
			}
			first := got.Steps[0]
			if len(first.AmountsByCurrency) != 4 {
				t.Errorf("funnel as of %s: amounts in %d currencies, want 4 (USD, EUR, GBP, none): %v", asOf, len(first.AmountsByCurrency), first.AmountsByCurrency)
			}
			d := got.Definitions
			switch {
			case c.rates == nil && (first.ReachedAmount != nil || first.AmountConversionRateReached != nil || d.Currency == nil || *d.Currency != "" || d.Converted != nil):
				t.Errorf("funnel as of %s, mixed: reached amount %v, currency %v, converted %v", asOf, first.ReachedAmount, d.Currency, d.Converted)
			case c.rates != nil && (d.Converted == nil || d.Converted.To != c.rates.to || d.Converted.RatesOn != asOf.Format(time.DateOnly)):
				t.Errorf("funnel as of %s in %q: converted %+v", asOf, c.cur, d.Converted)
			}
		}

		// The open pipeline per highest step.
		type stallWant struct {
			open    map[int]int64
			by      map[int]map[string]float64
			usd     map[int]float64
			deals   int
			dealCur map[string]string
		}
		w := stallWant{open: map[int]int64{}, by: map[int]map[string]float64{}, usd: map[int]float64{}, dealCur: map[string]string{}}
		usd := handRates("USD", asOf)
		for _, evs := range deals {
			rs := rawFold(evs, asOf, n)
			if rs.created.IsZero() || rs.status != "open" {
				continue
			}
			top := 0
			for k := 1; k <= n; k++ {
				if !rs.reach[k].IsZero() {
					top = k
				}
			}
			w.open[top]++
			if w.by[top] == nil {
				w.by[top] = map[string]float64{}
			}
			w.by[top][rs.currency] += rs.amount
			w.usd[top] += rs.amount * usd.rates[rs.currency]
			w.dealCur[evs[0].OpportunityID] = rs.currency
		}
		plain, err := q.Stalls(ctx, StallsQuery{Tenant: "acme", AsOf: asOf, Ladder: steps, LadderVersion: l.Version, PageSize: MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		conv, err := qfx.Stalls(ctx, StallsQuery{Tenant: "acme", AsOf: asOf, Ladder: steps, LadderVersion: l.Version})
		if err != nil {
			t.Fatal(err)
		}
		if plain.OpenAmount != nil || plain.StalledAmount != nil || len(plain.AmountsByCurrency) < 3 {
			t.Errorf("stalls as of %s: open amount %v, stalled amount %v, by currency %v: want null scalars beside several currencies",
				asOf, plain.OpenAmount, plain.StalledAmount, plain.AmountsByCurrency)
		}
		total := 0.0
		for i, st := range plain.Steps {
			k := st.StepIndex
			if st.Open != w.open[k] || st.OpenAmount != nil {
				t.Errorf("stalls as of %s, step %d: open %d (%v), oracle %d", asOf, k, st.Open, st.OpenAmount, w.open[k])
			}
			for c, a := range w.by[k] {
				if a != 0 && math.Abs(st.AmountsByCurrency[c].OpenAmount-a) > 1e-6 {
					t.Errorf("stalls as of %s, step %d, %q: open amount %g, oracle %g", asOf, k, c, st.AmountsByCurrency[c].OpenAmount, a)
				}
			}
			if got := conv.Steps[i].OpenAmount; conv.Steps[i].Open != w.open[k] || got == nil || math.Abs(*got-w.usd[k]) > 1e-6 {
				t.Errorf("stalls as of %s in USD, step %d: open amount %v, oracle %g", asOf, k, ptr(got), w.usd[k])
			}
			total += w.usd[k]
		}
		if conv.OpenAmount == nil || math.Abs(*conv.OpenAmount-total) > 1e-6 {
			t.Errorf("stalls as of %s in USD: open amount %v, oracle %g", asOf, ptr(conv.OpenAmount), total)
		}
		for _, d := range plain.Deals {
			if d.Currency != w.dealCur[d.OpportunityID] {
				t.Errorf("stalled deal %s: currency %q, oracle %q", d.OpportunityID, d.Currency, w.dealCur[d.OpportunityID])
			}
		}

		// Won and lost in [to - 120 days, to), to = as_of or earlier:
		// amounts as of to, converted at the rates of to.
		mto := date("2024-09-01T00:00:00Z")
		if asOf.Before(mto) {
			mto = asOf
		}
		mq := MovementQuery{Tenant: "acme", AsOf: asOf, From: mto.AddDate(0, 0, -120), To: mto, Ladder: steps, LadderVersion: l.Version}
		usd = handRates("USD", mto)
		var nWon, nLost int64
		won, lost := map[string]float64{}, map[string]float64{}
		var usdWon, usdLost float64
		for _, evs := range deals {
			rs := rawFold(evs, mq.To, n)
			wonIn, lostIn := false, false
			for _, c := range rs.closes {
				if !c.at.Before(mq.From) && c.at.Before(mq.To) {
					wonIn = wonIn || c.status == "won"
					lostIn = lostIn || c.status == "lost"
				}
			}
			if wonIn {
				nWon++
				won[rs.currency] += rs.amount
				usdWon += rs.amount * usd.rates[rs.currency]
			}
			if lostIn {
				nLost++
				lost[rs.currency] += rs.amount
				usdLost += rs.amount * usd.rates[rs.currency]
			}
		}
		gotM, err := q.Movement(ctx, mq)
		if err != nil {
			t.Fatal(err)
		}
		tot := gotM.Total
		if tot.Won != nWon || tot.Lost != nLost || tot.WonAmount != nil || tot.LostAmount != nil {
			t.Errorf("movement as of %s: won %d (%v), lost %d (%v); oracle won %d, lost %d, amounts null",
				asOf, tot.Won, ptr(tot.WonAmount), tot.Lost, ptr(tot.LostAmount), nWon, nLost)
		}
		for c := range won {
			if math.Abs(tot.AmountsByCurrency[c].WonAmount-won[c]) > 1e-6 || math.Abs(tot.AmountsByCurrency[c].LostAmount-lost[c]) > 1e-6 {
				t.Errorf("movement as of %s, %q: won %g, lost %g; oracle %g, %g", asOf, c,
					tot.AmountsByCurrency[c].WonAmount, tot.AmountsByCurrency[c].LostAmount, won[c], lost[c])
			}
		}
		gotM, err = qfx.Movement(ctx, mq)
		if err != nil {
			t.Fatal(err)
		}
		tot = gotM.Total
		if tot.WonAmount == nil || math.Abs(*tot.WonAmount-usdWon) > 1e-6 || tot.LostAmount == nil || math.Abs(*tot.LostAmount-usdLost) > 1e-6 {
			t.Errorf("movement as of %s in USD: won %v, lost %v; oracle %g, %g", asOf, ptr(tot.WonAmount), ptr(tot.LostAmount), usdWon, usdLost)
		}
		if nWon == 0 || nLost == 0 {
			t.Errorf("movement as of %s: the data has %d won and %d lost", asOf, nWon, nLost)
		}
	}
}

// ptr shows an optional amount.
func ptr(p *float64) string {
	if p == nil {
		return "null"
	}
	return strconv.FormatFloat(*p, 'g', -1, 64)
}

// TestCurrencyInputErrors checks the currency asked for: refused without a
// rate table, when not a code or not in the table, and when the table has
// no rate on as_of for a currency of the answer.
func TestCurrencyInputErrors(t *testing.T) {
	s := openStore(t)
	rng := rand.New(rand.NewSource(5))
	deals := rawDeals(rng, "acme", 20)
	rawCurrencies(rng, deals)
	l := loadRaw(t, s, rng, deals, date("2025-01-01T00:00:00Z"))
	q := New(s.Conn())
	qfx := fxQuerier(t, q)
	// A table without EUR rates before June 2024.
	late, err := fx.Parse(strings.NewReader("date,currency,rate\n2024-01-01,GBP,1.3\n2024-06-01,EUR,1.1\n"), "USD")
	if err != nil {
		t.Fatal(err)
	}
	qlate := NewWithOptions(s.Conn(), Options{Rates: late})
	ctx := context.Background()
	steps := ladderKeys(l)
	from, to := date("2024-01-01T00:00:00Z"), date("2025-01-01T00:00:00Z")
	for _, c := range []struct {
		q         *Querier
		cur, want string
		asOf      time.Time
	}{
		{q, "USD", "no rate table", date("2024-06-01T00:00:00Z")},
		{qfx, "US", "not an ISO 4217 currency code", date("2024-06-01T00:00:00Z")},
		{qfx, "CHF", "CHF is not in the rate table (it has USD, EUR, GBP)", date("2024-06-01T00:00:00Z")},
		{qlate, "", "cannot convert the amounts to USD: no EUR rate on or before 2024-04-01", date("2024-04-01T00:00:00Z")},
		{qfx, "GBP", "cannot convert the amounts to GBP: no GBP rate on or before 2022-06-01", date("2022-06-01T00:00:00Z")},
	} {
		for name, run := range map[string]func() error{
			"funnel": func() error {
				_, err := c.q.Funnel(ctx, FunnelQuery{Tenant: "acme", AsOf: c.asOf, From: from, To: to, Ladder: steps, Currency: c.cur})
				return err
			},
			"stalls": func() error {
				_, err := c.q.Stalls(ctx, StallsQuery{Tenant: "acme", AsOf: c.asOf, Ladder: steps, Currency: c.cur})
				return err
			},
			"missed": func() error {
				_, err := c.q.Missed(ctx, MissedQuery{Tenant: "acme", AsOf: c.asOf, From: from, To: to, Ladder: steps, Currency: c.cur})
				return err
			},
			"movement": func() error {
				_, err := c.q.Movement(ctx, MovementQuery{Tenant: "acme", AsOf: c.asOf, From: from, To: to, Ladder: steps, Currency: c.cur})
				return err
			},
		} {
			err := run()
			ie := param.As(err)
			if ie == nil || ie.Param != "currency" || !strings.Contains(ie.Reason, c.want) {
				t.Errorf("%s in %q as of %s: %v, want a currency input error %q", name, c.cur, c.asOf.Format(time.DateOnly), err, c.want)
			}
		}
	}
}
