package importer

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/gen"
)

// sameAsParseNDJSON checks that an NDJSONFile of data imports what
// ParseNDJSON makes of it: the same rows, refusals and events.
func sameAsParseNDJSON(t *testing.T, data []byte, tenant string) {
	t.Helper()
	want := ParseNDJSON(data, tenant)
	nf, err := readNDJSON(source{f: bytes.NewReader(data), size: int64(len(data))}, tenant)
	if err != nil {
		t.Fatal(err)
	}
	if nf.Len() != len(want) {
		t.Fatalf("%d rows, ParseNDJSON has %d", nf.Len(), len(want))
	}
	got, gotRefused := publishedByDeal(t, nf)
	wantDeals, wantRefused := publishedByDeal(t, want)
	if strings.Join(gotRefused, "\n") != strings.Join(wantRefused, "\n") {
		t.Fatalf("refused:\n%v\nParseNDJSON refused:\n%v", gotRefused, wantRefused)
	}
	if len(got) != len(wantDeals) {
		t.Fatalf("%d deals with events, ParseNDJSON's %d", len(got), len(wantDeals))
	}
	for d, rows := range wantDeals {
		if describe(t, got[d]) != describe(t, rows) {
			t.Fatalf("deal %s:\n%s\nParseNDJSON's:\n%s", d, describe(t, got[d]), describe(t, rows))
		}
	}
}

// TestNDJSONFile checks NDJSONFile against ParseNDJSON on what a reader
// of lines by offsets could get wrong: a byte-order mark, CRLF, blank
// lines, no last line end, a line longer than the read buffer, another
// tenant's events, events of no deal, and a generated book of business
// (several tenants, duplicated and late events).
func TestNDJSONFile(t *testing.T) {
	const good = `{"v":1,"id":"e1","tenant":"acme","source":"salesforce","type":"opportunity.stage_changed","occurred_at":"2024-01-10T09:00:00Z","opportunity_id":"006A","payload":{"from":"Prospecting","to":"Qualification"}}`
	const other = `{"v":1,"id":"e2","tenant":"globex","source":"salesforce","type":"opportunity.stage_changed","occurred_at":"2024-01-10T09:00:00Z","opportunity_id":"006A","payload":{"to":"Qualification"}}`
	var book bytes.Buffer
	if _, err := gen.GenerateToWriter(t.Context(), gen.Config{Seed: 3, Opportunities: 300, Tenants: 2, End: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC), DuplicateRate: 0.05, LateRate: 0.05}, &book); err != nil {
		t.Fatal(err)
	}
	long := `{"v":1,"id":"` + strings.Repeat("x", 3<<20) + `"}`
	tests := []struct {
		name, data, tenant string
	}{
		{"BOM, CRLF", "\xef\xbb\xbf" + good + "\r\n", "acme"},
		{"blank and bad lines", "\n" + good + "\n\n{\"id\":\n" + strings.Replace(good, `"to":"Qualification"`, `"too":"x"`, 1) + "\n  \n", "acme"},
		{"another tenant, no last line end", good + "\n" + other, "acme"},
		{"a line of 3 MiB", good + "\n" + long + "\n" + strings.Replace(good, `"e1"`, `"e3"`, 1), ""},
		{"empty", "", ""},
		{"book", book.String(), ""},
		{"book, one tenant", book.String(), "demo-1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { sameAsParseNDJSON(t, []byte(tc.data), tc.tenant) })
	}
}

func FuzzNDJSONFile(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"e1","tenant":"acme","source":"salesforce","type":"opportunity.stage_changed","occurred_at":"2024-01-10T09:00:00Z","opportunity_id":"006A","payload":{"to":"Q"}}` + "\n\n{\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsParseNDJSON(t, data, "acme")
	})
}

// TestNDJSONFileOpen imports a file through OpenNDJSON and Run: every
// event ParseNDJSON makes of it is published, and the digest is the
// content's.
func TestNDJSONFileOpen(t *testing.T) {
	var book bytes.Buffer
	if _, err := gen.GenerateToWriter(t.Context(), gen.Config{Seed: 5, Opportunities: 200, End: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}, &book); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(path, book.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	nf, err := OpenNDJSON(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	if DigestKey(nf.Digest(), "k") != Key(book.Bytes(), "k") {
		t.Error("the key is not that of the content")
	}
	pub := &failAfter{}
	if _, err := Run(t.Context(), nf, "k", pub, Options{BatchSize: 100}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range ParseNDJSON(book.Bytes(), "") {
		for _, ev := range r.Events {
			n++
			if _, ok := pub.acked.Load(ev.ID); !ok {
				t.Fatalf("line %d: %s not published", r.Line, ev.ID)
			}
		}
	}
	if n == 0 {
		t.Fatal("no events")
	}
}
