package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ingest/ingesttest"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	st  *store.Store
	url string
}

func newEnv(t *testing.T, partitions int) *env {
	t.Helper()
	// A short AckWait: a message delivered to a fetch that had already
	// expired comes back after it, and the derive barrier waits for it.
	srv, _ := bustest.Start(t, bus.Options{Partitions: partitions, AckWait: 5 * time.Second})
	st := storetest.Open(t, store.Options{Logger: quiet})
	return &env{st: st, url: srv.ClientURL()}
}

// ingest connects to e's NATS server and runs an ingest worker into e's
// store (batches of 500, waiting at most 100 ms) until t ends. It returns
// the connection's JetStream.
func (e *env) ingest(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := bustest.Connect(t, e.url)
	ingesttest.Run(t, js, e.st, ingest.Config{BatchSize: 500, MaxWait: 100 * time.Millisecond})
	return js
}

// checkDerived checks that acme's current derived events and opportunity
// states in e's store are those of deriving evs directly with l at now.
func (e *env) checkDerived(t *testing.T, evs []event.Event, l *ladder.Ladder, now time.Time) {
	t.Helper()
	want := expected(evs, l, now)
	got, err := e.st.CurrentDerived(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	diffSets(t, "derived", got, want)
	checkStates(t, e.st, want, l.Len())
}

// generate returns a generated book of business with duplicates and late
// arrivals.
func generate(t *testing.T, seed int64, opportunities int, end time.Time) []event.Event {
	t.Helper()
	var evs []event.Event
	cfg := gen.Config{Seed: seed, Opportunities: opportunities, Tenant: "acme", End: end, DuplicateRate: 0.05, LateRate: 0.1}
	if err := gen.Generate(context.Background(), cfg, func(ev event.Event) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return evs
}

// waitDrained waits until every consumer of the event stream has nothing
// pending or unacknowledged.
func waitDrained(t *testing.T, js jetstream.JetStream, partitions int) {
	t.Helper()
	bustest.WaitDrained(t, js, partitions, 2*time.Minute)
}

func sortDerived(ds []derive.Derived) {
	sort.Slice(ds, func(i, j int) bool {
		if ds[i].OpportunityID != ds[j].OpportunityID {
			return ds[i].OpportunityID < ds[j].OpportunityID
		}
		return ds[i].ID < ds[j].ID
	})
}

// expected derives the generated events directly, without infrastructure.
func expected(evs []event.Event, l *ladder.Ladder, now time.Time) []derive.Derived {
	return expectedFor("acme", evs, l, now)
}

func diffSets(t *testing.T, name string, got, want []derive.Derived) {
	t.Helper()
	sortDerived(got)
	sortDerived(want)
	if len(got) != len(want) {
		t.Errorf("%s: %d derived events, want %d", name, len(got), len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Fatalf("%s: derived event %d differs:\n got %+v\nwant %+v", name, i, got[i], want[i])
		}
	}
}

// TestLiveEqualsReplay runs generated data through the live pipeline with two
// derive workers sharing the partitions, kills one midway, and checks that
// the stored derived events equal both a direct derivation and a replay.
func TestLiveEqualsReplay(t *testing.T) {
	const partitions = 4
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t, partitions)
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	now := end.Add(24 * time.Hour)
	clock := func() time.Time { return now }
	l := ladder.Default()
	evs := generate(t, 7, 80, end)

	js := e.ingest(t)

	// Two "processes", each with its own NATS connection.
	// A derives one batch at a time whatever it holds (Config.Concurrency),
	// B as many as it has cores.
	startDeriver := func(member string, concurrency int) (context.CancelFunc, *nats.Conn, chan struct{}) {
		nc, js := bustest.Connect(t, e.url)
		d, err := NewDeriver(ctx, js, e.st, l, Config{BatchSize: 200, MaxWait: 100 * time.Millisecond, LeaseTTL: 2 * time.Second, Sweep: -1, Now: clock, Member: member, Concurrency: concurrency}, nil, quiet)
		if err != nil {
			t.Fatal(err)
		}
		dctx, dcancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); d.Run(dctx) }()
		return dcancel, nc, done
	}
	cancelA, ncA, doneA := startDeriver("a", 1)
	defer func() { cancelA(); <-doneA; ncA.Close() }()
	cancelB, ncB, doneB := startDeriver("b", 0)

	pub := bus.NewPublisher(js, partitions)
	half := len(evs) / 2
	if err := pub.PublishBatch(ctx, evs[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	// Kill B: its connection drops without releasing its leases, which
	// expire; A takes its partitions over.
	ncB.Close()
	cancelB()
	<-doneB
	if err := pub.PublishBatch(ctx, evs[half:]); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, js, partitions)

	live, err := e.st.CurrentDerived(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := expected(evs, l, now)
	if len(want) == 0 {
		t.Fatal("generated data derived nothing")
	}
	diffSets(t, "live", live, want)
	checkStates(t, e.st, want, l.Len())

	// Every derived event was also published on CF_DERIVED (retractions
	// and changed versions add to that).
	ds, err := js.Stream(ctx, bus.DerivedStream)
	if err != nil {
		t.Fatal(err)
	}
	dinfo, err := ds.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if dinfo.State.Msgs < uint64(len(want)) {
		t.Errorf("CF_DERIVED holds %d messages, want at least the %d derived events", dinfo.State.Msgs, len(want))
	}
	// Without a Nats-Msg-Id: the server would hold every id for the
	// duplicate window, for nothing (see publishDerived).
	if m, err := ds.GetMsg(ctx, dinfo.State.FirstSeq); err != nil {
		t.Fatal(err)
	} else if id := m.Header.Get(jetstream.MsgIDHeader); id != "" {
		t.Errorf("CF_DERIVED message %d has Nats-Msg-Id %q", m.Sequence, id)
	}

	if _, err := Replay(ctx, e.st, l, ReplayOptions{Tenants: []string{"acme"}, Now: now}, quiet); err != nil {
		t.Fatal(err)
	}
	replayed, err := e.st.CurrentDerived(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	diffSets(t, "replay", replayed, want)
	checkStates(t, e.st, want, l.Len())
}

// checkStates compares the stored opportunity states with the states of
// the expected derived events.
func checkStates(t *testing.T, st *store.Store, want []derive.Derived, steps int) {
	t.Helper()
	byOpp := map[string][]derive.Derived{}
	for _, d := range want {
		byOpp[d.OpportunityID] = append(byOpp[d.OpportunityID], d)
	}
	rows, err := st.Conn().Query(context.Background(), `SELECT opportunity_id, reach, gain_steps, amounts, miss_reasons, held_outcomes
FROM opportunity_state FINAL WHERE tenant = 'acme' ORDER BY opportunity_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			id                    string
			reach                 []time.Time
			gainSteps             []uint8
			amounts               []float64
			missReasons, outcomes []string
		)
		if err := rows.Scan(&id, &reach, &gainSteps, &amounts, &missReasons, &outcomes); err != nil {
			t.Fatal(err)
		}
		n++
		w := derive.Summarize(byOpp[id], steps)
		for i := range reach {
			if reach[i].Unix() <= 0 {
				reach[i] = time.Time{}
			} else {
				reach[i] = reach[i].UTC()
			}
		}
		var wantAmounts []float64
		for _, f := range w.Facts {
			wantAmounts = append(wantAmounts, f.Amount)
		}
		if !reflect.DeepEqual(reach, w.Reach) || len(gainSteps) != len(w.GainSteps) || !reflect.DeepEqual(amounts, wantAmounts) ||
			len(missReasons) != len(w.Misses) || len(outcomes) != len(w.Held) {
			t.Fatalf("state of %s differs from its derived events:\n reach %v want %v\n gains %v want %v\n amounts %v want %v\n misses %d want %d, held %d want %d",
				id, reach, w.Reach, gainSteps, w.GainSteps, amounts, wantAmounts, len(missReasons), len(w.Misses), len(outcomes), len(w.Held))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(byOpp) {
		t.Errorf("%d opportunity states, want %d", n, len(byOpp))
	}
}

// TestReplayRetracts checks that a replay under a different ladder retracts
// the derived events the new ladder no longer yields, and that replaying
// twice changes nothing.
func TestReplayRetracts(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, 2)
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	now := end.Add(24 * time.Hour)
	evs := generate(t, 3, 30, end)
	rows := make([]store.RawEvent, 0, len(evs))
	for i, ev := range evs {
		b, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source, EventID: ev.ID, Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.OccurredAt, StreamSeq: uint64(i + 1), Payload: b})
	}
	if err := e.st.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	full := ladder.Default()
	if _, err := Replay(ctx, e.st, full, ReplayOptions{Now: now}, quiet); err != nil {
		t.Fatal(err)
	}
	got, err := e.st.CurrentDerived(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	diffSets(t, "first replay", got, expected(evs, full, now))

	short, err := ladder.Parse("short.yaml", []byte(shortLadder))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if _, err := Replay(ctx, e.st, short, ReplayOptions{Now: now}, quiet); err != nil {
			t.Fatal(err)
		}
		got, err = e.st.CurrentDerived(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		diffSets(t, fmt.Sprintf("short ladder replay %d", i+1), got, expected(evs, short, now))
	}
}

// shortLadder is a tenant's own four-step ladder.
const shortLadder = `
version: short-1
steps:
  - {key: meet, title: First meeting, stall_after_days: 21}
  - {key: qualify, title: Qualified, stall_after_days: 30}
  - {key: propose, title: Proposal reviewed, stall_after_days: 30}
  - {key: decide, title: Decided, stall_after_days: 0}
pipelines:
  - pipeline: "*"
    stages:
      Prospecting: meet
      Qualification: qualify
      Needs Analysis: qualify
      Proposal/Price Quote: propose
      Negotiation/Review: propose
      Closed Won: decide
won_stages: [Closed Won, closedwon]
lost_stages: [Closed Lost, closedlost]
activities:
  - {step: meet, kinds: [meeting, call]}
action_items:
  - step: propose
    kinds: [proposal_review]
consensus:
  step: qualify
  stakeholders: 2
  roles: [economic buyer, champion]
won_step: decide
single_threaded_from: propose
no_decision:
  step: qualify
  reasons: [no decision]
`

// TestSweepFiresTimeBasedEvents: with no new input, a sweep at a later clock
// derives the stall the passing time implies, and only for open deals of
// the swept partition.
func TestSweepFiresTimeBasedEvents(t *testing.T) {
	ctx := context.Background()
	const partitions = 2
	e := newEnv(t, partitions)
	t0 := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	mk := func(id string, at time.Time, p event.Payload, typ event.Type) event.Event {
		return event.Event{ID: id, Tenant: "acme", Source: "crm", Type: typ, OccurredAt: at, ReceivedAt: at, OpportunityID: "o1", Payload: p}
	}
	evs := []event.Event{
		mk("e1", t0, &event.Opportunity{Amount: 1000, Stage: "Qualification"}, event.OpportunityCreated),
	}
	rows := make([]store.RawEvent, len(evs))
	for i, ev := range evs {
		b, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = store.RawEvent{Tenant: "acme", OpportunityID: "o1", Source: ev.Source, EventID: ev.ID, Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.OccurredAt, StreamSeq: uint64(i + 1), Payload: b}
	}
	if err := e.st.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	l := ladder.Default()
	if _, err := Replay(ctx, e.st, l, ReplayOptions{Now: t0.Add(24 * time.Hour)}, quiet); err != nil {
		t.Fatal(err)
	}
	stalled := func() int {
		cur, err := e.st.CurrentDerived(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, d := range cur {
			if d.Type == derive.DealStalled {
				n++
			}
		}
		return n
	}
	if n := stalled(); n != 0 {
		t.Fatalf("%d stalls a day after creation", n)
	}
	_, js := bustest.Connect(t, e.url)
	later := t0.AddDate(0, 2, 0)
	d, err := NewDeriver(ctx, js, e.st, l, Config{Now: func() time.Time { return later }, Sweep: -1}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	other := 1 - bus.Partition("acme", "o1", partitions)
	if err := d.sweep(ctx, other, newCache(&cacheBudget{limit: 1 << 20})); err != nil {
		t.Fatal(err)
	}
	if n := stalled(); n != 0 {
		t.Fatalf("sweeping another partition derived %d stalls", n)
	}
	if err := d.sweep(ctx, bus.Partition("acme", "o1", partitions), newCache(&cacheBudget{limit: 1 << 20})); err != nil {
		t.Fatal(err)
	}
	if n := stalled(); n != 1 {
		t.Fatalf("after the sweep: %d stalls, want 1", n)
	}
}
