package chserver_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chserver"
)

// TestSignalFreezeKillRestart freezes the server with SIGSTOP (it stops
// answering), thaws it with SIGCONT, kills it with SIGKILL and restarts it
// on the same port: what the fault suite does to ClickHouse.
func TestSignalFreezeKillRestart(t *testing.T) {
	requireInstalled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := chserver.Start(ctx, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	pid := s.PID()
	if pid == 0 {
		t.Fatal("PID of a running server: 0")
	}

	if err := s.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	err = ping(pctx, s.DSN())
	pcancel()
	if err == nil {
		t.Error("ping answered while the server was stopped")
	}
	if err := s.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := ping(ctx, s.DSN()); err != nil {
		t.Fatalf("ping after SIGCONT: %v", err)
	}

	if err := s.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("Restart after SIGKILL: %v", err)
	}
	if s.PID() == 0 || s.PID() == pid {
		t.Errorf("PID after restart = %d, before %d", s.PID(), pid)
	}
	if err := ping(ctx, s.DSN()); err != nil {
		t.Fatalf("ping after restart: %v", err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if s.PID() != 0 {
		t.Errorf("PID after Stop = %d", s.PID())
	}
	if err := s.Signal(syscall.SIGCONT); err == nil {
		t.Error("Signal to a stopped server: no error")
	}
}
