package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/importer"
)

// TestImportKill9 kills a `commitflow import` process (this test binary as
// the command) with SIGKILL once it has checkpointed a quarter of the
// file, and runs
// the same command again: it resumes from the checkpoint, and the stream
// then holds every event the export's rows make (parsed in memory here),
// each once.
func TestImportKill9(t *testing.T) {
	ctx := t.Context()
	srv, js := bustest.Start(t, bus.Options{Partitions: 4, DuplicateWindow: 10 * time.Minute})
	dir := t.TempDir()
	data := gen.SalesforceHistory(40_000)
	file := filepath.Join(dir, "OpportunityHistory.csv")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := importer.SalesforceHistory("acme", "USD").Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, r := range rows {
		for _, ev := range r.Events {
			want[bus.MsgID(ev)] = true
		}
	}
	state := filepath.Join(dir, "data")
	args := []string{"import", "--nats", srv.ClientURL(), "--data", state, "--tenant", "acme", "--currency", "USD", "--batch", "200", file}

	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "COMMITFLOW_TEST_AS_CLI=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for done := false; !done; {
		// Past a quarter of the file, with batches after it in flight.
		cps, _ := filepath.Glob(filepath.Join(state, "import", "*.json"))
		for _, cp := range cps {
			var c struct{ Rows int }
			if b, err := os.ReadFile(cp); err == nil && json.Unmarshal(b, &c) == nil && c.Rows >= len(rows)/4 {
				done = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint past a quarter of the file after a minute:\n%s", out.String())
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the import finished before it was killed:\n%s", out.String())
	}

	var stdout, stderr bytes.Buffer
	if err := runImport(ctx, args[1:], &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "(resumed after ") {
		t.Errorf("the second import did not resume: %s", stdout.String())
	}

	// Every message of the stream, by its Nats-Msg-Id.
	c, err := js.OrderedConsumer(ctx, bus.EventsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	n := s.CachedInfo().State.Msgs
	got := map[string]int{}
	for read := uint64(0); read < n; {
		batch, err := c.Fetch(int(min(5000, n-read)), jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			got[m.Headers().Get(jetstream.MsgIDHeader)]++
			read++
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
	}
	if n != uint64(len(want)) || len(got) != len(want) {
		t.Errorf("%d messages of %d ids in %s, want %d, each once", n, len(got), bus.EventsStream, len(want))
	}
	for id := range want {
		if got[id] != 1 {
			t.Fatalf("event %s stored %d times", id, got[id])
		}
	}
	t.Logf("%d events; %s", len(want), strings.TrimSpace(stdout.String()))
}
