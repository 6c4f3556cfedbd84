package importer

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
)

// e2eNow is the derivation's and the queries' now: after every event of
// the generated exports.
var e2eNow = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

const e2ePartitions = 2

// deriveStack is an embedded NATS server with the streams declared, a
// fresh ClickHouse database, and the ingest and derive workers running
// with ladder l.
type deriveStack struct {
	pipeline
	l *ladder.Ladder
}

func startDeriveStack(t *testing.T, l *ladder.Ladder) deriveStack {
	t.Helper()
	return deriveStack{startDerivePipeline(t, l, e2eNow), l}
}

// importTwice runs the import of rows twice and checks that the stream
// and the store hold one copy of each event, then waits until derivation
// has caught up. It returns the number of events.
func (s deriveStack) importTwice(t *testing.T, rows Rows, key, tenant string) int {
	t.Helper()
	want := countEvents(rows)
	for i := range 2 {
		sum, err := Run(t.Context(), rows, key, s.pub, Options{BatchSize: 500})
		if err != nil {
			t.Fatal(err)
		}
		if sum.Events != want {
			t.Fatalf("import %d: %d events published, want %d", i+1, sum.Events, want)
		}
	}
	s.waitStored(t, tenant, uint64(want), 2*time.Minute)
	bustest.WaitDrained(t, s.js, e2ePartitions, 2*time.Minute)
	msgs, stored, distinct := s.counts(t, tenant)
	if msgs != uint64(want) || stored != uint64(want) || distinct != uint64(want) {
		t.Fatalf("after importing twice: %d stream messages, %d rows and %d distinct events stored; want %d of each", msgs, stored, distinct, want)
	}
	return want
}

// dealFacts are a deal's facts at the end of its history: the status,
// stage, amount and currency.
type dealFacts struct {
	status, stage, currency string
	amount                  float64
}

// finalFacts returns each deal's facts after its last derived event.
func (s deriveStack) finalFacts(t *testing.T, tenant string) map[string]dealFacts {
	t.Helper()
	ds, err := s.st.CurrentDerived(t.Context(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(ds, func(a, b derive.Derived) int {
		if a.OpportunityID != b.OpportunityID {
			return strings.Compare(a.OpportunityID, b.OpportunityID)
		}
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		return a.Seq - b.Seq
	})
	out := map[string]dealFacts{}
	for _, d := range ds {
		out[d.OpportunityID] = dealFacts{d.Status, d.Stage, d.Currency, d.Amount}
	}
	return out
}

// reached returns the funnel's cohort of each step, from first to last,
// of every deal ever, as of e2eNow.
func (s deriveStack) reached(t *testing.T, tenant string) []int64 {
	t.Helper()
	keys := make([]string, s.l.Len())
	for i := range keys {
		keys[i] = s.l.Key(i + 1)
	}
	res, err := metrics.New(s.st.Conn()).Funnel(t.Context(), metrics.FunnelQuery{Tenant: tenant, AsOf: e2eNow,
		From: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), To: e2eNow, Ladder: keys, LadderVersion: s.l.Version})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(keys))
	for _, st := range res.Steps {
		out[st.FromIndex-1] = st.Reached
		if st.ToIndex == len(keys) {
			out[st.ToIndex-1] = st.Converted
		}
	}
	return out
}

// oracle is what a deals export says, read by the test on its own: each
// deal's facts at the end and the highest step it reached.
type oracle struct {
	facts   map[string]dealFacts
	highest map[string]int
}

// reachedCounts are the cohorts of the n steps: the deals whose highest
// step is at or past each.
func (o oracle) reachedCounts(n int) []int64 {
	out := make([]int64, n)
	for _, h := range o.highest {
		for k := 1; k <= h; k++ {
			out[k-1]++
		}
	}
	return out
}

