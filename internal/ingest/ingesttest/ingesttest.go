// Package ingesttest runs ingest workers for tests that need events moved
// from NATS JetStream into ClickHouse. Only tests import it.
package ingesttest

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/store"
)

// Run starts an ingest worker with cfg (no metrics, no logs) moving the
// events of js into st. It runs until t ends, when it is stopped and
// waited for.
func Run(t testing.TB, js jetstream.JetStream, st *store.Store, cfg ingest.Config) {
	t.Helper()
	w, err := ingest.New(js, st, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
}
