package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/bus"
)

// TestImportGong imports a saved Gong /v2/calls/extensive response twice
// (stored once), and a file with a call refused on its line.
func TestImportGong(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 4)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	file := "../../internal/webhook/testdata/gong_calls_extensive.json"
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		if err := runImport(ctx, []string{"--nats", url, "--data", data, "--tenant", "acme", "--format", "gong-json", file}, &stdout, &stderr); err != nil {
			t.Fatalf("import %d: %v\n%s", i+1, err, stderr.String())
		}
		if want := file + ": 2 rows read, 2 events published, 0 rows refused\n"; stdout.String() != want {
			t.Errorf("import %d: summary %q, want %q", i+1, stdout.String(), want)
		}
		s, err := js.Stream(ctx, bus.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.CachedInfo().State.Msgs; n != 2 {
			t.Errorf("after import %d: %d messages in %s, want 2", i+1, n, bus.EventsStream)
		}
	}

	bad := filepath.Join(dir, "calls.json")
	content := "{\"calls\": [\n" +
		`{"metaData":{"id":"1","started":"2024-06-01T10:00:00Z","duration":60},"parties":[{"name":"A","affiliation":"Internal"}]},` + "\n" +
		`{"metaData":{"id":"2","started":"2024-06-01T10:00:00Z"},"parties":[]}` + "\n]}"
	if err := os.WriteFile(bad, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := runImport(ctx, []string{"--nats", url, "--data", data, "--format", "gong-json", bad}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	want := ": 2 rows read, 1 events published, 1 rows refused\n  line 3: call-2: payload.participants: a call needs at least one participant\n"
	if got := strings.TrimPrefix(stdout.String(), bad); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if err := runImport(ctx, []string{"--nats", url, "--data", data, "--format", "gong-json", filepath.Join(dir, "none.json")}, &stdout, &stderr); err == nil {
		t.Error("a missing file: no error")
	}
}
