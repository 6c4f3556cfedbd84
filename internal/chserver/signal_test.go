package chserver_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
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
	// The signal is delivered asynchronously: a thread already running
	// may still answer until every thread has stopped.
	waitState(t, pid, 'T')
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

// waitState waits up to 5s for process pid to be in state (the third
// field of /proc/pid/stat: 'T' once stopped by a signal).
func waitState(t *testing.T, pid int, state byte) {
	t.Helper()
	path := fmt.Sprintf("/proc/%d/stat", pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The command name, field 2, is in parentheses and may hold spaces.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d not in state %c after 5s: %s", pid, state, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
