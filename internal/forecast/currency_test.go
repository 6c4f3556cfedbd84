package forecast

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/param"
)

// testRates is the rate table of the tests, in USD: EUR is worth 1.10 USD
// until 1 March 2024 and 1.20 from then on.
const testRates = `date,currency,rate
2023-01-01,EUR,1.10
2024-03-01,EUR,1.20
`

// handRate is testRates read by hand: the value of one unit of cur ("" is
// the base, USD) in USD on on.
func handRate(cur string, on time.Time) float64 {
	if cur != "EUR" {
		return 1
	}
	if on.Before(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)) {
		return 1.10
	}
	return 1.20
}

func testTable(t *testing.T) *fx.Table {
	t.Helper()
	tab, err := fx.Parse(strings.NewReader(testRates), "USD")
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// rawCurrencies gives the deals' amounts currencies as a CRM export carries
// them: each deal's in USD, EUR or none (""), some written in lower case;
// some amount changes move a deal to another currency, and some wins and
// losses report their amount in another.
func rawCurrencies(rng *rand.Rand, deals map[string][]event.Event) {
	codes := []string{"USD", "EUR", "", "usd", "eur"}
	for _, id := range slices.Sorted(maps.Keys(deals)) {
		for _, e := range deals[id] {
			switch p := e.Payload.(type) {
			case *event.Opportunity:
				p.Currency = codes[rng.IntN(len(codes))]
			case *event.AmountChange:
				if rng.IntN(3) == 0 {
					p.Currency = codes[rng.IntN(2)]
				}
			case *event.Won:
				if rng.IntN(3) == 0 {
					p.Currency = codes[rng.IntN(2)]
				}
			case *event.Lost:
				if rng.IntN(3) == 0 {
					p.Amount, p.Currency = float64(100*(1+rng.IntN(100))), codes[rng.IntN(2)]
				}
			}
		}
	}
}

// oracleAmounts are an oracle's figures of one currency.
type oracleAmounts struct {
	deals                    int
	amount, expected, crm    float64
	btForecast, btCRM, btWon float64
}

// rawPipeline is the open pipeline at at computed from the input events:
// per currency, the deals open then, their amounts, the CRM weighting
// (amount × stage probability) and the commitment weighting (amount × the
// model's P of the deal's cell, from its state folded here); with bound
// after at, the amounts won by bound, in the currency of each close.
func rawPipeline(deals map[string][]event.Event, model *Model, at, bound time.Time) map[string]*oracleAmounts {
	out := map[string]*oracleAmounts{}
	get := func(c string) *oracleAmounts {
		if out[c] == nil {
			out[c] = &oracleAmounts{}
		}
		return out[c]
	}
	for _, evs := range deals {
		o := rawOpp(evs)
		s, open := o.openAt(at)
		if !open {
			continue
		}
		last := cmp.Or(s.lastGain, s.created)
		p, _, _ := model.posterior(Cell{Step: s.step, Bucket: DaysBucket(int(at.Sub(last) / (24 * time.Hour))), Segment: s.segment})
		a := get(s.currency)
		a.deals++
		a.amount += s.amount
		a.expected += s.amount * p
		a.crm += s.amount * min(max(s.probability, 0), 1)
		if c, ok := o.closeAfter(at, bound); ok && c.status == "won" && bound.After(at) {
			get(c.currency).btWon += c.amount
		}
	}
	return out
}

// val is *p, or nil, for messages.
func val[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// nearRel reports whether a and b agree to 1e-9 relative.
func nearRel(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestCurrenciesAgainstRawOracle loads export-shaped deals in USD, EUR and
// none through the real derivation and compares the forecast with an
// oracle folded from the input events: per currency the open deals, the
// amount, the CRM and the commitment weightings, in total and per owner;
// without a rate table null scalars (three currencies); with one, the
// scalars converted at the rates of forecast_at, at two as_of dates on
// either side of a rate change, and a back-test whose forecast and actuals
// are converted at the back-test date's rates. It fails on code that adds
// the currencies (the scalars are then the plain sums of all three).
func TestCurrenciesAgainstRawOracle(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(18, 4217))
	deals := rawDeals(4217, "acme", 300)
	rawCurrencies(rng, deals)
	plain := loadRaw(t, deals, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	conv := NewWithOptions(plain.conn, Options{Rates: testTable(t)})

	check := func(what string, got map[string]GroupAmounts, want map[string]*oracleAmounts) {
		t.Helper()
		wantCurs := []string{}
		for c, a := range want {
			if a.amount != 0 {
				wantCurs = append(wantCurs, c)
			}
		}
		slices.Sort(wantCurs)
		if gotCurs := slices.Sorted(maps.Keys(got)); !slices.Equal(gotCurs, wantCurs) {
			t.Errorf("%s: currencies %q; oracle %q", what, gotCurs, wantCurs)
		}
		for _, c := range wantCurs {
			g, w := got[c], want[c]
			if g.Deals != w.deals || !nearRel(g.Amount, w.amount) || !nearRel(g.CRMWeighted, w.crm) || !nearRel(g.Expected, w.expected) {
				t.Errorf("%s in %q: %d deals, amount %v, CRM %v, expected %v; oracle %d, %v, %v, %v",
					what, c, g.Deals, g.Amount, g.CRMWeighted, g.Expected, w.deals, w.amount, w.crm, w.expected)
			}
		}
	}
	converted := func(want map[string]*oracleAmounts, on time.Time, field func(*oracleAmounts) float64) float64 {
		s := 0.0
		for c, a := range want {
			s += field(a) * handRate(c, on)
		}
		return s
	}
	for _, asOf := range []time.Time{time.Date(2024, 2, 10, 0, 0, 0, 0, time.UTC), time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)} {
		q := Query{Tenant: "acme", AsOf: asOf, Draws: 500}
		r, err := plain.Forecast(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want := rawPipeline(deals, r.Model, asOf, asOf)
		tot := r.Pipeline.Total
		check(fmt.Sprintf("as of %s: total", asOf.Format(time.DateOnly)), tot.AmountsByCurrency, want)
		if len(tot.AmountsByCurrency) != 3 {
			t.Fatalf("as of %s: amounts in %d currencies, want 3 (USD, EUR, none)", asOf, len(tot.AmountsByCurrency))
		}
		if tot.Amount != nil || tot.Expected != nil || tot.CRMWeighted != nil || tot.P10 != nil || tot.P90 != nil {
			t.Errorf("as of %s: three currencies without rates, scalars %v %v %v %v %v; want null",
				asOf, val(tot.Amount), val(tot.Expected), val(tot.CRMWeighted), val(tot.P10), val(tot.P90))
		}
		if d := r.Definitions; d.Currency == nil || *d.Currency != "" || d.Converted != nil || !strings.Contains(d.Currencies, "never added") {
			t.Errorf("as of %s: definitions currency %v, converted %v, rule %q", asOf, val(d.Currency), d.Converted, d.Currencies)
		}
		for c, a := range tot.AmountsByCurrency {
			if a.P10 == nil || a.P90 == nil || *a.P10 > a.Expected || *a.P90 < a.Expected {
				t.Errorf("as of %s in %q: expected %v outside [P10 %v, P90 %v]", asOf, c, a.Expected, val(a.P10), val(a.P90))
			}
		}
		for _, g := range r.Pipeline.ByOwner {
			ownerDeals := map[string][]event.Event{}
			for id, evs := range deals {
				if s, open := rawOpp(evs).openAt(asOf); open && s.owner == g.Key {
					ownerDeals[id] = evs
				}
			}
			check(fmt.Sprintf("as of %s: owner %s", asOf.Format(time.DateOnly), g.Key), g.AmountsByCurrency, rawPipeline(ownerDeals, r.Model, asOf, asOf))
			if g.Amount != nil {
				t.Errorf("as of %s: owner %s amount %v; want null", asOf, g.Key, *g.Amount)
			}
		}

		// Converted to the base at the rates of as_of.
		rc, err := conv.Forecast(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		tc := rc.Pipeline.Total
		check(fmt.Sprintf("as of %s, converted: total", asOf.Format(time.DateOnly)), tc.AmountsByCurrency, want)
		for _, x := range []struct {
			name string
			got  *float64
			want float64
		}{
			{"amount", tc.Amount, converted(want, asOf, func(a *oracleAmounts) float64 { return a.amount })},
			{"expected", tc.Expected, converted(want, asOf, func(a *oracleAmounts) float64 { return a.expected })},
			{"crm_weighted", tc.CRMWeighted, converted(want, asOf, func(a *oracleAmounts) float64 { return a.crm })},
		} {
			if x.got == nil || !nearRel(*x.got, x.want) {
				t.Errorf("as of %s: converted %s %v; oracle %v", asOf, x.name, val(x.got), x.want)
			}
		}
		d := rc.Definitions
		if d.Currency == nil || *d.Currency != "USD" || d.Converted == nil || d.Converted.RatesOn != asOf.Format(time.DateOnly) ||
			d.Converted.Rates["EUR"] != handRate("EUR", asOf) || d.Converted.Rates[""] != 1 {
			t.Errorf("as of %s: definitions currency %v, converted %+v", asOf, val(d.Currency), d.Converted)
		}
		// P10/P90 of the converted amounts come from one Monte Carlo of
		// the converted deals: they bracket the expected amount, and the
		// spread is narrower than the per-currency spreads added up.
		if tc.P10 == nil || tc.P90 == nil || tc.Expected == nil || *tc.P10 > *tc.Expected || *tc.P90 < *tc.Expected {
			t.Fatalf("as of %s: converted expected %v outside [P10 %v, P90 %v]", asOf, val(tc.Expected), val(tc.P10), val(tc.P90))
		}
		sumSpread := 0.0
		for c, a := range tc.AmountsByCurrency {
			sumSpread += (*a.P90 - *a.P10) * handRate(c, asOf)
		}
		if *tc.P90-*tc.P10 >= sumSpread {
			t.Errorf("as of %s: converted spread %v not narrower than the per-currency spreads added up %v", asOf, *tc.P90-*tc.P10, sumSpread)
		}

		// To EUR.
		q.Currency = "eur"
		re, err := conv.Forecast(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		wantEUR := converted(want, asOf, func(a *oracleAmounts) float64 { return a.amount }) / handRate("EUR", asOf)
		if a := re.Pipeline.Total.Amount; a == nil || !nearRel(*a, wantEUR) || *re.Definitions.Currency != "EUR" {
			t.Errorf("as of %s in EUR: amount %v; oracle %v", asOf, val(a), wantEUR)
		}
	}

	// The back-test at 1 October 2023 (EUR at 1.10) as of 1 June 2024
	// (1.20): the forecast and the actuals are converted at the back-test
	// date's rates; each win counts in the currency it closed in.
	bt := time.Date(2023, 10, 1, 0, 0, 0, 0, time.UTC)
	asOf := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	q := Query{Tenant: "acme", AsOf: asOf, Backtest: &bt, Draws: 200}
	for _, f := range []*Forecaster{plain, conv} {
		r, err := f.Forecast(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want := rawPipeline(deals, r.Model, bt, r.Backtest.PeriodEnd)
		b := r.Backtest
		wonCurs := 0
		for c, w := range want {
			g := b.AmountsByCurrency[c]
			if w.btWon != 0 {
				wonCurs++
			}
			if !nearRel(g.Amount, w.amount) || !nearRel(g.WonAmount, w.btWon) {
				t.Errorf("back-test in %q: amount %v won %v; oracle %v, %v", c, g.Amount, g.WonAmount, w.amount, w.btWon)
			}
			ca, cc := b.Commitment.AmountsByCurrency[c], b.CRM.AmountsByCurrency[c]
			if !nearRel(ca.Forecast, w.expected) || !nearRel(ca.Actual, w.btWon) || !nearRel(cc.Forecast, w.crm) ||
				!nearRel(cc.Error, w.crm-w.btWon) {
				t.Errorf("back-test in %q: commitment %+v, crm %+v; oracle forecasts %v, %v, won %v", c, ca, cc, w.expected, w.crm, w.btWon)
			}
		}
		if wonCurs < 3 {
			t.Errorf("back-test: wins in %d currencies; the data must have wins in all three", wonCurs)
		}
		if f == plain {
			if b.Amount != nil || b.WonAmount != nil || b.Commitment.Forecast != nil || b.CRM.Error != nil || b.CRM.PctError != nil {
				t.Errorf("back-test in three currencies without rates: scalars %v %v %v %v; want null", val(b.Amount), val(b.WonAmount), val(b.Commitment.Forecast), val(b.CRM.Error))
			}
			continue
		}
		wonUSD := converted(want, bt, func(a *oracleAmounts) float64 { return a.btWon })
		crmUSD := converted(want, bt, func(a *oracleAmounts) float64 { return a.crm })
		if b.WonAmount == nil || !nearRel(*b.WonAmount, wonUSD) || b.CRM.Forecast == nil || !nearRel(*b.CRM.Forecast, crmUSD) ||
			!nearRel(*b.CRM.Error, crmUSD-wonUSD) || !nearRel(*b.CRM.PctError, 100*(crmUSD-wonUSD)/wonUSD) {
			t.Errorf("back-test converted: won %v, CRM forecast %v error %v; oracle at %s's rates %v, %v",
				val(b.WonAmount), val(b.CRM.Forecast), val(b.CRM.Error), bt.Format(time.DateOnly), wonUSD, crmUSD)
		}
		if d := r.Definitions; d.Converted == nil || d.Converted.RatesOn != "2023-10-01" || d.Converted.Rates["EUR"] != 1.10 {
			t.Errorf("back-test converted: %+v; want the rates of 2023-10-01", d.Converted)
		}
	}
}

// TestForecastKeepsCurrenciesApart: one deal of 1000 USD and one of 2000
// EUR, open. The old forecast added them (amount 3000); now the scalars are
// null beside the sums per currency, or converted with the rate table
// (1000 + 2000 × 1.10 on 1 February 2024, 1000 + 2000 × 1.20 on 1 April).
// A currency the table lacks, or any currency without a table, is an
// input error.
func TestForecastKeepsCurrenciesApart(t *testing.T) {
	ctx := context.Background()
	day := func(m time.Month, d int) time.Time { return time.Date(2024, m, d, 0, 0, 0, 0, time.UTC) }
	deals := map[string][]event.Event{}
	for _, c := range []struct {
		id, cur string
		amount  float64
	}{{"usd", "USD", 1000}, {"eur", "EUR", 2000}} {
		r := &rawEvents{tenant: "fx", opp: c.id, rng: rand.New(rand.NewPCG(1, 2))}
		r.add(day(1, 10), event.OpportunityCreated, &event.Opportunity{Stage: "Needs Analysis", Probability: 0.5, Amount: c.amount,
			Currency: c.cur, OwnerID: "ann", Team: "t1", Segment: "smb"})
		deals[c.id] = r.evs
	}
	plain := loadRaw(t, deals, day(12, 31))
	conv := NewWithOptions(plain.conn, Options{Rates: testTable(t)})

	r, err := plain.Forecast(ctx, Query{Tenant: "fx", AsOf: day(2, 1), Draws: 100})
	if err != nil {
		t.Fatal(err)
	}
	tot := r.Pipeline.Total
	if tot.Deals != 2 || tot.Amount != nil || tot.CRMWeighted != nil || tot.Expected != nil || tot.P10 != nil ||
		tot.AmountsByCurrency["USD"].Amount != 1000 || tot.AmountsByCurrency["EUR"].Amount != 2000 ||
		tot.AmountsByCurrency["EUR"].CRMWeighted != 1000 || len(tot.AmountsByCurrency) != 2 {
		t.Errorf("USD and EUR without rates: %+v; want null scalars beside 1000 USD and 2000 EUR", tot)
	}
	if len(r.Pipeline.ByClosePeriod) != 1 || r.Pipeline.ByClosePeriod[0].Amount != nil || r.Pipeline.ByClosePeriod[0].AmountsByCurrency["EUR"].P10 == nil {
		t.Errorf("close periods %+v; want one, null scalars, a spread per currency", r.Pipeline.ByClosePeriod)
	}
	for _, c := range []struct {
		asOf time.Time
		cur  string
		want float64
	}{
		{day(2, 1), "", 1000 + 2000*1.10},
		{day(4, 1), "", 1000 + 2000*1.20},
		{day(4, 1), "EUR", 1000/1.20 + 2000},
	} {
		r, err := conv.Forecast(ctx, Query{Tenant: "fx", AsOf: c.asOf, Currency: c.cur, Draws: 100})
		if err != nil {
			t.Fatal(err)
		}
		tot := r.Pipeline.Total
		if tot.Amount == nil || !nearRel(*tot.Amount, c.want) || !nearRel(*tot.CRMWeighted, c.want/2) || *tot.P90 > c.want {
			t.Errorf("as of %s in %q: amount %v, CRM %v, P90 %v; want %v, %v, at most the amount",
				c.asOf.Format(time.DateOnly), c.cur, val(tot.Amount), val(tot.CRMWeighted), val(tot.P90), c.want, c.want/2)
		}
	}
	for _, c := range []struct {
		f    *Forecaster
		cur  string
		want string
	}{
		{plain, "EUR", "no rate table"},
		{conv, "CHF", "CHF is not in the rate table"},
		{conv, "EURO", "not an ISO 4217"},
	} {
		_, err := c.f.Forecast(ctx, Query{Tenant: "fx", AsOf: day(2, 1), Currency: c.cur})
		if ie := param.As(err); ie == nil || ie.Param != "currency" || !strings.Contains(ie.Reason, c.want) {
			t.Errorf("currency %q: %v; want an input error on currency: %s", c.cur, err, c.want)
		}
	}
	// No EUR rate on or before forecast_at.
	late, err := fx.Parse(strings.NewReader("date,currency,rate\n2024-03-01,EUR,1.20\n"), "USD")
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewWithOptions(plain.conn, Options{Rates: late}).Forecast(ctx, Query{Tenant: "fx", AsOf: day(2, 1)})
	if ie := param.As(err); ie == nil || ie.Param != "currency" || !strings.Contains(ie.Reason, "no EUR rate on or before 2024-02-01") {
		t.Errorf("no rate on the date: %v; want an input error on currency", err)
	}
}
