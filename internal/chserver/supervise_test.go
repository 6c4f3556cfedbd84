package chserver_test

import (
	"context"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chserver"
	"github.com/commitflow/commitflow/internal/logtest"
)

// TestEnsureSupervises kills the managed server with SIGKILL, as the OOM
// killer or an operator would: Ensure's supervision logs the death at ERROR
// and restarts it on the same port, and counts the restart. A deliberate
// Restart is not counted, and the stop function ends the supervision
// without a restart.
func TestEnsureSupervises(t *testing.T) {
	requireInstalled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var logs logtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	s, dsn, stop, err := chserver.Ensure(ctx, "", t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop(context.Background()) })

	// A deliberate restart is no death.
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := s.Restarts(); n != 0 {
		t.Fatalf("%d restarts counted after a deliberate Restart, want 0", n)
	}

	pid := s.PID()
	if err := s.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for s.Restarts() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("not restarted within a minute of SIGKILL; log:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if p := s.PID(); p == 0 || p == pid {
		t.Fatalf("PID after the restart %d, before %d", p, pid)
	}
	if err := ping(ctx, dsn); err != nil {
		t.Fatalf("ping on the same DSN after the restart: %v", err)
	}
	if out := logs.String(); !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "clickhouse-server died") {
		t.Errorf("no ERROR line for the death; log:\n%s", out)
	}

	// Stop ends supervision: no restart after it.
	if err := stop(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if p, n := s.PID(), s.Restarts(); p != 0 || n != 1 {
		t.Fatalf("after stop: PID %d, %d restarts; want 0, 1", p, n)
	}
}
