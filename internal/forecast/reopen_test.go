package forecast

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// The tests of this file load CRM input events through the real derivation
// and compare what the forecast reads with an oracle computed here from the
// input events alone (the shipped ladder's Salesforce stage mapping read by
// hand), not from the derived events nor derive.Summarize: deals lost and
// then reopened and won, won and then reopened and lost, closed twice
// without a reopen, and reopened for good.

// rawWonStep is the shipped ladder's won step (decide), gained by a win.
const rawWonStep = 9

// rawStages maps the Salesforce stages to the shipped ladder's steps (0:
// none).
var rawStages = map[string]int{
	"Prospecting": 0, "Qualification": 2, "Needs Analysis": 3, "Value Proposition": 4,
	"Id. Decision Makers": 5, "Perception Analysis": 6, "Proposal/Price Quote": 7,
	"Negotiation/Review": 8, "Closed Won": 9, "Closed Lost": 0,
}

var rawOpenStages = []string{"Prospecting", "Qualification", "Needs Analysis", "Value Proposition",
	"Id. Decision Makers", "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review"}

// rawProbability is the CRM stage probability the events carry.
func rawProbability(stage string) float64 {
	switch stage {
	case "Closed Won":
		return 1
	case "Closed Lost":
		return 0 // no change: the event carries none
	}
	return 0.1 * float64(1+slices.Index(rawOpenStages, stage))
}

// rawEvents makes an opportunity's input events in the fold's order of
// their creation; ids are random, so events of one instant fold in a
// random order.
type rawEvents struct {
	tenant, opp string
	rng         *rand.Rand
	evs         []event.Event
}

func (r *rawEvents) add(at time.Time, typ event.Type, p event.Payload) {
	r.evs = append(r.evs, event.Event{V: 1, ID: fmt.Sprintf("e%08x", r.rng.Uint32()), Tenant: r.tenant, Source: "salesforce",
		Type: typ, OccurredAt: at, ReceivedAt: at, OpportunityID: r.opp, Payload: p})
}

func (r *rawEvents) stage(at time.Time, stage string) {
	r.add(at, event.StageChanged, &event.StageChange{To: stage, Probability: rawProbability(stage)})
}

// rawDeals generates n opportunities of tenant created over 2023 as a CRM
// export carries them (mostly date-only times, sometimes several events at
// one instant), with every kind of close history: none; won or lost;
// lost, reopened by a move back to an open stage, then won (or the other
// way round, or reopened for good); lost then won by a closed_won with no
// reopen between. Gaps of days to months put reference dates (month
// starts) between the closes and reopens.
func rawDeals(seed uint64, tenant string, n int) map[string][]event.Event {
	rng := rand.New(rand.NewPCG(seed, 18))
	t0 := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	owners := []string{"ann", "bob", "cy"}
	segments := []string{"smb", "mid", "ent"}
	out := map[string][]event.Event{}
	for i := 0; i < n; i++ {
		r := &rawEvents{tenant: tenant, opp: fmt.Sprintf("raw-%04d", i), rng: rng}
		dateOnly := rng.IntN(4) > 0
		at := t0.AddDate(0, 0, rng.IntN(365))
		if !dateOnly {
			at = at.Add(time.Duration(rng.IntN(86400)) * time.Second)
		}
		next := func(days int) {
			switch {
			case rng.IntN(8) == 0: // the same instant: one CRM edit as several events
			case dateOnly:
				at = at.AddDate(0, 0, 1+rng.IntN(days))
			default:
				at = at.Add(time.Duration(1+rng.IntN(days*86400)) * time.Second)
			}
		}
		stage := rng.IntN(3)
		owner := owners[rng.IntN(len(owners))]
		r.add(at, event.OpportunityCreated, &event.Opportunity{Stage: rawOpenStages[stage], Probability: rawProbability(rawOpenStages[stage]),
			Amount: float64(1000 * (1 + rng.IntN(50))), OwnerID: owner, Team: "team-" + owner, Segment: segments[rng.IntN(len(segments))]})
		moves := func(m int) {
			for ; m > 0; m-- {
				next(40)
				switch x := rng.IntN(10); {
				case x < 6: // forward, sometimes skipping steps
					stage = min(stage+1+rng.IntN(3), len(rawOpenStages)-1)
					r.stage(at, rawOpenStages[stage])
				case x < 8: // backward
					stage = rng.IntN(stage + 1)
					r.stage(at, rawOpenStages[stage])
				case x < 9:
					r.add(at, event.AmountChanged, &event.AmountChange{To: float64(1000 * (1 + rng.IntN(50)))})
				default:
					o := owners[rng.IntN(len(owners))]
					r.add(at, event.OwnerChanged, &event.OwnerChange{To: o, Team: "team-" + o})
				}
			}
		}
		closeAs := func(won bool) {
			next(60)
			switch {
			case won && rng.IntN(2) == 0:
				r.stage(at, "Closed Won")
			case won:
				r.add(at, event.ClosedWon, &event.Won{Amount: float64(1000 * (1 + rng.IntN(50)))})
			case rng.IntN(2) == 0:
				r.stage(at, "Closed Lost")
			default:
				r.add(at, event.ClosedLost, &event.Lost{Reason: "price"})
			}
		}
		reopen := func() {
			next(90)
			for s := rng.IntN(len(rawOpenStages)); ; s = rng.IntN(len(rawOpenStages)) {
				if s != stage || rng.IntN(4) == 0 { // a move to the current stage is no move: not reopened
					stage = s
					break
				}
			}
			r.stage(at, rawOpenStages[stage])
		}
		moves(rng.IntN(6))
		won := rng.IntN(2) == 0
		switch x := rng.IntN(10); {
		case x < 2: // still open
		case x < 5:
			closeAs(won)
		case x < 8: // closed, reopened, closed the other way (or the same)
			closeAs(won)
			reopen()
			moves(rng.IntN(3))
			closeAs(rng.IntN(4) != 0 != won)
		case x < 9: // reopened for good
			closeAs(won)
			reopen()
			moves(rng.IntN(3))
		default: // lost, then won with no reopen between
			closeAs(false)
			closeAs(true)
		}
		rng.Shuffle(len(r.evs), func(a, b int) { r.evs[a], r.evs[b] = r.evs[b], r.evs[a] })
		out[r.opp] = r.evs
	}
	return out
}

