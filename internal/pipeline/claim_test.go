package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ladder"
)

// TestClaimRedeliversAtOnce: messages a process fetched and never
// acknowledged (it died, or was stopped with its batch in flight, and an
// embedded NATS server forgot its negative acknowledgements when it
// stopped with it) are derived as soon as a process claims the partition,
// not once the consumer's AckWait (60 s by default) has run out.
func TestClaimRedeliversAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t, 1)
	_, js := bustest.Connect(t, e.url)
	if err := bus.Declare(ctx, js, bus.Options{Partitions: 1, AckWait: time.Minute}); err != nil {
		t.Fatal(err)
	}
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	now := end.Add(24 * time.Hour)
	l := ladder.Default()
	evs := generate(t, 11, 20, end)
	iw, err := ingest.New(js, e.st, ingest.Config{BatchSize: 500, MaxWait: 100 * time.Millisecond}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	go iw.Run(ctx)
	if err := bus.NewPublisher(js, 1).PublishBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}

	// A process that fetched a batch and died.
	cons, err := js.Consumer(ctx, bus.EventsStream, bus.DeriveConsumer(0))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(len(evs), jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if n == 0 {
		t.Fatal("fetched nothing")
	}

	d, err := NewDeriver(ctx, js, e.st, l, Config{BatchSize: 200, MaxWait: 100 * time.Millisecond, LeaseTTL: 2 * time.Second, Sweep: -1, Now: func() time.Time { return now }, Member: "b"}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	go d.Run(ctx)
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d fetched messages still unacknowledged 20 s after the partition was claimed (%d pending)", info.NumAckPending, n, info.NumPending)
		}
		time.Sleep(100 * time.Millisecond)
	}
	live, err := e.st.CurrentDerived(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	diffSets(t, "live", live, expected(evs, l, now))
}