// check compares the pipeline's answers with the oracle.
func (o oracle) check(t *testing.T, s deriveStack, tenant string) {
	t.Helper()
	got := s.finalFacts(t, tenant)
	if len(got) != len(o.facts) {
		t.Errorf("%d deals derived, want %d", len(got), len(o.facts))
	}
	for id, want := range o.facts {
		if g := got[id]; g.status != want.status || g.stage != want.stage || g.currency != want.currency || math.Abs(g.amount-want.amount) > 1e-9 {
			t.Errorf("deal %s: %+v, want %+v", id, g, want)
		}
	}
	if got, want := s.reached(t, tenant), o.reachedCounts(s.l.Len()); !slices.Equal(got, want) {
		t.Errorf("funnel cohorts %v, want %v (steps %s)", got, want, strings.Join(ladderSteps(s.l), ","))
	}
	counts := map[string]int{}
	for _, f := range got {
		counts[f.status]++
	}
	t.Logf("%d deals: %v; funnel cohorts %v", len(got), counts, o.reachedCounts(s.l.Len()))
}

func ladderSteps(l *ladder.Ladder) []string {
	out := make([]string, l.Len())
	for i := range out {
		out[i] = l.Key(i + 1)
	}
	return out
}

// hubspotSteps are the steps of labelLadder's stages, by label.
var hubspotSteps = map[string]string{
	"Appointment Scheduled": "time", "Qualified To Buy": "change", "Presentation Scheduled": "collaborate",
	"Contract Sent": "review", "Closed Won": "decide", "Renewal due": "time", "Negotiating": "review", "Renewed": "decide",
}

