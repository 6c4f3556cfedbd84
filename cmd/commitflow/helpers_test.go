package main

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
)

// embeddedBus starts an embedded NATS server with commitflow's streams
// declared (the given partitions) and returns its URL and a JetStream
// client; both stop with the test.
func embeddedBus(t *testing.T, partitions int) (string, jetstream.JetStream) {
	t.Helper()
	srv, js := bustest.Start(t, bus.Options{Partitions: partitions})
	return srv.ClientURL(), js
}
