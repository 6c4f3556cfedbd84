package chserver_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/chserver"
)

func ping(ctx context.Context, dsn string) error {
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return err
	}
	opt.DialTimeout = time.Second
	conn, err := clickhouse.Open(opt)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Ping(ctx)
}

// requireInstalled skips t when clickhouse-server is missing, or fails it
// under CI=true, where every test must run.
func requireInstalled(t *testing.T) {
	t.Helper()
	if !chserver.Installed() {
		if os.Getenv("CI") == "true" {
			t.Fatal(chserver.ErrNotInstalled)
		}
		t.Skip(chserver.ErrNotInstalled)
	}
}

func TestStartStopRestart(t *testing.T) {
	requireInstalled(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	s, err := chserver.Start(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	dsn := s.DSN()
	if !strings.HasPrefix(dsn, "clickhouse://127.0.0.1:") || s.HTTPPort() == 0 || s.TCPPort() == s.HTTPPort() {
		t.Fatalf("DSN %q, http port %d", dsn, s.HTTPPort())
	}
	if err := ping(ctx, dsn); err != nil {
		t.Fatalf("ping after Start: %v", err)
	}
	if got, ok := chserver.Running(dir); !ok || got != dsn {
		t.Errorf("Running while running = %q, %v; want %q", got, ok, dsn)
	}

	if err := s.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := ping(ctx, dsn); err == nil {
		t.Fatal("ping succeeded after Stop")
	}
	if got, ok := chserver.Running(dir); ok {
		t.Errorf("Running after Stop = %q, true", got)
	}
	if _, ok := chserver.Running(t.TempDir()); ok {
		t.Error("Running in an empty directory: true")
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	if err := s.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if s.DSN() != dsn {
		t.Fatalf("DSN changed across Restart: %q -> %q", dsn, s.DSN())
	}
	if err := ping(ctx, dsn); err != nil {
		t.Fatalf("ping after Restart: %v", err)
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatalf("Restart of a running server: %v", err)
	}
	if err := ping(ctx, dsn); err != nil {
		t.Fatalf("ping after second Restart: %v", err)
	}
}

func TestStartReportsServerLog(t *testing.T) {
	requireInstalled(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	s, err := chserver.Start(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	// A second server on the same data directory must fail, and say why.
	_, err = chserver.Start(ctx, dir, nil)
	if err == nil {
		t.Fatal("second server on the same directory started")
	}
	if !strings.Contains(err.Error(), "already running") {
		t.Fatalf("error does not say why: %v", err)
	}
	t.Logf("expected error: %v", err)
}

func TestEnsureKeepsGivenDSN(t *testing.T) {
	srv, dsn, stop, err := chserver.Ensure(context.Background(), "clickhouse://db:9000/x", t.TempDir(), nil)
	if err != nil || dsn != "clickhouse://db:9000/x" || srv != nil {
		t.Fatalf("Ensure = %q, %v", dsn, err)
	}
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestErrNotInstalledSaysHow(t *testing.T) {
	if !strings.Contains(chserver.ErrNotInstalled.Error(), "sudo apt-get install -y clickhouse-server") {
		t.Fatal(chserver.ErrNotInstalled)
	}
	if !errors.Is(chserver.ErrNotInstalled, chserver.ErrNotInstalled) {
		t.Fatal("not comparable")
	}
}

// TestHelperProcess is not a test: TestServerDiesWithParent runs the test
// binary with it to have a parent process it can kill.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv("CHSERVER_TEST_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := chserver.Start(context.Background(), dir, nil)
	if err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString(s.DSN() + "\n")
	select {}
}

func TestServerDiesWithParent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parent-death signal is Linux only")
	}
	requireInstalled(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "CHSERVER_TEST_HELPER_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	dsn := strings.TrimSpace(line)
	if !strings.HasPrefix(dsn, "clickhouse://") {
		t.Fatalf("helper said %q", dsn)
	}
	ctx := context.Background()
	if err := ping(ctx, dsn); err != nil {
		t.Fatalf("ping the helper's server: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	deadline := time.Now().Add(15 * time.Second)
	for ping(ctx, dsn) == nil {
		if time.Now().After(deadline) {
			t.Fatal("server still answers 15s after its parent was killed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
