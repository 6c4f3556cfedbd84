package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
)

// embeddedBus starts an embedded NATS server with commitflow's streams
// declared (the given partitions) and returns its URL and a JetStream
// client; both stop with the test.
func embeddedBus(t *testing.T, partitions int) (string, jetstream.JetStream) {
	t.Helper()
	ctx := t.Context()
	emb, err := bus.StartEmbedded(ctx, t.TempDir(), "127.0.0.1:-1", slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	nc, js, err := bus.Connect(ctx, emb.ClientURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := bus.Declare(ctx, js, bus.Options{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	return emb.ClientURL(), js
}