// genHubSpotDeals writes a HubSpot deals export (the shape of
// testdata/hubspot/deals.csv) of n deals in the fixture's two pipelines:
// won, lost and open deals, four currencies, some amounts empty, some
// values dates only, some closed stages without their date entered, some
// backward moves (a stage entered again: its first entry is gone from the
// file), and every 17th row with a bad Create Date.
func genHubSpotDeals(n int) []byte {
	type pl struct {
		name      string
		open      []string // its open stages, in order
		won, lost string
	}
	sales := pl{name: "Sales Pipeline", open: []string{"Appointment Scheduled", "Qualified To Buy", "Presentation Scheduled", "Decision Maker Bought-In", "Contract Sent"},
		won: "Closed Won", lost: "Closed Lost"}
	renewals := pl{name: "Renewals", open: []string{"Renewal due", "Negotiating"}, won: "Renewed", lost: "Churned"}
	header := []string{"Record ID", "Deal Name", "Deal Stage", "Pipeline", "Amount", "Currency", "Close Date", "Create Date", "Deal owner", "Closed Lost Reason"}
	col := map[string]int{}
	for _, p := range []pl{sales, renewals} {
		for _, s := range append(slices.Clone(p.open), p.won, p.lost) {
			for _, what := range []string{"entered", "exited"} {
				name := fmt.Sprintf("Date %s %q", what, s+" ("+p.name+")")
				col[name] = len(header)
				header = append(header, name)
			}
		}
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write(header)
	base := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	currencies := []string{"USD", "EUR", "GBP", "JPY"}
	for i := range n {
		row := make([]string, len(header))
		p := sales
		if i%4 == 3 {
			p = renewals
		}
		layout := "2006-01-02 15:04"
		if i%5 == 0 {
			layout = time.DateOnly
		}
		created := base.Add(time.Duration(i) * 26 * time.Hour)
		at := func(t time.Time) string { return t.Format(layout) }
		set := func(what, stage string, t time.Time) {
			row[col[fmt.Sprintf("Date %s %q", what, stage+" ("+p.name+")")]] = at(t)
		}
		row[0], row[1], row[3] = strconv.Itoa(7000+i), fmt.Sprintf("Deal %d", i), p.name
		row[4], row[5] = strconv.Itoa(1000+i*10), currencies[i%len(currencies)]
		if i%11 == 0 {
			row[4] = ""
		}
		row[7], row[8] = at(created), fmt.Sprintf("Owner %d", i%3)
		if i%17 == 16 {
			row[7] = "n/a"
		}
		k := 1 + i%len(p.open) // open stages gone through
		t := created
		for j := range k {
			set("entered", p.open[j], t)
			if j < k-1 {
				t = t.Add(7 * 24 * time.Hour)
				set("exited", p.open[j], t)
			}
		}
		current := p.open[k-1]
		if k >= 3 && i%3 == 2 && i%2 == 1 {
			// Back to the stage before: its first entry is replaced.
			set("exited", current, t.Add(24*time.Hour))
			current = p.open[k-2]
			t = t.Add(24 * time.Hour)
			set("entered", current, t)
		}
		closed := t.Add(5 * 24 * time.Hour)
		row[6] = at(closed.Add(30 * 24 * time.Hour)) // expected
		switch i % 3 {
		case 0:
			current = p.won
		case 1:
			current, row[9] = p.lost, "Lost reason "+strconv.Itoa(i%4)
		}
		if i%3 != 2 {
			set("exited", p.open[k-1], closed)
			row[6] = at(closed)
			if i%7 != 0 { // else: the closed stage's date is not exported
				set("entered", current, closed)
			}
		}
		row[2] = current
		_ = w.Write(row)
	}
	w.Flush()
	return b.Bytes()
}

// hubspotOracle reads a HubSpot deals export as the test understands it:
// a deal reaches the steps of every stage it has a date entered for and
// of its current stage (and decide when won); it is won or lost when its
// current stage is a closed stage of its pipeline; its amount and
// currency are the row's.
func hubspotOracle(t *testing.T, data []byte) oracle {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]int{}
	for i, k := range ladderSteps(mustLadder(t, labelLadder)) {
		steps[k] = i + 1
	}
	o := oracle{facts: map[string]dealFacts{}, highest: map[string]int{}}
	header := recs[0]
	for _, r := range recs[1:] {
		if r[7] == "n/a" {
			continue
		}
		f := dealFacts{status: derive.StatusOpen, stage: r[2], currency: r[5]}
		f.amount, _ = strconv.ParseFloat(r[4], 64)
		switch r[2] {
		case "Closed Won", "Renewed":
			f.status = derive.StatusWon
		case "Closed Lost", "Churned":
			f.status = derive.StatusLost
		}
		h := steps[hubspotSteps[r[2]]]
		for i, name := range header {
			if stage, ok := strings.CutPrefix(name, `Date entered "`); ok && r[i] != "" {
				stage = stage[:strings.LastIndex(stage, " (")]
				h = max(h, steps[hubspotSteps[stage]])
			}
		}
		if f.status == derive.StatusWon {
			h = max(h, steps["decide"])
		}
		o.facts[r[0]], o.highest[r[0]] = f, h
	}
	return o
}

func mustLadder(t *testing.T, yaml string) *ladder.Ladder {
	t.Helper()
	l, err := ladder.Parse("test", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestHubSpotDealsEndToEnd imports a generated HubSpot deals export with
// the fixture's pipelines twice through NATS into ClickHouse, with the
// workers deriving under a ladder of the pipelines' labels: one copy of
// each event is stored, and every deal's final status, stage, amount and
// currency and the funnel's cohorts are those the test reads from the
// file's rows.
func TestHubSpotDealsEndToEnd(t *testing.T) {
	s := startDeriveStack(t, mustLadder(t, labelLadder))
	data := genHubSpotDeals(150)
	p := HubSpotDeals{Tenant: "acme", Pipelines: hubspotPipelines(t)}
	rows, err := p.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, r := range rows {
		if r.Err != nil {
			refused++
		}
	}
	if refused != 150/17 {
		t.Fatalf("%d rows refused, want %d", refused, 150/17)
	}
	n := s.importTwice(t, rows, Key(data, "hubspot-deals"), "acme")
	t.Logf("%d rows, %d events", len(rows), n)
	hubspotOracle(t, data).check(t, s, "acme")
}
