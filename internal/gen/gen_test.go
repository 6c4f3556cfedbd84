package gen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

var testEnd = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func collect(t testing.TB, cfg Config) []event.Event {
	t.Helper()
	var evs []event.Event
	if err := Generate(context.Background(), cfg, func(ev event.Event) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return evs
}

func ndjson(t *testing.T, cfg Config) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := GenerateToWriter(context.Background(), cfg, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(buf.Bytes(), []byte("\n")); lines != n {
		t.Fatalf("GenerateToWriter says %d events, wrote %d lines", n, lines)
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 7, Opportunities: 250, Tenant: "acme", Tenants: 2, End: testEnd, DuplicateRate: 0.05, LateRate: 0.05}
	a, b := ndjson(t, cfg), ndjson(t, cfg)
	if !bytes.Equal(a, b) {
		t.Fatal("same config, different output")
	}
	cfg.Seed = 8
	if c := ndjson(t, cfg); bytes.Equal(a, c) {
		t.Fatal("different seeds, same output")
	}
	// The first opportunities do not depend on how many follow.
	small := ndjson(t, Config{Seed: 7, Opportunities: 50, End: testEnd})
	large := ndjson(t, Config{Seed: 7, Opportunities: 51, End: testEnd})
	if !bytes.HasPrefix(large, small) {
		t.Fatal("adding an opportunity changed the earlier ones")
	}
}

func TestRatesDoNotChangeContent(t *testing.T) {
	plain := collect(t, Config{Seed: 3, Opportunities: 300, End: testEnd})
	noisy := collect(t, Config{Seed: 3, Opportunities: 300, End: testEnd, DuplicateRate: 0.1, LateRate: 0.1})
	ids := map[string]event.Event{}
	for _, ev := range plain {
		ids[ev.ID] = ev
	}
	seen := map[string]bool{}
	for _, ev := range noisy {
		want, ok := ids[ev.ID]
		if !ok {
			t.Fatalf("event %s appears only with duplicates and late events", ev.ID)
		}
		want.ReceivedAt = ev.ReceivedAt // late events are received later
		a, _ := event.Marshal(want)
		b, _ := event.Marshal(ev)
		if !bytes.Equal(a, b) {
			t.Fatalf("event %s differs:\n%s\n%s", ev.ID, a, b)
		}
		seen[ev.ID] = true
	}
	if len(seen) != len(ids) {
		t.Fatalf("%d distinct events with noise, %d without", len(seen), len(ids))
	}
}

func TestEventsValid(t *testing.T) {
	cfg := Config{Seed: 1, Opportunities: 300, Tenant: "demo", Tenants: 3, End: testEnd, DuplicateRate: 0.02, LateRate: 0.02}
	data := ndjson(t, cfg)
	tenants := map[string]bool{"demo-1": true, "demo-2": true, "demo-3": true}
	byID := map[string][]byte{}
	earliest := testEnd.AddDate(-1, 0, -10)
	for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		ev, err := event.Parse(line)
		if err != nil {
			t.Fatalf("line %d: %v\n%s", i+1, err, line)
		}
		if !tenants[ev.Tenant] {
			t.Fatalf("line %d: tenant %q", i+1, ev.Tenant)
		}
		if ev.OccurredAt.After(testEnd) || ev.OccurredAt.Before(earliest) {
			t.Fatalf("line %d: occurred_at %s outside the year before %s", i+1, ev.OccurredAt, testEnd)
		}
		if ev.ReceivedAt.Before(ev.OccurredAt) {
			t.Fatalf("line %d: received before it occurred", i+1)
		}
		if ev.OpportunityID == "" {
			t.Fatalf("line %d: no opportunity id", i+1)
		}
		key := ev.Tenant + "/" + ev.Source + "/" + ev.ID
		if prev, ok := byID[key]; ok && !bytes.Equal(prev, line) {
			t.Fatalf("line %d: id %s reused for a different event:\n%s\n%s", i+1, key, prev, line)
		}
		byID[key] = line
	}
}

// stats summarizes a generated book of business.
type stats struct {
	opps, won, lost, open                                    int
	hubspot                                                  int
	types                                                    map[event.Type]int
	lossReasons                                              map[string]int
	kinds                                                    map[string]int
	stages                                                   map[string]int
	roles                                                    map[string]int
	segments                                                 map[string]int
	callsAdvance, callsSellerOnly, callsNothing, callsNoShow int
	preOppCalls                                              int // calls emitted before their opportunity.created
	stalls                                                   int // silences of 30+ days inside a deal
	kickoffs                                                 int // calls after a win
	closePushes                                              int
	outOfOrder                                               int // events of an opportunity earlier than one emitted before
}

