package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
)

// TestIngestFloorFollowsNewerGeneration: derive waits for the ingest
// consumer's acknowledgement floor. When the generation it follows lingers
// after a newer one took over, its floor frozen (its deletion lost, say,
// to a server killed right after), wait moves to the newer generation
// instead of waiting for ever.
func TestIngestFloorFollowsNewerGeneration(t *testing.T) {
	_, js := bustest.Start(t, bus.Options{Partitions: 1})
	ctx := t.Context()
	const n = 3
	for i := range n {
		if _, err := js.Publish(ctx, "cf.events.acme.0", []byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	old, err := bus.RotateIngest(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	f := &ingestFloor{js: js}
	if err := f.wait(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if f.cons == nil || f.cons.CachedInfo().Name != old.CachedInfo().Name {
		t.Fatalf("wait follows %v, want %s", f.cons, old.CachedInfo().Name)
	}
	// The next generation stores and acknowledges everything; the old one
	// stays, its floor at 0.
	cfg := old.CachedInfo().Config
	cfg.Name, cfg.Durable = bus.IngestConsumerName(99), bus.IngestConsumerName(99)
	newer, err := js.CreateConsumer(ctx, bus.EventsStream, cfg)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := newer.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var last jetstream.Msg
	for m := range batch.Messages() {
		last = m
	}
	if last == nil {
		t.Fatalf("nothing delivered: %v", batch.Error())
	}
	if err := last.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*floorRecheck)
	defer cancel()
	if err := f.wait(wctx, n); err != nil {
		t.Fatalf("wait for sequence %d: %v (following %s)", n, err, f.cons.CachedInfo().Name)
	}
}
