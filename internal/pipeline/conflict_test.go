package pipeline

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/dlq"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

// TestConflictingDuplicates publishes an event and then, without a message
// id (so both reach the stream), the same id with other content, and checks
// that the store's FINAL row, the derived events and the opportunity state
// all follow the copy with the higher stream sequence, that the conflict is
// counted once, and that CF_DLQ holds the losing copy with the reason,
// however derivation meets the two copies: the first in its cache, the
// first only in ClickHouse (a restarted deriver), or both in one batch. An
// identical duplicate changes nothing and is not counted.
func TestConflictingDuplicates(t *testing.T) {
	const partitions = 2
	at := time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)
	now := at.AddDate(0, 3, 0)
	created := func(at time.Time, amount float64) event.Event {
		return event.Event{V: 1, ID: "e1", Tenant: "acme", Source: "crm", Type: event.OpportunityCreated,
			OccurredAt: at, ReceivedAt: at, OpportunityID: "o1",
			Payload: &event.Opportunity{Amount: amount, Stage: "Qualification", OwnerID: "rep-1", CloseDate: "2026-06-30"}}
	}
	staged := event.Event{V: 1, ID: "e2", Tenant: "acme", Source: "crm", Type: event.StageChanged,
		OccurredAt: at.Add(time.Hour), ReceivedAt: at.Add(time.Hour), OpportunityID: "o1",
		Payload: &event.StageChange{To: "Proposal/Price Quote"}}
	first := created(at, 1000)
	resent := first
	resent.ReceivedAt = at.Add(48 * time.Hour) // not content

	for _, tc := range []struct {
		name          string
		second        event.Event
		restart       bool // a new deriver, with an empty cache, derives the second copy
		oneBatch      bool // both copies are published before derivation starts
		conflict      bool
		differs       string
		wantConflicts float64
	}{
		{name: "cached", second: created(at, 999999), conflict: true, differs: "amount"},
		// The copies differ in occurred_at's month, so they sit in
		// different partitions of the events table and are never merged:
		// the restarted deriver sees both in ClickHouse.
		{name: "stored", second: created(at.AddDate(0, 1, 0), 999999), restart: true, conflict: true, differs: "amount, occurred_at"},
		{name: "one batch", second: created(at, 999999), oneBatch: true, conflict: true, differs: "amount"},
		{name: "identical", second: resent},
		{name: "identical stored", second: resent, restart: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			e := newEnv(t, partitions)
			l := ladder.Default()
			js := e.ingest(t)

			publish := func(ev event.Event) uint64 {
				t.Helper()
				b, err := event.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				ack, err := js.Publish(ctx, bus.Subject(ev, partitions), b) // no message id
				if err != nil {
					t.Fatal(err)
				}
				return ack.Sequence
			}
			var derivers []*Deriver
			startDeriver := func() (stop func()) {
				d, err := NewDeriver(ctx, js, e.st, l, Config{BatchSize: 200, MaxWait: 100 * time.Millisecond, LeaseTTL: 2 * time.Second, Sweep: -1,
					Now: func() time.Time { return now }, Member: fmt.Sprint("d", len(derivers))}, prometheus.NewRegistry(), quiet)
				if err != nil {
					t.Fatal(err)
				}
				derivers = append(derivers, d)
				dctx, dcancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { defer close(done); d.Run(dctx) }()
				return func() { dcancel(); <-done }
			}

			var firstSeq, secondSeq uint64
			if tc.oneBatch {
				firstSeq, secondSeq = publish(first), publish(tc.second)
				publish(staged)
				stop := startDeriver()
				defer stop()
			} else {
				stop := startDeriver()
				firstSeq = publish(first)
				publish(staged)
				waitDrained(t, js, partitions)
				if tc.restart {
					stop()
					stop = startDeriver()
				}
				defer stop()
				secondSeq = publish(tc.second)
			}
			waitDrained(t, js, partitions)

			// The store: FINAL keeps the second copy (the higher sequence).
			var seq uint64
			var payload string
			if err := e.st.Conn().QueryRow(ctx, `SELECT stream_seq, payload FROM events FINAL WHERE tenant = 'acme' AND event_id = 'e1'`).Scan(&seq, &payload); err != nil {
				t.Fatal(err)
			}
			if seq != secondSeq {
				t.Errorf("events FINAL holds stream seq %d (%s), want %d", seq, payload, secondSeq)
			}

			// Derivation follows the same copy.
			e.checkDerived(t, []event.Event{tc.second, staged}, l, now)

			var conflicts float64
			for _, d := range derivers {
				conflicts += testutil.ToFloat64(d.m.conflicts)
			}
			var letters []dlq.Letter
			if err := dlq.Scan(ctx, js, dlq.Filter{}, 0, func(l dlq.Letter) error {
				letters = append(letters, l)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if !tc.conflict {
				if conflicts != 0 || len(letters) != 0 {
					t.Fatalf("identical duplicate: %v conflicts counted, %d dead letters", conflicts, len(letters))
				}
				return
			}
			if conflicts != 1 {
				t.Errorf("%v conflicts counted, want 1", conflicts)
			}
			wantReason := fmt.Sprintf("conflicting duplicate of acme:crm:e1: superseded by stream seq %d (differs in: %s)", secondSeq, tc.differs)
			if len(letters) != 1 {
				t.Fatalf("%d dead letters, want 1: %+v", len(letters), letters)
			}
			l0 := letters[0]
			if l0.Reason != wantReason || l0.EventsSeq != firstSeq || l0.Subject != bus.Subject(first, partitions) {
				t.Errorf("dead letter: reason %q, seq %d, subject %s; want %q, %d, %s",
					l0.Reason, l0.EventsSeq, l0.Subject, wantReason, firstSeq, bus.Subject(first, partitions))
			}
			if ev, err := event.Parse(l0.Data); err != nil || len(derive.Differences(ev, first)) > 0 {
				t.Errorf("dead letter body %s (%v) is not the first copy", l0.Data, err)
			}
			if !strings.Contains(l0.Reason, "conflicting duplicate") {
				t.Errorf("reason %q", l0.Reason)
			}
		})
	}
}