func summarize(evs []event.Event) stats {
	s := stats{types: map[event.Type]int{}, lossReasons: map[string]int{}, kinds: map[string]int{},
		stages: map[string]int{}, roles: map[string]int{}, segments: map[string]int{}}
	created := map[string]bool{}
	won := map[string]time.Time{}
	lost := map[string]bool{}
	last := map[string]time.Time{}
	for _, ev := range evs {
		s.types[ev.Type]++
		o := ev.OpportunityID
		if prev, ok := last[o]; ok {
			if ev.OccurredAt.Before(prev) {
				s.outOfOrder++
			} else if ev.OccurredAt.Sub(prev) >= 30*24*time.Hour {
				s.stalls++
			}
		}
		if !ev.OccurredAt.Before(last[o]) {
			last[o] = ev.OccurredAt
		}
		switch p := ev.Payload.(type) {
		case *event.Opportunity:
			if ev.Type == event.OpportunityCreated {
				created[o] = true
				s.opps++
				s.segments[p.Segment]++
				s.stages[p.Stage]++
				if ev.Source == "hubspot" {
					s.hubspot++
				}
			}
		case *event.StageChange:
			s.stages[p.To]++
		case *event.Won:
			won[o] = ev.OccurredAt
		case *event.Lost:
			lost[o] = true
			s.lossReasons[p.Reason]++
		case *event.CloseDateChange:
			if p.To > p.From {
				s.closePushes++
			}
		case *event.Contact:
			s.roles[p.Role]++
		case *event.Call:
			if !created[o] {
				s.preOppCalls++
			}
			if w, ok := won[o]; ok && p.StartedAt.After(w) {
				s.kickoffs++
			}
			buyers, buyerItems := 0, 0
			for _, pt := range p.Participants {
				if pt.Side == event.Buyer {
					buyers++
				}
			}
			for _, a := range p.ActionItems {
				s.kinds[a.Kind]++
				if a.OwnerSide == event.Buyer {
					buyerItems++
				}
			}
			switch {
			case buyers == 0:
				s.callsNoShow++
			case buyerItems > 0 || p.NextMeetingBooked:
				s.callsAdvance++
			case len(p.ActionItems) > 0:
				s.callsSellerOnly++
			default:
				s.callsNothing++
			}
		}
	}
	s.won, s.lost = len(won), len(lost)
	s.open = s.opps - s.won - s.lost
	return s
}

func TestDistribution(t *testing.T) {
	evs := collect(t, Config{Seed: 42, Opportunities: 3000, End: testEnd})
	s := summarize(evs)
	t.Logf("%d events, %d opportunities: won %d, lost %d, open %d; hubspot %d", len(evs), s.opps, s.won, s.lost, s.open, s.hubspot)
	t.Logf("calls: advance %d, seller only %d, nothing %d, no-show %d; pre-opportunity %d; kickoffs %d; stalls %d; pushes %d",
		s.callsAdvance, s.callsSellerOnly, s.callsNothing, s.callsNoShow, s.preOppCalls, s.kickoffs, s.stalls, s.closePushes)
	t.Logf("loss reasons %v", s.lossReasons)

	if s.opps != 3000 {
		t.Errorf("%d opportunities created, want 3000", s.opps)
	}
	if s.outOfOrder != 0 {
		t.Errorf("%d events out of time order within their opportunity without LateRate", s.outOfOrder)
	}
	within := func(name string, got int, lo, hi float64, of int) {
		if f := float64(got) / float64(of); f < lo || f > hi {
			t.Errorf("%s: %d of %d (%.3f), want between %.2f and %.2f", name, got, of, f, lo, hi)
		}
	}
	closed := s.won + s.lost
	within("win rate of closed deals", s.won, 0.15, 0.35, closed)
	within("open deals", s.open, 0.1, 0.45, s.opps)
	within("hubspot deals", s.hubspot, 0.15, 0.25, s.opps)
	within("no-decision losses", s.lossReasons["No Decision / Status Quo"], 0.3, 0.65, s.lost)
	calls := s.callsAdvance + s.callsSellerOnly + s.callsNothing + s.callsNoShow
	within("seller-only calls", s.callsSellerOnly, 0.1, 0.35, calls)
	within("calls with nothing agreed", s.callsNothing, 0.05, 0.25, calls)
	within("no-show calls", s.callsNoShow, 0.01, 0.1, calls)
	within("pre-opportunity calls", s.preOppCalls, 0.05, 0.2, s.opps)
	within("kickoff calls after wins", s.kickoffs, 0.5, 3, s.won)
	within("deals with a 30+ day silence", s.stalls, 0.05, 0.6, s.opps)
	if s.closePushes == 0 {
		t.Error("no close date was pushed")
	}

	for _, typ := range event.Types {
		if s.types[typ] == 0 {
			t.Errorf("no %s events", typ)
		}
	}
	for _, k := range []string{"share_data", "define_success_criteria", "technical_deep_dive", "intro_stakeholder",
		"budget_confirmation", "pilot", "proposal_review", "security_review", "legal_review", "procurement",
		"sign_contract", "kickoff", "send_info", "schedule_meeting"} {
		if s.kinds[k] == 0 {
			t.Errorf("no action items of kind %s", k)
		}
	}
	for _, st := range []string{"Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
		"Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost",
		"appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin", "contractsent", "closedwon", "closedlost"} {
		if s.stages[st] == 0 {
			t.Errorf("no opportunity ever in stage %q", st)
		}
	}
	for _, r := range []string{"Champion", "Decision Maker", "Economic Buyer", "Technical Buyer", "Influencer"} {
		if s.roles[r] == 0 {
			t.Errorf("no contact with role %q", r)
		}
	}
	for _, seg := range []string{"smb", "mid_market", "enterprise"} {
		if s.segments[seg] == 0 {
			t.Errorf("no %s opportunities", seg)
		}
	}
}

