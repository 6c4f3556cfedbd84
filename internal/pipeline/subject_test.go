package pipeline

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

// TestSubjectMismatchNotDerived publishes, on one of globex's subjects, an
// event whose body says it is acme's, on the partition of acme's deal, after
// that deal was derived (so the deriver has it in its cache). Ingest
// dead-letters it; derivation must not fold it into acme's deal either.
func TestSubjectMismatchNotDerived(t *testing.T) {
	const partitions = 2
	at := time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)
	now := at.AddDate(0, 3, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t, partitions)
	l := ladder.Default()
	js := e.ingest(t)
	d, err := NewDeriver(ctx, js, e.st, l, Config{BatchSize: 200, MaxWait: 100 * time.Millisecond, LeaseTTL: 2 * time.Second, Sweep: -1,
		Now: func() time.Time { return now }}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	go d.Run(ctx)

	created := event.Event{V: 1, ID: "a1", Tenant: "acme", Source: "crm", Type: event.OpportunityCreated,
		OccurredAt: at, ReceivedAt: at, OpportunityID: "o1",
		Payload: &event.Opportunity{Amount: 1000, Stage: "Qualification", OwnerID: "rep-1", CloseDate: "2026-06-30"}}
	won := event.Event{V: 1, ID: "a2", Tenant: "acme", Source: "crm", Type: event.ClosedWon,
		OccurredAt: at.Add(time.Hour), ReceivedAt: at.Add(time.Hour), OpportunityID: "o1",
		Payload: &event.Won{Amount: 1000}}
	publish := func(subject string, ev event.Event) {
		t.Helper()
		b, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, subject, b); err != nil {
			t.Fatal(err)
		}
	}
	publish(bus.Subject(created, partitions), created)
	waitDrained(t, js, partitions)
	// globex's subject, the partition of acme's deal: the same derive
	// consumer.
	wrong := strings.Replace(bus.Subject(won, partitions), ".acme.", ".globex.", 1)
	publish(wrong, won)
	waitDrained(t, js, partitions)

	e.checkDerived(t, []event.Event{created}, l, now)
}
