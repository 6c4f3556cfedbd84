package exporttest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

var quiet = slog.New(slog.DiscardHandler)

const (
	partitions  = 4
	maxPageSize = 1000
	// dealCount is how many opportunities the export holds, fxDeals how
	// many the fx book.
	dealCount = 300
	fxDeals   = 150
	agedDeals = 120
)

// now is the derivation's clock: after every event, so that every stall
// up to it has fired.
var now = day("2025-03-01")

// runPipeline publishes the events in their arrival order to an embedded
// NATS JetStream, runs the ingest and derive workers on them and waits
// until both have processed everything. The redeliveries are published
// after the duplicate window, so that the store and the fold, not
// JetStream, drop them.
func runPipeline(t *testing.T, l *ladder.Ladder, first, again []event.Event) *store.Store {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, js := bustest.Start(t, bus.Options{Partitions: partitions, AckWait: 5 * time.Second, DuplicateWindow: time.Second})
	pub := bus.NewPublisher(js, partitions)
	for len(first) > 0 {
		n := min(len(first), 1000)
		if err := pub.PublishBatch(ctx, first[:n]); err != nil {
			t.Fatal(err)
		}
		first = first[n:]
	}
	time.Sleep(1100 * time.Millisecond) // past the duplicate window
	if err := pub.PublishBatch(ctx, again); err != nil {
		t.Fatal(err)
	}

	// The workers start with everything published: large batches, each
	// with events of every instant in any order.
	st := storetest.Open(t, store.Options{Logger: quiet})
	iw, err := ingest.New(js, st, ingest.Config{BatchSize: 5000, MaxWait: 100 * time.Millisecond}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	d, err := pipeline.NewDeriver(ctx, js, st, l, pipeline.Config{
		BatchSize: 2000, MaxWait: 100 * time.Millisecond, LeaseTTL: 15 * time.Second, Sweep: -1,
		Now: func() time.Time { return now }, Member: "exporttest",
	}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { iw.Run(ctx); done <- struct{}{} }()
	go func() { d.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	bustest.WaitDrained(t, js, partitions, 2*time.Minute)
	return st
}

// client asks the real API handler.
type client struct {
	srv   *httptest.Server
	token string
}

// get returns the JSON body of GET path?v, failing t on another status
// than 200.
func (c *client) get(t *testing.T, path string, v url.Values) any {
	t.Helper()
	req, err := http.NewRequest("GET", c.srv.URL+path+"?"+v.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s?%s: %d %s", path, v.Encode(), resp.StatusCode, body)
	}
	var out any
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return out
}

// plain is v as the JSON values the API answers with.
func plain(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// differ lists where an answer differs from the oracle's, by JSON path;
// numbers are equal within a relative 1e-9 (sums of amounts add in another
// order). Members the oracle does not have are not compared but listed in
// unchecked (list indexes left out), so that new figures are noticed.
type differ struct {
	out       []string
	unchecked map[string]bool
}

func (d *differ) diff(path, pattern string, got, want any) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok && got == nil && len(w) == 0 && keyed(pattern) {
			return // an empty map the API leaves out
		}
		if !ok {
			d.out = append(d.out, fmt.Sprintf("%s: got %v, want an object", path, got))
			return
		}
		names := make([]string, 0, len(w))
		for k := range w {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			d.diff(path+"."+k, pattern+"."+k, g[k], w[k])
		}
		for k := range g {
			if _, ok := w[k]; !ok && keyed(pattern) {
				d.out = append(d.out, fmt.Sprintf("%s.%s: got %v, want none", path, k, g[k]))
			} else if !ok {
				d.unchecked[pattern+"."+k] = true
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			d.out = append(d.out, fmt.Sprintf("%s: got %v, want a list of %d", path, got, len(w)))
			return
		}
		if len(g) != len(w) {
			d.out = append(d.out, fmt.Sprintf("%s: got %d elements, want %d", path, len(g), len(w)))
		}
		for i := 0; i < len(g) && i < len(w); i++ {
			d.diff(fmt.Sprintf("%s[%d]", path, i), pattern+"[]", g[i], w[i])
		}
	case float64:
		g, ok := got.(float64)
		if !ok || math.Abs(g-w) > 1e-9*max(1, math.Abs(w)) {
			d.out = append(d.out, fmt.Sprintf("%s: got %v, want %v", path, got, w))
		}
	default:
		if got != want {
			d.out = append(d.out, fmt.Sprintf("%s: got %v, want %v", path, got, want))
		}
	}
}

// keyed reports whether the object at pattern is a map of the oracle's
// (currencies, attributes): every key the API has must be the oracle's.
func keyed(pattern string) bool {
	return strings.HasSuffix(pattern, ".amounts_by_currency") || strings.HasSuffix(pattern, ".attributes")
}

// compare fails t with every difference between the API's answer and the
// oracle's, definitions aside, and logs the members it did not compare.
func compare(t *testing.T, got, want any) {
	t.Helper()
	g, w := got.(map[string]any), plain(t, want).(map[string]any)
	delete(g, "definitions")
	delete(w, "definitions")
	d := &differ{unchecked: map[string]bool{}}
	d.diff("", "", g, w)
	if len(d.unchecked) > 0 {
		t.Logf("not compared (the oracle has no such member): %s", strings.Join(slices.Sorted(maps.Keys(d.unchecked)), ", "))
	}
	if len(d.out) > 0 {
		out := d.out
		if len(out) > 40 {
			out = append(out[:40], fmt.Sprintf("... and %d more", len(out)-40))
		}
		t.Errorf("%d numbers differ from the oracle:\n%s", len(d.out), strings.Join(out, "\n"))
	}
}

// crmOf reads the CRM-weighted side of a forecast answer in the oracle's
// shape.
func crmOf(t *testing.T, res any) any {
	t.Helper()
	p := res.(map[string]any)["pipeline"].(map[string]any)
	group := func(g any) map[string]any {
		m := g.(map[string]any)
		return map[string]any{"deals": m["deals"], "amount": m["amount"], "crm_weighted": m["crm_weighted"]}
	}
	out := map[string]any{"total": group(p["total"])}
	for _, by := range []string{"by_owner", "by_team", "by_close_period"} {
		m := map[string]any{}
		list, _ := p[by].([]any)
		for _, g := range list {
			m[g.(map[string]any)["key"].(string)] = group(g)
		}
		out[by] = m
	}
	return out
}

// param renders a time as a query parameter: a date-only YYYY-MM-DD at
// midnight, as a user of date-only data asks, else RFC 3339.
func param(t time.Time) string {
	if t.Equal(t.Truncate(24 * time.Hour)) {
		return t.UTC().Format(time.DateOnly)
	}
	return t.UTC().Format(time.RFC3339)
}

// rates is the operator's rate table of the converted answers: EUR and
// GBP change on 2024-07-01, between the as_of dates asked.
const rates = `date,currency,rate
2024-01-01,EUR,1.10
2024-01-01,GBP,1.25
2024-07-01,EUR,1.05
2024-07-01,GBP,1.30
`

// oracleRates is rates as the oracle reads them.
var oracleRates = &rateTable{base: "USD", rates: map[string][]datedRate{
	"EUR": {{day("2024-01-01"), 1.10}, {day("2024-07-01"), 1.05}},
	"GBP": {{day("2024-01-01"), 1.25}, {day("2024-07-01"), 1.30}},
}}

// TestExportAgainstOracle runs an export-shaped book through the real
// pipeline and compares every number of every endpoint, for several as_of
// dates and periods, with the oracle's.
func TestExportAgainstOracle(t *testing.T) {
	l := ladder.Default()
	evs := append(generate(7, dealCount, false), generate(9, fxDeals, true)...)
	evs = append(evs, generateAged(11, agedDeals)...)
	first, again := arrival(rand.New(rand.NewSource(8)), evs)
	began := time.Now()
	st := runPipeline(t, l, first, again)
	t.Logf("pipeline: %d events (%d redelivered) in %v", len(first), len(again), time.Since(began))
	tokens := map[string]string{"acme-token-0123456789": tenant, "reopened-token-0123456789": tenantReopened, "fx-token-0123456789": tenantFX,
		"aged-token-0123456789": tenantAged}
	tab, err := fx.Parse(strings.NewReader(rates), "USD")
	if err != nil {
		t.Fatal(err)
	}
	serve := func(q *metrics.Querier) *httptest.Server {
		return httptest.NewServer(api.New(api.Config{Tokens: tokens, Ladder: l, Deals: deals.New(st, nil, 0)},
			q, forecast.New(st.Conn()), quiet))
	}
	srv := serve(metrics.New(st.Conn()))
	defer srv.Close()
	conv := serve(metrics.NewWithOptions(st.Conn(), metrics.Options{Rates: tab}))
	defer conv.Close()

	window := 30
	cases := []struct {
		name string
		q    query
	}{
		// as of a busy date-only day: everything of that day counts.
		{"busy-day", query{asOf: busyDay, from: start, to: busyDay.AddDate(0, 0, 1), fromStep: "change"}},
		// inside it, the cohorts and movement of that day alone.
		{"inside-busy-day", query{asOf: busyDay.Add(12 * time.Hour), from: busyDay, to: busyDay.AddDate(0, 0, 1)}},
		{"mid-year", query{asOf: day("2024-09-01"), from: day("2024-03-01"), to: day("2024-09-01"), window: &window,
			by: "owner", interval: "month", fromStep: "change"}},
		{"after-everything", query{asOf: day("2025-02-01"), from: start, to: day("2025-01-01"),
			by: "segment", interval: "quarter", fromStep: "review"}},
	}
	for tok, ten := range tokens {
		var own []event.Event
		for _, e := range evs {
			if e.Tenant == ten {
				own = append(own, e)
			}
		}
		b := newBook(l, own)
		c := &client{srv: srv, token: tok}
		for _, tc := range cases {
			q := tc.q
			if ten == tenantFX && q.by != "" {
				q.by = "attr.region"
			}
			period := url.Values{"as_of": {param(q.asOf)}, "from": {param(q.from)}, "to": {param(q.to)}}
			run := func(endpoint string, f func(t *testing.T)) {
				t.Run(ten+"/"+tc.name+"/"+endpoint, func(t *testing.T) {
					f(t)
				})
			}
			funnel := url.Values{"as_of": {param(q.asOf)}, "from": {param(q.from)}, "to": {param(q.to)}}
			if q.window != nil {
				funnel.Set("window_days", fmt.Sprint(*q.window))
			}
			if q.by != "" {
				funnel.Set("by", q.by)
			}
			if q.interval != "" {
				funnel.Set("interval", q.interval)
			}
			stalls := url.Values{"as_of": {param(q.asOf)}, "page_size": {fmt.Sprint(maxPageSize)}}
			run("funnel", func(t *testing.T) { compare(t, c.get(t, "/v1/funnel", funnel), b.funnel(q)) })
			run("stalls", func(t *testing.T) { compare(t, c.get(t, "/v1/stalls", stalls), b.stalls(q)) })
			run("movement", func(t *testing.T) { compare(t, c.get(t, "/v1/movement", period), b.movement(q)) })
			run("missed", func(t *testing.T) { compare(t, c.get(t, "/v1/missed", period), b.missed(q)) })
			run("cycle-time", func(t *testing.T) {
				compare(t, c.get(t, "/v1/cycle-time", period), b.cycleTime(query{asOf: q.asOf, from: q.from, to: q.to}))
				v := url.Values{"as_of": {param(q.asOf)}, "from": {param(q.from)}, "to": {param(q.to)}}
				if q.fromStep != "" {
					v.Set("from_step", q.fromStep)
				}
				if q.by != "" {
					v.Set("by", q.by)
				}
				compare(t, c.get(t, "/v1/cycle-time", v), b.cycleTime(query{asOf: q.asOf, from: q.from, to: q.to, fromStep: q.fromStep, by: q.by}))
			})
			run("stage-history", func(t *testing.T) {
				v := url.Values{"as_of": {param(q.asOf)}}
				if q.by != "" {
					v.Set("by", q.by)
				}
				compare(t, c.get(t, "/v1/stage-history", v), b.stageHistory(query{asOf: q.asOf, by: q.by}))
			})
			if ten != tenantFX && ten != tenantAged { // the oracle's CRM pipeline is in one currency
				run("forecast-crm", func(t *testing.T) {
					v := url.Values{"as_of": {param(q.asOf)}, "draws": {"50"}}
					compare(t, crmOf(t, c.get(t, "/v1/forecast", v)), b.crmPipeline(q))
				})
			}
			run("deals", func(t *testing.T) { checkDeals(t, c, b, q.asOf) })
			if ten == tenantFX {
				// The same answers converted to USD at the rates of
				// as_of (movement: of to, or as_of if earlier).
				cb := newBook(l, own)
				cb.fx = oracleRates
				cc := &client{srv: conv, token: tok}
				run("converted", func(t *testing.T) {
					compare(t, cc.get(t, "/v1/funnel", funnel), cb.funnel(q))
					compare(t, cc.get(t, "/v1/stalls", stalls), cb.stalls(q))
					compare(t, cc.get(t, "/v1/movement", period), cb.movement(q))
					compare(t, cc.get(t, "/v1/missed", period), cb.missed(q))
				})
			}
		}
		if ten == tenantAged {
			checkAgedShape(t, b)
			checkAged(t, c, b)
		}
	}
	checkShape(t, newBook(l, evs), evs)
}

// agedDates are the extra as_of dates of the aged deals (see
// generateAged): the export's day and a time inside it, and later dates,
// with and without a time of day.
var agedDates = []time.Time{
	exportDay, exportDay.Add(15 * time.Hour), day("2024-06-20"), day("2024-07-10").Add(10 * time.Hour),
	day("2024-08-01"), day("2024-10-15").Add(18*time.Hour + 45*time.Minute), day("2024-12-01"),
}

// checkAged compares, at every date of agedDates, the stalls, the deal
// endpoints and the movement of the 30 days before it.
func checkAged(t *testing.T, c *client, b *book) {
	t.Helper()
	for _, at := range agedDates {
		q := query{asOf: at, from: at.AddDate(0, 0, -30), to: at}
		t.Run(tenantAged+"/as-of-"+param(at), func(t *testing.T) {
			t.Run("stalls", func(t *testing.T) {
				compare(t, c.get(t, "/v1/stalls", url.Values{"as_of": {param(at)}, "page_size": {fmt.Sprint(maxPageSize)}}), b.stalls(q))
			})
			t.Run("movement", func(t *testing.T) {
				compare(t, c.get(t, "/v1/movement", url.Values{"as_of": {param(at)}, "from": {param(q.from)}, "to": {param(q.to)}}), b.movement(q))
			})
			t.Run("deals", func(t *testing.T) { checkDeals(t, c, b, at) })
		})
	}
}

// checkDeals compares GET /v1/deals with every filter the oracle knows
// and GET /v1/deals/{id} of every fifth deal, as of asOf.
func checkDeals(t *testing.T, c *client, b *book, asOf time.Time) {
	t.Helper()
	base := func(kv ...string) url.Values {
		v := url.Values{"as_of": {param(asOf)}, "page_size": {fmt.Sprint(maxPageSize)}}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	// Dates, as close dates are: the list compares a bound with a time of
	// day by its day (internal/deals), which the oracle does not mirror.
	asOfDay := asOf.Truncate(24 * time.Hour)
	closeFrom, closeTo := asOfDay.AddDate(0, 0, -20), asOfDay.AddDate(0, 0, 40)
	for _, f := range []struct {
		params []string
		keep   func(d, full *deal) bool
	}{
		{nil, func(d, full *deal) bool { return true }},
		{[]string{"step", "explore"}, func(d, full *deal) bool { return d.highest == 2 }},
		{[]string{"step", "review"}, func(d, full *deal) bool { return d.highest == 7 }},
		{[]string{"owner", "ann"}, func(d, full *deal) bool { return d.f.owner == "ann" }},
		{[]string{"team", "west"}, func(d, full *deal) bool { return d.f.team == "west" }},
		{[]string{"status", "open"}, func(d, full *deal) bool { return d.f.status == "open" }},
		{[]string{"status", "won"}, func(d, full *deal) bool { return d.f.status == "won" }},
		{[]string{"status", "lost"}, func(d, full *deal) bool { return d.f.status == "lost" }},
		{[]string{"stalled", "true"}, func(d, full *deal) bool { return b.warned(d, full, "stalled", asOf) }},
		{[]string{"stalled", "false"}, func(d, full *deal) bool { return !b.warned(d, full, "stalled", asOf) }},
		{[]string{"warning", "stalled", "team", "east"}, func(d, full *deal) bool {
			return d.f.team == "east" && b.warned(d, full, "stalled", asOf)
		}},
		{[]string{"warning", "close_date_pushed"}, func(d, full *deal) bool { return b.warned(d, full, "close_date_pushed", asOf) }},
		{[]string{"close_from", param(closeFrom), "close_to", param(closeTo)}, func(d, full *deal) bool {
			return !d.f.closeDate.IsZero() && !d.f.closeDate.Before(closeFrom) && d.f.closeDate.Before(closeTo)
		}},
	} {
		t.Run(strings.Join(append([]string{"list"}, f.params...), "/"), func(t *testing.T) {
			compare(t, c.get(t, "/v1/deals", base(f.params...)), b.dealList(asOf, f.keep))
		})
	}
	t.Run("deal", func(t *testing.T) {
		for i, id := range b.ids {
			if i%5 != 0 {
				continue
			}
			want := b.dealView(id, asOf)
			if want == nil {
				continue // no event yet: 404
			}
			compare(t, c.get(t, "/v1/deals/"+url.PathEscape(id), url.Values{"as_of": {param(asOf)}}), want)
		}
	})
}

// checkShape makes sure the generated book holds what it claims to:
// otherwise the comparisons above would prove less than they say.
func checkShape(t *testing.T, b *book, evs []event.Event) {
	t.Helper()
	reasons, currency := map[string]int{}, map[string]int{}
	var attrCleared, cleared, switched, scheduled, recorded, meetings, lostOther, regioned int
	var sameInstant, calls, buyerItems, sellerItems, reopenedWon, wonByEvent, wonByStage, lostByEvent, lostByStage, lostWithAmount int
	for _, id := range b.ids {
		oe := b.opps[id]
		for i := 1; i < len(oe); i++ {
			if oe[i].Source == crmSource && oe[i-1].Source == crmSource && oe[i].OccurredAt.Equal(oe[i-1].OccurredAt) {
				sameInstant++
			}
		}
		for _, e := range oe {
			switch p := e.Payload.(type) {
			case *event.Call:
				calls++
				for _, it := range p.ActionItems {
					if it.OwnerSide == event.Buyer {
						buyerItems++
					} else {
						sellerItems++
					}
				}
			case *event.Won:
				wonByEvent++
			case *event.Lost:
				lostByEvent++
			case *event.StageChange:
				switch p.To {
				case "Closed Won":
					wonByStage++
				case "Closed Lost":
					lostByStage++
				}
			}
		}
		d := fold(b.l, id, oe, now)
		if d.f.status == "won" && len(d.closes) >= 2 && d.closes[len(d.closes)-2].status == "lost" && !d.reopened.IsZero() {
			reopenedWon++
		}
		if d.f.status == "lost" && d.f.amount > 0 {
			lostWithAmount++
		}
		for _, m := range d.misses {
			reasons[m.reason]++
		}
		for _, e := range oe {
			switch p := e.Payload.(type) {
			case *event.Opportunity:
				if v, ok := p.Attributes["region"]; ok && v == "" && e.Type == event.OpportunityUpdated {
					attrCleared++
				}
			case *event.AmountChange:
				switch {
				case p.Cleared:
					cleared++
				case p.Currency != "" && p.Currency != "USD":
					switched++
				}
			case *event.Activity:
				if p.Status == "scheduled" {
					scheduled++
				} else if d.recorded(e.OccurredAt, p.Participants) {
					recorded++
				} else {
					meetings++
				}
			}
		}
		if d.f.status == "lost" && d.f.currency != "USD" && d.f.amount > 0 {
			lostOther++
		}
		currency[d.f.currency]++
		if d.f.attrs["region"] != "" {
			regioned++
		}
	}
	busy := 0
	for _, e := range evs {
		if e.OccurredAt.Equal(busyDay) {
			busy++
		}
	}
	for name, n := range map[string]int{
		"events sharing an instant with the one before": sameInstant, "calls": calls, "buyer action items": buyerItems,
		"seller action items": sellerItems, "deals lost, reopened and won": reopenedWon, "closed_won": wonByEvent,
		"stage Closed Won": wonByStage, "closed_lost": lostByEvent, "stage Closed Lost": lostByStage,
		"lost deals with an amount": lostWithAmount, "events at the busy day's midnight": busy,
		"regions cleared": attrCleared, "amounts cleared": cleared, "amounts switched from USD": switched,
		"scheduled meetings": scheduled, "CRM meetings of a recorded call": recorded, "CRM meetings of their own": meetings,
		"lost deals with an amount not in USD": lostOther, "deals with a region": regioned,
		"deals in USD": currency["USD"], "deals in EUR": currency["EUR"], "deals in GBP": currency["GBP"], "deals without a currency": currency[""],
		"no_next_step misses": reasons["no_next_step"], "seller_only_actions misses": reasons["seller_only_actions"],
		"no_buyer_present misses": reasons["no_buyer_present"], "buyer_action_overdue misses": reasons["buyer_action_overdue"],
		"close_date_pushed misses": reasons["close_date_pushed"], "no_decision misses": reasons["no_decision"],
	} {
		if n < 5 {
			t.Errorf("the export has %d %s, want at least 5", n, name)
		}
	}
	if !slices.ContainsFunc(evs, func(e event.Event) bool { return e.OccurredAt.Equal(busyDay) && e.Type == event.OpportunityCreated }) {
		t.Error("no deal is created on the busy day")
	}
}

// checkAgedShape makes sure the aged deals hold what generateAged claims,
// at least five of each.
func checkAgedShape(t *testing.T, b *book) {
	t.Helper()
	n := map[string]int{}
	for _, id := range b.ids {
		d := fold(b.l, id, b.opps[id], now)
		if d.created.Before(d.crmAt.AddDate(0, 0, -20)) {
			if d.created.Equal(d.created.Truncate(24 * time.Hour)) {
				n["deals the CRM dates 20 days or more before it shows them, by a date"]++
			} else {
				n["deals the CRM dates 20 days or more before it shows them, by a time"]++
			}
			if seen := fold(b.l, id, b.opps[id], d.crmAt); seen.stalledSince.Equal(d.crmAt) {
				n["deals stalled when the CRM first shows them"]++
			}
		}
		if d.first.Before(d.crmAt) {
			n["deals with calls before their opportunity"]++
			if len(d.stalls) >= 2 && d.stalls[0].Before(d.crmAt) {
				n["deals stalled before their opportunity and after it"]++
			}
			if d.created.Before(d.crmAt) {
				n["deals with calls before their opportunity and a created_at before it"]++
				if !d.created.After(d.first) {
					n["deals with calls before their opportunity and a created_at before the first"]++
				} else {
					n["deals with calls before their opportunity and a created_at between them"]++
				}
				if slices.ContainsFunc(agedDates, func(at time.Time) bool { return !at.Before(d.first) && at.Before(d.crmAt) }) {
					n["deals with calls and a created_at before their opportunity asked of between them"]++
				}
				seen := fold(b.l, id, b.opps[id], d.crmAt)
				switch {
				case len(seen.stalls) >= 2 && seen.stalls[0].Before(d.crmAt) && seen.stalledSince.Equal(d.crmAt):
					n["deals stalled on their first call's clock and again when the CRM shows them"]++
				case slices.ContainsFunc(d.stalls, func(s time.Time) bool { return s.After(d.crmAt) && s.Equal(d.created.Add(b.l.StallAfter(1))) }):
					n["deals with calls and a created_at before their opportunity stalled on the creation's clock after it"]++
				}
			}
		}
		if !d.reach[1].IsZero() && d.reach[1].After(d.crmAt) {
			n["deals with a first commitment after their creation"]++
		}
		if !d.reopened.IsZero() && d.highest == 0 && slices.ContainsFunc(d.stalls, func(s time.Time) bool { return s.After(d.reopened) }) {
			n["deals reopened without a commitment and stalled again"]++
		}
	}
	for _, at := range agedDates {
		for _, d := range b.at(at) {
			if d.open() && !d.stalledSince.IsZero() && d.lastGain.IsZero() {
				n["deals stalled without a commitment as of an aged date, in "+d.f.currency]++
			}
		}
	}
	for _, what := range []string{
		"deals the CRM dates 20 days or more before it shows them, by a date",
		"deals the CRM dates 20 days or more before it shows them, by a time",
		"deals stalled when the CRM first shows them", "deals with calls before their opportunity",
		"deals stalled before their opportunity and after it",
		"deals with calls before their opportunity and a created_at before it",
		"deals with calls before their opportunity and a created_at before the first",
		"deals with calls before their opportunity and a created_at between them",
		"deals with calls and a created_at before their opportunity asked of between them",
		"deals stalled on their first call's clock and again when the CRM shows them",
		"deals with calls and a created_at before their opportunity stalled on the creation's clock after it",
		"deals with a first commitment after their creation",
		"deals reopened without a commitment and stalled again",
		"deals stalled without a commitment as of an aged date, in USD", "deals stalled without a commitment as of an aged date, in EUR",
	} {
		if n[what] < 5 {
			t.Errorf("the aged book has %d %s, want at least 5", n[what], what)
		}
	}
}