// rawClose is one close the oracle saw: when, won or lost, and the amount
// as of that instant with its currency.
type rawClose struct {
	at       time.Time
	status   string
	amount   float64
	currency string
}

// rawState is an opportunity as of a time, folded by the oracle from its
// input events.
type rawState struct {
	created     time.Time
	status      string
	amount      float64
	currency    string // of amount: the last one given, in upper case
	probability float64
	owner, team string
	segment     string
	step        int       // highest step gained
	lastGain    time.Time // zero if none
	closes      []rawClose
	attrs       map[string]string
	category    string // CRM forecast category
}

// rawFold folds the input events of one opportunity up to asOf in the
// fold's order (occurred_at, source, id) by the brief's rules: a move to a
// stage mapped to step s gains s unless a higher stage step was seen
// before; closing won gains the won step; a close to another status than
// the current one closes the deal again; a move to a stage that closes
// nothing reopens a closed deal.
func rawFold(evs []event.Event, asOf time.Time) rawState {
	evs = slices.Clone(evs)
	slices.SortFunc(evs, func(a, b event.Event) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	s := rawState{status: "open"}
	gained := map[int]bool{}
	stage, maxStage := "", 0
	gain := func(k int, at time.Time) {
		if k < 1 || gained[k] {
			return
		}
		gained[k] = true
		s.step = max(s.step, k)
		s.lastGain = at
	}
	closeAs := func(status string, at time.Time) {
		if s.status == status {
			return
		}
		s.status = status
		s.closes = append(s.closes, rawClose{at: at, status: status})
		if status == "won" {
			gain(rawWonStep, at)
		}
	}
	toStage := func(st string, at time.Time) {
		if st == "" || st == stage {
			return
		}
		stage = st
		if k := rawStages[st]; k > 0 && k >= maxStage {
			maxStage = k
			gain(k, at)
		}
		switch st {
		case "Closed Won":
			closeAs("won", at)
		case "Closed Lost":
			closeAs("lost", at)
		default:
			s.status = "open"
		}
	}
	setProbability := func(p float64) {
		if p > 0 {
			s.probability = p
		}
	}
	setCurrency := func(c string) {
		if c != "" {
			s.currency = strings.ToUpper(c)
		}
	}
	for i, e := range evs {
		if e.OccurredAt.After(asOf) {
			break
		}
		if i == 0 {
			s.created = e.OccurredAt
		}
		switch p := e.Payload.(type) {
		case *event.Opportunity:
			for k, v := range p.Attributes {
				if s.attrs == nil {
					s.attrs = map[string]string{}
				}
				if v == "" {
					delete(s.attrs, k)
				} else {
					s.attrs[k] = v
				}
			}
			setProbability(p.Probability)
			s.segment = cmp.Or(p.Segment, s.segment)
			s.team = cmp.Or(p.Team, s.team)
			if p.Amount > 0 {
				s.amount = p.Amount
			}
			setCurrency(p.Currency)
			s.owner = cmp.Or(p.OwnerID, s.owner)
			s.category = cmp.Or(p.ForecastCategory, s.category)
			toStage(p.Stage, e.OccurredAt)
		case *event.StageChange:
			setProbability(p.Probability)
			toStage(p.To, e.OccurredAt)
		case *event.AmountChange:
			s.amount = p.To
			setCurrency(p.Currency)
		case *event.OwnerChange:
			s.team = cmp.Or(p.Team, s.team)
			s.owner = p.To
		case *event.ForecastCategoryChange:
			s.category = p.To
		case *event.Won:
			if p.Amount > 0 {
				s.amount = p.Amount
			}
			setCurrency(p.Currency)
			closeAs("won", e.OccurredAt)
		case *event.Lost:
			if p.Amount > 0 {
				s.amount = p.Amount
			}
			setCurrency(p.Currency)
			closeAs("lost", e.OccurredAt)
		}
	}
	return s
}

// rawOpp answers the oracle's questions about one opportunity's events.
type rawOpp []event.Event

// openAt reports whether the opportunity is open at t, with its state then.
func (o rawOpp) openAt(t time.Time) (rawState, bool) {
	s := rawFold(o, t)
	return s, !s.created.IsZero() && s.status == "open"
}

// closeAfter returns the first close after t and at or before bound, with
// the amount as of its time.
func (o rawOpp) closeAfter(t, bound time.Time) (rawClose, bool) {
	for _, c := range rawFold(o, bound).closes {
		if c.at.After(t) {
			s := rawFold(o, c.at)
			c.amount, c.currency = s.amount, s.currency
			return c, true
		}
	}
	return rawClose{}, false
}

// rawStates is statesSQL computed from the input events.
func rawStates(deals map[string][]event.Event, refs []time.Time, bound time.Time, horizon int) []stateRow {
	var out []stateRow
	for id, evs := range deals {
		o := rawOpp(evs)
		for _, t := range refs {
			s, open := o.openAt(t)
			if !open {
				continue
			}
			last := cmp.Or(s.lastGain, s.created)
			r := stateRow{Opportunity: id, T: t, Step: s.step, LastAt: last, Days: int(t.Sub(last) / (24 * time.Hour)), Segment: s.segment}
			r.Day = min(int(bound.Sub(t)/(24*time.Hour)), horizon)
			if c, ok := o.closeAfter(t, bound); ok {
				if day := int(c.at.Sub(t) / (24 * time.Hour)); day < horizon {
					r.Day, r.Outcome = day, Lost
					if c.status == "won" {
						r.Outcome = Won
					}
				}
			}
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Opportunity != out[j].Opportunity {
			return out[i].Opportunity < out[j].Opportunity
		}
		return out[i].T.Before(out[j].T)
	})
	return out
}

// rawOpenDeals is dealsSQL computed from the input events.
func rawOpenDeals(deals map[string][]event.Event, at, bound time.Time) []dealRow {
	var out []dealRow
	for id, evs := range deals {
		o := rawOpp(evs)
		s, open := o.openAt(at)
		if !open {
			continue
		}
		d := dealRow{Opportunity: id, Amount: s.amount, Currency: s.currency, Probability: s.probability, Owner: s.owner, Team: s.team,
			Segment: s.segment, Step: s.step, LastAt: cmp.Or(s.lastGain, s.created)}
		if c, ok := o.closeAfter(at, bound); ok {
			d.Closed, d.ClosedAt, d.Status, d.CloseAmount, d.CloseCurrency = true, c.at, c.status, c.amount, c.currency
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Opportunity < out[j].Opportunity })
	return out
}

// loadRaw derives every opportunity with the shipped ladder and returns a
// Forecaster on a fresh database holding the derived events and states.
func loadRaw(t *testing.T, deals map[string][]event.Event, now time.Time) *Forecaster {
	t.Helper()
	l := ladder.Default()
	ids := make([]string, 0, len(deals))
	for id := range deals {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var rows []store.DerivedRow
	for _, id := range ids {
		evs := deals[id]
		for _, d := range derive.Derive(evs[0].Tenant, id, evs, l, now) {
			rows = append(rows, store.DerivedRow{Derived: d, Version: 1})
		}
	}
	st := storetest.Open(t, store.Options{})
	if err := st.InsertDerivedWithStates(context.Background(), rows, l.Len()); err != nil {
		t.Fatal(err)
	}
	return New(st.Conn())
}

// TestReopenedAgainstRawOracle compares the training samples (state and
// outcome per open opportunity and reference date), their aggregate and
// the open deals with the oracle from the input events, for several
// forecast dates, horizons and back-test bounds: a deal is open at the
// dates its status is open, and its outcome is its first close after the
// date. It fails on the first-close rule (a deal lost, reopened and won
// counted lost at its first close and never open again).
func TestReopenedAgainstRawOracle(t *testing.T) {
	ctx := context.Background()
	deals := rawDeals(18, "acme", 400)
	f := loadRaw(t, deals, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	var reopenedSamples, reopenedOpen, laterOutcomes int
	for _, tc := range []struct {
		asOf    time.Time
		months  int
		horizon int
	}{
		{time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), 12, 180},
		{time.Date(2023, 11, 17, 12, 0, 0, 0, time.UTC), 10, 60},
		{time.Date(2024, 2, 10, 0, 0, 0, 0, time.UTC), 12, 365},
	} {
		refs := referenceDates(tc.asOf, tc.months)
		got, err := readView(ctx, f, "acme", func(ctx context.Context, v *snapshot.View) ([]stateRow, error) {
			return f.states(ctx, v, "acme", refs, tc.asOf, tc.horizon)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := rawStates(deals, refs, tc.asOf, tc.horizon)
		compareRows(t, fmt.Sprintf("as of %s: states", tc.asOf), got, want)
		for _, s := range want {
			all := rawFold(deals[s.Opportunity], tc.asOf).closes
			if len(all) > 0 && all[0].at.Before(s.T) {
				reopenedSamples++
			}
			if len(all) > 1 && s.Outcome != Censored && !all[0].at.After(s.T) {
				laterOutcomes++
			}
		}

		var gotStats trainingStats
		gotTrain, err := readView(ctx, f, "acme", func(ctx context.Context, v *snapshot.View) ([]trainRow, error) {
			var (
				rows []trainRow
				err  error
			)
			rows, gotStats, err = f.training(ctx, v, "acme", refs, tc.asOf, tc.horizon)
			return rows, err
		})
		if err != nil {
			t.Fatal(err)
		}
		wantTrain, wantStats := oracleTraining(want)
		compareRows(t, fmt.Sprintf("as of %s: training", tc.asOf), gotTrain, wantTrain)
		if gotStats != wantStats {
			t.Errorf("as of %s: training stats %+v; oracle %+v", tc.asOf, gotStats, wantStats)
		}

		for _, bound := range []time.Time{tc.asOf, tc.asOf.AddDate(0, 0, tc.horizon)} {
			gotDeals, err := readView(ctx, f, "acme", func(ctx context.Context, v *snapshot.View) (*chunks[dealRow], error) {
				return f.deals(ctx, v, "acme", tc.asOf, bound, false, nil)
			})
			if err != nil {
				t.Fatal(err)
			}
			wantDeals := rawOpenDeals(deals, tc.asOf, bound)
			compareRows(t, fmt.Sprintf("deals open at %s, closes to %s", tc.asOf, bound), gotDeals.all(), wantDeals)
			for _, d := range wantDeals {
				if cs := rawFold(deals[d.Opportunity], tc.asOf).closes; len(cs) > 0 {
					reopenedOpen++
				}
			}
		}
	}
	// The data must exercise the rule: samples and open deals after a
	// close, and outcomes that are not the first close.
	if reopenedSamples < 100 || reopenedOpen < 50 || laterOutcomes < 50 {
		t.Errorf("reopened: %d samples, %d open deals, %d later outcomes: the data does not exercise the rule",
			reopenedSamples, reopenedOpen, laterOutcomes)
	}
}

// TestForecastFollowsReopen follows two deals through a reopen: "lw" lost
// on 10 March 2023, reopened on 10 May, won on 10 August; "wl" won, then
// reopened and lost on the same days. Between the first close and the
// reopen neither is open: no training sample, out of both weighted
// pipelines; after the reopen both are, and their outcome is the second
// close.
func TestForecastFollowsReopen(t *testing.T) {
	ctx := context.Background()
	day := func(m time.Month, d int) time.Time { return time.Date(2023, m, d, 0, 0, 0, 0, time.UTC) }
	deals := map[string][]event.Event{}
	for _, id := range []string{"lw", "wl"} {
		r := &rawEvents{tenant: "re", opp: id, rng: rand.New(rand.NewPCG(1, 2))}
		r.add(day(1, 10), event.OpportunityCreated, &event.Opportunity{Stage: "Needs Analysis", Probability: 0.3, Amount: 1000,
			OwnerID: "ann", Team: "t1", Segment: "smb"})
		if id == "lw" {
			r.stage(day(3, 10), "Closed Lost")
			r.add(day(5, 10), event.StageChanged, &event.StageChange{To: "Negotiation/Review", Probability: 0.6})
			r.add(day(8, 10), event.ClosedWon, &event.Won{Amount: 1500})
		} else {
			r.add(day(3, 10), event.ClosedWon, &event.Won{})
			r.add(day(5, 10), event.StageChanged, &event.StageChange{To: "Proposal/Price Quote", Probability: 0.5})
			r.add(day(8, 10), event.ClosedLost, &event.Lost{Reason: "price"})
		}
		deals[id] = r.evs
	}
	f := loadRaw(t, deals, day(12, 31))

	refs := referenceDates(day(10, 15), 9) // 1 Jan … 1 Sep 2023
	got, err := readView(ctx, f, "re", func(ctx context.Context, v *snapshot.View) ([]stateRow, error) {
		return f.states(ctx, v, "re", refs, day(10, 15), 180)
	})
	if err != nil {
		t.Fatal(err)
	}
	var samples []string
	for _, s := range got {
		outcome := map[Outcome]string{Censored: "censored", Won: "won", Lost: "lost"}[s.Outcome]
		samples = append(samples, fmt.Sprintf("%s %s %s day %d", s.Opportunity, s.T.Format("01-02"), outcome, s.Day))
	}
	want := []string{
		"lw 02-01 lost day 37", "lw 03-01 lost day 9", "lw 06-01 won day 70", "lw 07-01 won day 40", "lw 08-01 won day 9",
		"wl 02-01 won day 37", "wl 03-01 won day 9", "wl 06-01 lost day 70", "wl 07-01 lost day 40", "wl 08-01 lost day 9",
	}
	if !slices.Equal(samples, want) {
		t.Errorf("samples\n got  %q\n want %q", samples, want)
	}
	compareRows(t, "states", got, rawStates(deals, refs, day(10, 15), 180))

	for _, tc := range []struct {
		asOf     time.Time
		deals    int
		amount   float64
		crm      float64
		backtest bool
	}{
		{day(2, 15), 2, 2000, 600, false},
		{day(4, 15), 0, 0, 0, false}, // between the first close and the reopen
		{day(6, 15), 2, 2000, 1100, false},
		{day(9, 15), 0, 0, 0, false},
	} {
		r, err := f.Forecast(ctx, Query{Tenant: "re", AsOf: tc.asOf})
		if err != nil {
			t.Fatal(err)
		}
		pl := r.Pipeline.Total
		if r.Samples.OpenDeals != tc.deals || pl.Deals != tc.deals || *pl.Amount != tc.amount || math.Abs(*pl.CRMWeighted-tc.crm) > 1e-9 {
			t.Errorf("as of %s: %d open deals (%d), amount %v, CRM-weighted %v; want %d, %v, %v",
				tc.asOf.Format("2006-01-02"), r.Samples.OpenDeals, pl.Deals, *pl.Amount, *pl.CRMWeighted, tc.deals, tc.amount, tc.crm)
		}
	}

	// Back-test from 1 June: lw is won (at 1500), wl lost; from 1 April
	// neither is open.
	for _, tc := range []struct {
		at        time.Time
		deals     int
		wonDeals  int
		wonAmount float64
	}{{day(6, 1), 2, 1, 1500}, {day(4, 1), 0, 0, 0}, {day(2, 1), 2, 1, 1000}} {
		r, err := f.Forecast(ctx, Query{Tenant: "re", AsOf: day(12, 31), Backtest: &tc.at})
		if err != nil {
			t.Fatal(err)
		}
		if bt := r.Backtest; bt.Deals != tc.deals || bt.WonDeals != tc.wonDeals || *bt.WonAmount != tc.wonAmount {
			t.Errorf("back-test at %s: %d deals, %d won for %v; want %d, %d for %v",
				tc.at.Format("2006-01-02"), bt.Deals, bt.WonDeals, *bt.WonAmount, tc.deals, tc.wonDeals, tc.wonAmount)
		}
	}
}
