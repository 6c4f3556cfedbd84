package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/ladder"
)

// TestAckWithoutReply: nats-server does not answer an acknowledgement of
// a sequence its consumer has not delivered yet, as after a restart that
// lost the consumer's latest state. Here the derive consumer is made anew
// while a batch it delivered waits for ingest; the batch's
// acknowledgements then go unanswered, and the partition must go on
// (deriving the redelivered messages again) instead of waiting for the
// replies for ever.
func TestAckWithoutReply(t *testing.T) {
	const partitions = 1
	e := newEnv(t, partitions)
	ctx := t.Context()
	_, js := bustest.Connect(t, e.url)
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	now := end.Add(24 * time.Hour)
	l := ladder.Default()
	d, err := NewDeriver(ctx, js, e.st, l, Config{BatchSize: 100, MaxWait: 100 * time.Millisecond, LeaseTTL: 2 * time.Second, Sweep: -1,
		Now: func() time.Time { return now }}, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); d.Run(dctx) }()
	defer func() { stop(); <-done }()

	evs := generate(t, 5, 3, end)
	if err := bus.NewPublisher(js, partitions).PublishBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// No ingest worker yet: the partition fetches a batch and waits for
	// ingest to store it.
	cons, err := js.Consumer(ctx, bus.EventsStream, bus.DeriveConsumer(0))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the derive consumer delivered nothing within 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cfg := cons.CachedInfo().Config
	if err := js.DeleteConsumer(ctx, bus.EventsStream, cfg.Durable); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, bus.EventsStream, cfg); err != nil {
		t.Fatal(err)
	}
	e.ingest(t)
	bustest.WaitDrained(t, js, partitions, 30*time.Second)
	e.checkDerived(t, evs, l, now)
}
