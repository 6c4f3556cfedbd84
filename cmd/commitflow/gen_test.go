package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/event"
)

func TestGenWritesFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "demo.ndjson")
	var stdout, stderr bytes.Buffer
	args := []string{"--seed", "3", "--opportunities", "40", "--tenant", "acme", "--end", "2026-06-01", "--duplicates", "0.05", "--late", "0.05", "--out", out}
	if err := runGen(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if stdout.Len() != 0 {
		t.Errorf("wrote to stdout with --out: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "gen: wrote ") {
		t.Errorf("no summary on stderr: %q", stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(lines) < 40 {
		t.Fatalf("only %d events", len(lines))
	}
	for i, l := range lines {
		ev, err := event.Parse(l)
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if ev.Tenant != "acme" {
			t.Fatalf("line %d: tenant %q", i+1, ev.Tenant)
		}
	}

	// The same flags to stdout give the same bytes.
	stdout.Reset()
	args[len(args)-1] = "-"
	if err := runGen(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stdout.Bytes(), data) {
		t.Fatal("stdout output differs from the file written with the same flags")
	}
}

func TestGenFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--publish", "--nats", "nats://127.0.0.1:1"}, "connect"},
		{[]string{"--end", "01/06/2026"}, "--end"},
		{[]string{"--opportunities", "-3"}, "opportunities"},
		{[]string{"--tenant", "Acme Corp"}, "tenant"},
		{[]string{"--late", "2"}, "late"},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--out", filepath.Join(t.TempDir(), "missing", "x.ndjson")}, "no such file"},
	} {
		var stdout, stderr bytes.Buffer
		err := runGen(context.Background(), tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}

// TestGenPublish publishes a small generated book to an embedded JetStream
// and finds every event in the stream, once.
func TestGenPublish(t *testing.T) {
	ctx := context.Background()
	emb := bustest.Server(t) // not Start: gen --publish declares the streams itself
	args := []string{"--publish", "--nats", emb.ClientURL(), "--opportunities", "20", "--end", "2026-06-01", "--tenant", "acme"}
	var stdout, stderr bytes.Buffer
	if err := runGen(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("gen --publish: %v (%s)", err, stderr.String())
	}
	// The same flags written to a file give the number of events.
	var file bytes.Buffer
	if err := runGen(ctx, []string{"--opportunities", "20", "--end", "2026-06-01", "--tenant", "acme"}, &file, &stderr); err != nil {
		t.Fatal(err)
	}
	want := uint64(bytes.Count(file.Bytes(), []byte("\n")))
	// Publishing twice is harmless: the message ids de-duplicate.
	if err := runGen(ctx, args, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	_, js := bustest.Connect(t, emb.ClientURL())
	st, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != want || want == 0 {
		t.Fatalf("stream holds %d messages, want %d", info.State.Msgs, want)
	}
}