func TestDuplicatesAndLate(t *testing.T) {
	const dup, late = 0.05, 0.08
	evs := collect(t, Config{Seed: 5, Opportunities: 1200, End: testEnd, DuplicateRate: dup, LateRate: late})
	seen := map[string]event.Event{}
	dups, lateN := 0, 0
	for _, ev := range evs {
		if prev, ok := seen[ev.ID]; ok {
			dups++
			a, _ := event.Marshal(prev)
			b, _ := event.Marshal(ev)
			if !bytes.Equal(a, b) {
				t.Fatalf("duplicate %s differs from its original:\n%s\n%s", ev.ID, a, b)
			}
			continue
		}
		seen[ev.ID] = ev
		if ev.ReceivedAt.Sub(ev.OccurredAt) >= 24*time.Hour {
			lateN++
		}
	}
	unique := len(seen)
	if f := float64(dups) / float64(unique); f < dup*0.8 || f > dup*1.2 {
		t.Errorf("duplicates: %.3f of events, want about %.2f", f, dup)
	}
	if f := float64(lateN) / float64(unique); f < late*0.8 || f > late*1.2 {
		t.Errorf("late: %.3f of events, want about %.2f", f, late)
	}
	if s := summarize(evs); s.outOfOrder == 0 {
		t.Error("late events did not arrive out of order")
	}
}

