package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
)

// TestGenPublishNATSLost: when the NATS server dies under gen --publish and
// stays down, gen fails once --publish-retry has passed without an
// acknowledgement (plus the attempt under way), instead of waiting forever.
func TestGenPublishNATSLost(t *testing.T) {
	ctx := t.Context()
	emb := bustest.Server(t) // stopped below; stopping it again at the end is harmless
	_, js := bustest.Connect(t, emb.ClientURL())

	const retry = 2 * time.Second
	args := []string{"--publish", "--nats", emb.ClientURL(), "--publish-retry", retry.String(),
		"--opportunities", "3000", "--end", "2026-06-01", "--tenant", "acme"}
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- runGen(ctx, args, &stdout, &stderr) }()

	// Stop the server once gen has published something.
	for {
		if s, err := js.Stream(ctx, bus.EventsStream); err == nil && s.CachedInfo().State.Msgs > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("gen ended before the server stopped: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	emb.Shutdown()
	stoppedAt := time.Now()

	bound := retry + 2*bus.DefaultAckTimeout + 5*time.Second
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("gen --publish succeeded with the server down")
		}
		if !strings.Contains(err.Error(), "unacknowledged") {
			t.Errorf("gen error = %v, want it to count the unacknowledged events", err)
		}
		t.Logf("gen failed %s after the server stopped: %v", time.Since(stoppedAt).Round(time.Millisecond), err)
	case <-time.After(bound):
		t.Fatalf("gen --publish still running %s after the server stopped", bound)
	}
}
