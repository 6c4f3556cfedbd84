package bustest

import (
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
)

// TestStartAckDrain: on a started server two published events are pending
// on the ingest consumer until AckIngest acknowledges the second, after
// which WaitDrained finds the ingest consumer drained.
func TestStartAckDrain(t *testing.T) {
	_, js := Start(t, bus.Options{Partitions: 1})
	pub := bus.NewPublisher(js, 1)
	for i := range 2 {
		at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		ev := event.Event{V: 1, ID: "ev-" + string(rune('a'+i)), Tenant: "acme", Source: "crm", Type: event.StageChanged,
			OccurredAt: at, ReceivedAt: at, OpportunityID: "o1", Payload: &event.StageChange{To: "Proposal"}}
		if err := pub.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	c, err := bus.CurrentIngest(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Info(t.Context()); err != nil || info.NumPending != 2 {
		t.Fatalf("before AckIngest: %+v, %v; want 2 pending", info, err)
	}
	AckIngest(t, js, 2)
	WaitDrained(t, js, 0, 10*time.Second)
}