// TestStreaming checks that memory stays flat: every event is emitted soon
// after its opportunity's first event (nothing is buffered beyond one
// opportunity and the bounded late queue), counted through emit.
func TestStreaming(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 5000
	}
	first := map[string]int{}
	pos, worst, maxPerOpp := 0, 0, 0
	perOpp := map[string]int{}
	err := Generate(context.Background(), Config{Seed: 9, Opportunities: n, End: testEnd, DuplicateRate: 0.02, LateRate: 0.05}, func(ev event.Event) error {
		pos++
		f, ok := first[ev.OpportunityID]
		if !ok {
			first[ev.OpportunityID] = pos
			f = pos
		}
		perOpp[ev.OpportunityID]++
		maxPerOpp = max(maxPerOpp, perOpp[ev.OpportunityID])
		worst = max(worst, pos-f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) < n*9/10 {
		t.Fatalf("%d opportunities seen, want about %d", len(first), n)
	}
	// An event trails its opportunity's first by at most one opportunity's
	// events plus the late delay (plus duplicates of those).
	if bound := 2*maxPerOpp + maxLateDelay + maxDupDelay; worst > bound {
		t.Fatalf("an event was emitted %d events after its opportunity's first (bound %d): output is not streaming", worst, bound)
	}
	t.Logf("%d events; largest opportunity %d events; worst lag %d events", pos, maxPerOpp, worst)
}

func TestEmitterBounded(t *testing.T) {
	var got []int
	e := newEmitter(1, 0.5, 1, func(ev event.Event) error {
		got = append(got, int(ev.OccurredAt.Unix()))
		return nil
	})
	high := 0
	for i := range 50000 {
		if err := e.push(event.Event{ID: "x", OccurredAt: time.Unix(int64(i), 0)}); err != nil {
			t.Fatal(err)
		}
		high = max(high, len(e.held))
	}
	if err := e.flush(); err != nil {
		t.Fatal(err)
	}
	if high > maxPending {
		t.Fatalf("held %d events, bound %d", high, maxPending)
	}
	if len(got) < 70000 || len(got) > 80000 {
		t.Fatalf("emitted %d events for 50000 with half duplicated", len(got))
	}
}

func TestGeneratorBufferFlat(t *testing.T) {
	g, err := newGenerator(Config{Seed: 2, Opportunities: 5000, End: testEnd})
	if err != nil {
		t.Fatal(err)
	}
	peak := 0
	for i := range 5000 {
		g.opportunity(i)
		peak = max(peak, cap(g.buf))
	}
	if peak > 1024 {
		t.Fatalf("per-opportunity buffer grew to %d events", peak)
	}
}

func TestStopsOnErrorAndCancel(t *testing.T) {
	boom := errors.New("boom")
	n := 0
	err := Generate(context.Background(), Config{Seed: 1, Opportunities: 1000, End: testEnd}, func(event.Event) error {
		if n++; n == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 10 {
		t.Fatalf("got %v after %d events, want boom after 10", err, n)
	}

	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	err = Generate(ctx, Config{Seed: 1, Opportunities: 100000, End: testEnd}, func(event.Event) error {
		if n++; n == 100 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 10000 {
		t.Fatalf("got %v after %d events, want context.Canceled soon", err, n)
	}

	_, err = GenerateToWriter(context.Background(), Config{Seed: 1, Opportunities: 2000, End: testEnd}, failingWriter{})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("writer error not returned: %v", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestConfigChecked(t *testing.T) {
	for _, cfg := range []Config{
		{Opportunities: -1},
		{Opportunities: 1, Tenant: "Acme Corp"},
		{Opportunities: 1, DuplicateRate: 1.5},
		{Opportunities: 1, LateRate: -0.1},
		{Opportunities: 1, Tenants: 1000},
		{Opportunities: 1, End: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if err := Generate(context.Background(), cfg, func(event.Event) error { return nil }); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	n, err := GenerateToWriter(context.Background(), Config{End: testEnd}, io.Discard)
	if err != nil || n != 0 {
		t.Fatalf("no opportunities: %d events, %v", n, err)
	}
	if got := TenantNames(Config{Tenant: "acme", Tenants: 2}); strings.Join(got, ",") != "acme-1,acme-2" {
		t.Fatalf("TenantNames = %v", got)
	}
	if got := TenantNames(Config{}); len(got) != 1 || got[0] != "demo" {
		t.Fatalf("TenantNames = %v", got)
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := Config{Seed: 1, Opportunities: 2000, End: testEnd, DuplicateRate: 0.01, LateRate: 0.01}
	n := 0
	for b.Loop() {
		if err := Generate(context.Background(), cfg, func(event.Event) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkGenerateToWriter(b *testing.B) {
	cfg := Config{Seed: 1, Opportunities: 2000, End: testEnd, DuplicateRate: 0.01, LateRate: 0.01}
	n := 0
	for b.Loop() {
		k, err := GenerateToWriter(context.Background(), cfg, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		n += k
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// TestUsersNameEveryOwner checks that Users lists, for each tenant, every
// owner id the events of that tenant carry, with a name and an e-mail,
// and that every manager named is listed too.
func TestUsersNameEveryOwner(t *testing.T) {
	cfg := Config{Seed: 3, Opportunities: 400, Tenants: 2, End: testEnd}
	users, err := Users(cfg)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]map[string]User{}
	for tenant, us := range users {
		byID[tenant] = map[string]User{}
		for _, u := range us {
			if u.Name == "" || !strings.Contains(u.Email, "@") || u.Team == "" {
				t.Errorf("%s: user %+v lacks a name, e-mail or team", tenant, u)
			}
			byID[tenant][u.ID] = u
		}
		for _, u := range us {
			if _, ok := byID[tenant][u.Manager]; u.Manager != "" && !ok {
				t.Errorf("%s: manager %q of %s is not a user", tenant, u.Manager, u.ID)
			}
		}
	}
	owners := 0
	for _, ev := range collect(t, cfg) {
		var id string
		switch p := ev.Payload.(type) {
		case *event.Opportunity:
			id = p.OwnerID
		case *event.OwnerChange:
			id = p.To
		}
		if id == "" {
			continue
		}
		owners++
		if _, ok := byID[ev.Tenant][id]; !ok {
			t.Fatalf("%s: owner %q of %s is not among the users", ev.Tenant, id, ev.OpportunityID)
		}
	}
	if owners == 0 || len(users) != 2 {
		t.Fatalf("%d owner ids in the events, users of %d tenants", owners, len(users))
	}
}
