// Package verifytest publishes the event stream that the tests of
// internal/verify and of the verify command check. Only tests import it.
package verifytest

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/store"
)

// BadSeq is the stream sequence of the malformed message Publish sends.
const BadSeq = 21

// Publish publishes to js (its streams declared with the given number of
// partitions) 20 generated events, a malformed message (stream sequence
// BadSeq) dead-lettered as the ingest worker does, and 10 more events. It
// returns the rows the ingest worker would store for the 30 events, by
// stream sequence.
func Publish(t testing.TB, js jetstream.JetStream, partitions int) map[uint64]store.RawEvent {
	t.Helper()
	ctx := t.Context()
	var evs []event.Event
	err := gen.Generate(ctx, gen.Config{Seed: 3, Opportunities: 6, End: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}, func(ev event.Event) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil || len(evs) < 30 {
		t.Fatalf("generated %d events, want at least 30: %v", len(evs), err)
	}
	pub := bus.NewPublisher(js, partitions)
	if err := pub.PublishBatch(ctx, evs[:20]); err != nil {
		t.Fatal(err)
	}
	const badSubject = "cf.events.acme.crm.opportunity_created.0"
	bad := []byte(`{"id":`)
	if err := pub.PublishRaw(ctx, badSubject, "", bad); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishBatch(ctx, evs[20:30]); err != nil {
		t.Fatal(err)
	}
	if _, err := js.PublishMsg(ctx, bus.DeadLetter(badSubject, BadSeq, bad, "body: unexpected end of JSON input")); err != nil {
		t.Fatal(err)
	}

	stream, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[uint64]store.RawEvent{}
	for seq := uint64(1); seq <= 31; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.Parse(m.Data)
		if seq == BadSeq {
			continue
		}
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		rows[seq] = store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source,
			EventID: ev.ID, Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: seq, Payload: m.Data}
	}
	return rows
}
