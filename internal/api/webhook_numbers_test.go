package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ingest/ingesttest"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
	ladderschema "github.com/commitflow/commitflow/schemas/ladder"
)

// numbersLadder is the default ladder with the stage ids of the test's
// Pipedrive pipeline mapped, as a tenant with Pipedrive configures it.
func numbersLadder(t *testing.T) *ladder.Ladder {
	t.Helper()
	yaml := strings.Replace(ladderschema.DefaultYAML, "\npipelines:\n", `
pipelines:
  - pipeline: "1"   # the test's Pipedrive pipeline: stage ids
    stages: {"1": time, "2": explore, "3": change, "4": invest, "5": review}
`, 1)
	l, err := ladder.Parse("numbers.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The book of TestWebhookNumbers: deals as their CRM records them, and the
// calls Gong recorded. The payloads posted and the oracle are both made
// of it.
type (
	numbersDeal struct {
		vendor, id string
		created    string // RFC 3339
		amount     float64
		currency   string // "" for HubSpot, which sends none with the amount
		stages     []stageMove
		lost       *lostMove // a close as lost with a reason (HubSpot closed_lost_reason, Pipedrive status)
		calls      []numbersCall
	}
	stageMove struct{ at, stage string } // the first is the stage at creation
	lostMove  struct{ at, reason string }
	// numbersCall is a Gong call linked to its deal. steps are what the
	// default ladder's rules make of it: a buyer present gains time, and
	// the title's and buyer-owned items' keywords their steps.
	numbersCall struct {
		id, at                string // at: its end (started + 10 min)
		title                 string
		buyer                 bool
		buyerItem, sellerItem string
		steps                 []string
	}
)

var numbersBook = []numbersDeal{
	{vendor: "hubspot", id: "9001", created: "2024-03-01T09:00:00Z", amount: 10000,
		stages: []stageMove{{"2024-03-01T09:00:00Z", "appointmentscheduled"}, {"2024-03-10T09:00:00Z", "qualifiedtobuy"},
			{"2024-03-20T09:00:00Z", "presentationscheduled"}, {"2024-04-15T09:00:00Z", "closedwon"}},
		calls: []numbersCall{{id: "7001", at: "2024-03-25T15:10:00Z", title: "Internal prep", sellerItem: "I will draft the plan"}}},
	{vendor: "hubspot", id: "9002", created: "2024-03-05T09:00:00Z", amount: 5000,
		stages: []stageMove{{"2024-03-05T09:00:00Z", "appointmentscheduled"}, {"2024-03-25T09:00:00Z", "closedlost"}},
		lost:   &lostMove{"2024-03-25T09:00:00Z", "No budget"}},
	{vendor: "pipedrive", id: "501", created: "2024-03-02T10:00:00Z", amount: 8000, currency: "EUR",
		stages: []stageMove{{"2024-03-02T10:00:00Z", "1"}, {"2024-03-12T10:00:00Z", "2"}, {"2024-03-22T10:00:00Z", "4"}}},
	{vendor: "pipedrive", id: "502", created: "2024-03-03T10:00:00Z", amount: 3000, currency: "EUR",
		stages: []stageMove{{"2024-03-03T10:00:00Z", "1"}},
		lost:   &lostMove{"2024-03-20T10:00:00Z", "Went with a competitor"}},
	{vendor: "salesforce", id: "0065g00000Num01AAA", created: "2024-03-04T11:00:00Z", amount: 20000, currency: "USD",
		stages: []stageMove{{"2024-03-04T11:00:00Z", "Prospecting"}, {"2024-03-08T11:00:00Z", "Qualification"},
			{"2024-03-28T11:00:00Z", "Id. Decision Makers"}, {"2024-04-20T11:00:00Z", "Closed Won"}},
		calls: []numbersCall{{id: "7002", at: "2024-03-15T14:10:00Z", title: "Technical deep dive", buyer: true,
			buyerItem: "We will confirm the budget with finance", sellerItem: "I will send the architecture notes",
			steps: []string{"time", "collaborate", "invest"}}}},
	{vendor: "salesforce", id: "0065g00000Num02AAA", created: "2024-03-06T11:00:00Z", amount: 15000, currency: "USD",
		stages: []stageMove{{"2024-03-06T11:00:00Z", "Needs Analysis"}},
		calls: []numbersCall{{id: "7003", at: "2024-03-18T16:10:00Z", title: "Weekly sync", buyer: true,
			sellerItem: "I will send the deck", steps: []string{"time"}}}},
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// delivery is one webhook request.
type delivery struct {
	path, body string
	header     func(url string) http.Header // url: the full URL it is posted to
}

// numbersDeliveries turns the book into the vendors' webhook requests: one
// HubSpot batch, one Pipedrive v2 notification per change, one Salesforce
// CDC body and one Gong automation-rule webhook per call.
func numbersDeliveries(book []numbersDeal) []delivery {
	var hubspot []map[string]any
	var out, gong []delivery
	var cdc []map[string]any
	eventID := 1000
	hs := func(d numbersDeal, when, sub, prop, value string) {
		eventID++
		n := map[string]any{"eventId": eventID, "subscriptionId": 2270000 + len(prop), "portalId": 62515, "appId": 54321,
			"occurredAt": at(when).UnixMilli(), "subscriptionType": sub, "attemptNumber": 0, "objectId": json.Number(d.id), "changeSource": "CRM_UI"}
		if prop != "" {
			n["propertyName"], n["propertyValue"] = prop, value
		} else {
			n["changeFlag"] = "CREATED"
		}
		hubspot = append(hubspot, n)
	}
	pd := func(d numbersDeal, n int, when, action string, data, previous map[string]any) {
		data["id"], data["pipeline_id"], data["title"], data["value"], data["currency"], data["owner_id"] = json.Number(d.id), 1, "Deal "+d.id, d.amount, d.currency, 18487521
		body := map[string]any{
			"meta": map[string]any{"action": action, "entity": "deal", "entity_id": d.id, "id": fmt.Sprintf("%s-%d", d.id, n),
				"timestamp": when, "version": "2.0", "attempt": 1, "host": "company.pipedrive.com"},
			"data": data, "previous": previous,
		}
		out = append(out, delivery{"/v1/webhooks/pipedrive", mustJSON(body), func(string) http.Header {
			req := httptest.NewRequest("POST", "/", nil)
			req.SetBasicAuth("commitflow", "pd-pass-1")
			return req.Header
		}})
	}
	sf := func(d numbersDeal, n int, when, change string, fields map[string]any) {
		changed := []string{}
		if change == "UPDATE" {
			for f := range fields {
				changed = append(changed, f)
			}
			sort.Strings(changed)
		}
		fields["ChangeEventHeader"] = map[string]any{"entityName": "Opportunity", "recordIds": []string{d.id}, "changeType": change,
			"transactionKey": fmt.Sprintf("%s-tx-%d", d.id, n), "sequenceNumber": 1, "commitTimestamp": at(when).UnixMilli(),
			"commitUser": "0055g00000XyZaBAAV", "changedFields": changed, "nulledFields": []string{}}
		cdc = append(cdc, fields)
	}
	for _, d := range book {
		switch d.vendor {
		case "hubspot":
			hs(d, d.created, "deal.creation", "", "")
			hs(d, d.created, "deal.propertyChange", "amount", fmt.Sprint(d.amount))
			for _, m := range d.stages {
				hs(d, m.at, "deal.propertyChange", "dealstage", m.stage)
			}
			if d.lost != nil {
				hs(d, d.lost.at, "deal.propertyChange", "closed_lost_reason", d.lost.reason)
			}
		case "pipedrive":
			pd(d, 0, d.created, "create", map[string]any{"stage_id": json.Number(d.stages[0].stage), "status": "open"}, nil)
			for i, m := range d.stages[1:] {
				pd(d, i+1, m.at, "change", map[string]any{"stage_id": json.Number(m.stage), "status": "open"},
					map[string]any{"stage_id": json.Number(d.stages[i].stage)})
			}
			if d.lost != nil {
				last := d.stages[len(d.stages)-1].stage
				pd(d, len(d.stages), d.lost.at, "change", map[string]any{"stage_id": json.Number(last), "status": "lost", "lost_reason": d.lost.reason},
					map[string]any{"status": "open", "lost_reason": nil})
			}
		case "salesforce":
			sf(d, 0, d.created, "CREATE", map[string]any{"Name": "Deal " + d.id, "StageName": d.stages[0].stage, "Amount": d.amount,
				"CurrencyIsoCode": d.currency, "OwnerId": "0055g00000XyZaBAAV", "CreatedDate": d.created})
			for i, m := range d.stages[1:] {
				sf(d, i+1, m.at, "UPDATE", map[string]any{"StageName": m.stage})
			}
		}
		for _, c := range d.calls {
			system, object := "Salesforce", "Opportunity"
			if d.vendor == "hubspot" {
				system, object = "HubSpot", "Deal"
			}
			parties := []map[string]any{{"id": "p1", "emailAddress": "ann@seller.example", "name": "Ann Seller", "speakerId": "s1", "affiliation": "Internal"}}
			if c.buyer {
				parties = append(parties, map[string]any{"id": "p2", "emailAddress": "bob@buyer.example", "name": "Bob Buyer", "speakerId": "s2", "affiliation": "External"})
			}
			var items []map[string]any
			if c.buyerItem != "" {
				items = append(items, map[string]any{"speakerID": "s2", "snippet": c.buyerItem})
			}
			if c.sellerItem != "" {
				items = append(items, map[string]any{"speakerID": "s1", "snippet": c.sellerItem})
			}
			body := map[string]any{"isTest": false, "callData": map[string]any{
				"metaData": map[string]any{"id": c.id, "title": c.title, "started": at(c.at).Add(-10 * time.Minute).Format(time.RFC3339),
					"duration": 600, "direction": "Conference", "scope": "External", "media": "Video"},
				"context": []map[string]any{{"system": system, "objects": []map[string]any{{"objectType": object, "objectId": d.id}}}},
				"parties": parties,
				"content": map[string]any{"pointsOfInterest": map[string]any{"actionItems": items}},
			}}
			gong = append(gong, delivery{"/v1/webhooks/gong?key=" + gongKey, mustJSON(body), func(string) http.Header { return http.Header{} }})
		}
	}
	hubspotBody, cdcBody := mustJSON(hubspot), mustJSON(cdc)
	out = append(out,
		delivery{"/v1/webhooks/hubspot", hubspotBody, func(url string) http.Header { return hubspotHeaders(hubSecret, url, hubspotBody, time.Now()) }},
		delivery{"/v1/webhooks/salesforce", cdcBody, func(string) http.Header { return sfHeaders(sfSecret, cdcBody) }})
	return append(out, gong...)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// oracleDeal is what the book says of a deal: its status, and the time
// each step was first gained.
type oracleDeal struct {
	numbersDeal
	status string
	gained map[int]time.Time // step index (from 1) -> first gained
}

// oracle folds the book by the ladder's definitions: a CRM stage is
// evidence of the step it maps to unless it regresses (maps below the
// highest step a stage mapped to); a won stage closes the deal won and is
// evidence of won_step; a lost stage or a loss with a reason closes it
// lost; a call is evidence of its steps at its end.
func oracle(l *ladder.Ladder, book []numbersDeal) []oracleDeal {
	var out []oracleDeal
	for _, d := range book {
		o := oracleDeal{numbersDeal: d, status: "open", gained: map[int]time.Time{}}
		gain := func(step int, t time.Time) {
			if g, ok := o.gained[step]; step > 0 && (!ok || t.Before(g)) {
				o.gained[step] = t
			}
		}
		highest := 0
		for _, m := range d.stages {
			s, _ := l.StageStep("1", m.stage)
			if s > highest {
				gain(s, at(m.at))
				highest = s
			}
			switch {
			case l.IsWonStage(m.stage):
				o.status = "won"
				gain(l.Index("decide"), at(m.at))
			case l.IsLostStage(m.stage):
				o.status = "lost"
			}
		}
		if d.lost != nil {
			o.status = "lost"
		}
		for _, c := range d.calls {
			for _, s := range c.steps {
				gain(l.Index(s), at(c.at))
			}
		}
		out = append(out, o)
	}
	return out
}

// reach is reach_time(K): the earliest gain of step K or above.
func (o oracleDeal) reach(k int) (time.Time, bool) {
	var first time.Time
	for s, t := range o.gained {
		if s >= k && (first.IsZero() || t.Before(first)) {
			first = t
		}
	}
	return first, !first.IsZero()
}

// derived lists the commitments the oracle expects: "opp gained STEP at
// TIME" and "opp missed REASON at TIME". A call is missed when no buyer
// was on it (no_buyer_present), or when only the seller took actions
// (seller_only_actions) or nobody did (no_next_step); a lost deal is a
// no_decision loss when its reason says so or it never reached the
// ladder's no-decision step (change).
func (o oracleDeal) derived(l *ladder.Ladder) []string {
	var out []string
	for s, t := range o.gained {
		out = append(out, fmt.Sprintf("%s gained %s at %s", o.id, l.Key(s), t.Format(time.RFC3339)))
	}
	for _, c := range o.calls {
		reason := ""
		switch {
		case !c.buyer:
			reason = "no_buyer_present"
		case c.buyerItem != "":
		case c.sellerItem != "":
			reason = "seller_only_actions"
		default:
			reason = "no_next_step"
		}
		if reason != "" {
			out = append(out, fmt.Sprintf("%s missed %s at %s", o.id, reason, c.at))
		}
	}
	if o.lost != nil {
		if _, reached := o.reach(l.Index("change")); !reached || l.IsNoDecisionReason(o.lost.reason) {
			out = append(out, fmt.Sprintf("%s missed no_decision at %s", o.id, o.lost.at))
		}
	}
	sort.Strings(out)
	return out
}

// numbersCounts are the funnel figures the test compares.
type numbersCounts struct {
	Reached           int64                     `json:"reached"`
	Converted         int64                     `json:"converted"`
	StillOpen         int64                     `json:"still_open"`
	Dropped           int64                     `json:"dropped"`
	Skipped           int64                     `json:"skipped"`
	AmountsByCurrency map[string]numbersAmounts `json:"amounts_by_currency"`
}

type numbersAmounts struct {
	Reached   float64 `json:"reached_amount"`
	Converted float64 `json:"converted_amount"`
	StillOpen float64 `json:"still_open_amount"`
	Dropped   float64 `json:"dropped_amount"`
	Skipped   float64 `json:"skipped_amount"`
}

// funnel is the oracle's funnel of the cohorts that reached each step in
// [from, to), by the definitions the API states: converted when K+1 was
// reached, else dropped when closed, else still open; skipped when K was
// not gained at reach_time(K); amounts per currency, those all 0 left out.
func funnel(l *ladder.Ladder, deals []oracleDeal, from, to time.Time) []numbersCounts {
	out := make([]numbersCounts, l.Len()-1)
	for k := 1; k < l.Len(); k++ {
		c := &out[k-1]
		c.AmountsByCurrency = map[string]numbersAmounts{}
		for _, d := range deals {
			rk, ok := d.reach(k)
			if !ok || rk.Before(from) || !rk.Before(to) {
				continue
			}
			a := c.AmountsByCurrency[d.currency]
			c.Reached++
			a.Reached += d.amount
			if g, ok := d.gained[k]; !ok || !g.Equal(rk) {
				c.Skipped++
				a.Skipped += d.amount
			}
			_, conv := d.reach(k + 1)
			switch {
			case conv:
				c.Converted++
				a.Converted += d.amount
			case d.status != "open":
				c.Dropped++
				a.Dropped += d.amount
			default:
				c.StillOpen++
				a.StillOpen += d.amount
			}
			c.AmountsByCurrency[d.currency] = a
		}
		for cur, a := range c.AmountsByCurrency {
			if a == (numbersAmounts{}) {
				delete(c.AmountsByCurrency, cur)
			}
		}
		if len(c.AmountsByCurrency) == 0 {
			c.AmountsByCurrency = nil
		}
	}
	return out
}

// TestWebhookNumbers posts HubSpot (signed v3), Pipedrive (v2), Salesforce
// CDC and Gong payloads for deals that move through the ladder to the
// running server — the API with its gateway, ingest and derive workers,
// embedded NATS JetStream and ClickHouse — and finds in derived_events the
// commitments gained and missed, and in GET /v1/funnel the numbers, that an
// oracle folding the book the payloads were made of expects. A HubSpot
// call without a signature is 401 and publishes nothing; every delivery
// replayed past JetStream's duplicate window, so that the store and the
// fold must drop it, changes nothing.
func TestWebhookNumbers(t *testing.T) {
	l := numbersLadder(t)
	b := startBusWith(t, bus.Options{Partitions: 4, DuplicateWindow: time.Second})
	st := storetest.Open(t, store.Options{})
	ingesttest.Run(t, b.js, st, ingest.Config{MaxWait: 100 * time.Millisecond})
	ctx, stop := context.WithCancel(context.Background())
	dw, err := pipeline.NewDeriver(ctx, b.js, st, l, pipeline.Config{MaxWait: 100 * time.Millisecond, Sweep: -1, Member: "numbers"}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = dw.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	parts, err := bus.Partitions(t.Context(), b.js)
	if err != nil {
		t.Fatal(err)
	}
	gw := GatewayConfig{
		Publisher:         b.pub,
		DeadLetters:       NewDeadLetters(b.js, parts, bus.PublishOptions{}),
		HubSpotSecrets:    map[string]string{"acme": hubSecret},
		PipedriveAuth:     map[string]string{"acme": "commitflow:pd-pass-1"},
		SalesforceSecrets: map[string]string{"acme": sfSecret},
		GongKeys:          map[string]string{"acme": gongKey},
	}
	srv := httptest.NewServer(New(Config{Tokens: map[string]string{acmeToken: "acme"}, Gateway: gw, Ladder: l},
		metrics.New(st.Conn()), forecast.New(st.Conn()), nil))
	t.Cleanup(srv.Close)

	deliveries := numbersDeliveries(numbersBook)
	hs := deliveries[slices.IndexFunc(deliveries, func(d delivery) bool { return d.path == "/v1/webhooks/hubspot" })]
	if code, _ := post(t, srv, hs.path, hs.body, http.Header{}, nil); code != http.StatusUnauthorized {
		t.Fatalf("HubSpot without a signature: %d, want 401", code)
	}
	if n := b.msgs(t); n != 0 {
		t.Fatalf("the unsigned HubSpot call published %d events", n)
	}
	deliver := func() {
		t.Helper()
		for _, d := range deliveries {
			var res WebhookResult
			if code, _ := post(t, srv, d.path, d.body, d.header(srv.URL+d.path), &res); code != http.StatusOK || res.Accepted == 0 || len(res.Refused) > 0 {
				t.Fatalf("POST %s: %d %+v\n%s", d.path, code, res, d.body)
			}
		}
	}
	deliver()
	stored := b.msgs(t)

	deals := oracle(l, numbersBook)
	var want []string
	for _, d := range deals {
		want = append(want, d.derived(l)...)
	}
	sort.Strings(want)
	from, to := at("2024-01-01T00:00:00Z"), at("2025-01-01T00:00:00Z")
	wantFunnel := funnel(l, deals, from, to)
	check := func() {
		t.Helper()
		var got []string
		var gotFunnel []numbersCounts
		for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			got = numbersDerived(t, st)
			gotFunnel = numbersFunnel(t, srv, from, to)
			if reflect.DeepEqual(got, want) && reflect.DeepEqual(gotFunnel, wantFunnel) {
				return
			}
			if time.Now().After(deadline) {
				break
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("derived commitments:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for k := range wantFunnel {
			if k >= len(gotFunnel) || !reflect.DeepEqual(gotFunnel[k], wantFunnel[k]) {
				var g any = "missing"
				if k < len(gotFunnel) {
					g = gotFunnel[k]
				}
				t.Errorf("funnel %s→%s: %+v, want %+v", l.Key(k+1), l.Key(k+2), g, wantFunnel[k])
			}
		}
		t.FailNow()
	}
	check()
	var outcomes numbersCounts
	for _, c := range wantFunnel {
		outcomes.Converted += c.Converted
		outcomes.Dropped += c.Dropped
		outcomes.StillOpen += c.StillOpen
		outcomes.Skipped += c.Skipped
	}
	if wantFunnel[0].Reached != int64(len(numbersBook)) || outcomes.Converted == 0 || outcomes.Dropped == 0 || outcomes.StillOpen == 0 || outcomes.Skipped == 0 {
		t.Fatalf("the book should have every deal reach the first step and exercise every outcome: %+v, %+v", wantFunnel[0], outcomes)
	}

	time.Sleep(1100 * time.Millisecond) // past the duplicate window
	deliver()                           // every webhook delivered again, as the vendors retry
	if n := b.msgs(t); n != 2*stored {
		t.Fatalf("CF_EVENTS holds %d messages after the replay past the duplicate window, want %d", n, 2*stored)
	}
	bustest.WaitDrained(t, b.js, parts, 2*time.Minute)
	var rows uint64
	if err := st.Conn().QueryRow(t.Context(), `SELECT count() FROM events FINAL WHERE tenant = ?`, "acme").Scan(&rows); err != nil || rows != stored {
		t.Errorf("events stored after the replay: %d %v, want %d", rows, err, stored)
	}
	check()
}

// numbersDerived lists acme's current commitment.gained and
// commitment.missed as the oracle's derived does.
func numbersDerived(t *testing.T, st *store.Store) []string {
	t.Helper()
	rows, err := st.Conn().Query(t.Context(), `SELECT opportunity_id, type, step, reason, occurred_at FROM derived_events FINAL
		WHERE tenant = ? AND retracted = 0 AND type IN ('commitment.gained', 'commitment.missed')`, "acme")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var opp, typ, step, reason string
		var when time.Time
		if err := rows.Scan(&opp, &typ, &step, &reason, &when); err != nil {
			t.Fatal(err)
		}
		if typ == "commitment.gained" {
			out = append(out, fmt.Sprintf("%s gained %s at %s", opp, step, when.UTC().Format(time.RFC3339)))
		} else {
			out = append(out, fmt.Sprintf("%s missed %s at %s", opp, reason, when.UTC().Format(time.RFC3339)))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// numbersFunnel asks GET /v1/funnel for [from, to); nil while the answer
// is not 200 (states derived with another ladder, say).
func numbersFunnel(t *testing.T, srv *httptest.Server, from, to time.Time) []numbersCounts {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/funnel?from="+from.Format(time.DateOnly)+"&to="+to.Format(time.DateOnly), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+acmeToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	var res struct {
		Steps []numbersCounts `json:"steps"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("funnel: %v\n%s", err, body)
	}
	return res.Steps
}
