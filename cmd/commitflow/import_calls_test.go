package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/bus"
)

// TestImportCalls imports generic call records twice (stored once); a
// record refused is reported on its line naming the field, and without
// --seller-domains a participant without a side refuses its record.
func TestImportCalls(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 4)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	file := "../../internal/webhook/testdata/calls_records.json"
	msgs := func() uint64 {
		s, err := js.Stream(ctx, bus.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().State.Msgs
	}
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		args := []string{"--nats", url, "--data", data, "--tenant", "acme", "--format", "calls-json", "--seller-domains", "acme.example", file}
		if err := runImport(ctx, args, &stdout, &stderr); err != nil {
			t.Fatalf("import %d: %v\n%s", i+1, err, stderr.String())
		}
		if want := file + ": 3 rows read, 3 events published, 0 rows refused\n"; stdout.String() != want {
			t.Errorf("import %d: summary %q, want %q", i+1, stdout.String(), want)
		}
		if n := msgs(); n != 3 {
			t.Errorf("after import %d: %d messages in %s, want 3", i+1, n, bus.EventsStream)
		}
	}

	ndjson := filepath.Join(dir, "calls.ndjson")
	content := `{"id":"n1","started_at":"2024-06-01T10:00:00Z","participants":[{"email":"a@acme.example"}]}` + "\n" +
		`{"id":"n2","started_at":"2024-06-01T10:00:00Z","duration_s":60,"participants":[{"name":"A","side":"seller"}]}` + "\n" +
		`{"id":"n3","started_at":"2024-06-01T10:00:00Z","participants":[{"name":"A","side":"seller"}],"duration":60}` + "\n"
	if err := os.WriteFile(ndjson, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := runImport(ctx, []string{"--nats", url, "--data", data, "--tenant", "acme", "--format", "calls-json", ndjson}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	want := ": 3 rows read, 1 events published, 2 rows refused\n" +
		"  line 1: call n1 participants[0].side: missing, and no seller domains are configured to decide it by e-mail domain (--seller-domains, or seller_domains= on the webhook URL)\n" +
		"  line 3: call record: unknown field \"duration\" (see schemas/calls/call_record.schema.json)\n"
	if got := strings.TrimPrefix(stdout.String(), ndjson); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
	if n := msgs(); n != 4 {
		t.Errorf("%d messages in %s, want 4", n, bus.EventsStream)
	}
	if err := runImport(ctx, []string{"--nats", url, "--data", data, "--format", "calls-json", "--seller-domains", "acme", file}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "--seller-domains") {
		t.Errorf("a bad --seller-domains: %v", err)
	}
}
