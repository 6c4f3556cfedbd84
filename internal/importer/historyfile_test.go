package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
)

// published is what an import publishes of in: every row in publishing
// order but the valid rows that change nothing (which a HistoryFile
// places among their deal's rows and byDeal where they are), each with
// a copy of its events.
func published(t *testing.T, in Input) []Row {
	t.Helper()
	var out []Row
	n := 0
	err := in.Each(func(r Row) error {
		n++
		if r.Err == nil && len(r.Events) == 0 {
			return nil
		}
		r.Events = append([]event.Event(nil), r.Events...)
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != in.Len() {
		t.Fatalf("Each gave %d rows, Len says %d", n, in.Len())
	}
	return out
}

// sameAsParse checks that a HistoryFile of data imports what h.Parse
// makes of it: the same error for the file, or the same rows, refusals
// and events in the same order.
func sameAsParse(t *testing.T, h History, data []byte) {
	t.Helper()
	want, werr := h.Parse(data)
	hf, err := h.Read(bytes.NewReader(data), int64(len(data)))
	if werr != nil || err != nil {
		// csv's columns count bytes: of the file's here, of the decoded
		// text's in Parse.
		if !utf8.Valid(data) && werr != nil && err != nil {
			werr, err = errors.New(csvColumn.ReplaceAllString(werr.Error(), "column N")), errors.New(csvColumn.ReplaceAllString(err.Error(), "column N"))
		}
		if werr == nil || err == nil || werr.Error() != err.Error() {
			t.Fatalf("Open: %v; Parse: %v", err, werr)
		}
		return
	}
	defer hf.Close()
	if hf.Digest() != sha256.Sum256(data) {
		t.Error("digest is not the content's")
	}
	if hf.Len() != len(want) {
		t.Fatalf("%d rows, Parse has %d", hf.Len(), len(want))
	}
	if got, want := errorsOf(hf.Refused()), errorsOf(want.Refused()); !reflect.DeepEqual(got, want) {
		t.Fatalf("refused:\n%v\nParse refused:\n%v", got, want)
	}
	got, wantRows := published(t, hf), published(t, want)
	if len(got) != len(wantRows) {
		t.Fatalf("%d rows published, Parse's %d", len(got), len(wantRows))
	}
	for i := range got {
		g, w := got[i], wantRows[i]
		if g.Line != w.Line || errString(g.Err) != errString(w.Err) || !reflect.DeepEqual(g.Events, w.Events) {
			t.Fatalf("row %d published:\n%d %v %+v\nParse's:\n%d %v %+v", i, g.Line, g.Err, g.Events, w.Line, w.Err, w.Events)
		}
	}
}

var csvColumn = regexp.MustCompile(`column \d+`)

func errorsOf(rows []Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("line %d: %v", r.Line, r.Err))
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestHistoryFile checks HistoryFile against Parse on the exports of the
// fixtures and on what a file can hold that a reader of it by offsets
// could get wrong: a byte-order mark, Windows-1252 (with non-breaking
// spaces, which trim in the decoded text only), fields over several
// lines, blank lines, no last line end, ids repeated across deals, a CSV
// error.
func TestHistoryFile(t *testing.T) {
	sf := SalesforceHistory("acme", "USD")
	mapped, err := ParseMapping([]byte(genericMapping), "acme", "", "")
	if err != nil {
		t.Fatal(err)
	}
	mh := mapped.(History)
	hdr := "Id,OpportunityId,CreatedDate,StageName,Amount,CloseDate,Probability,ForecastCategory,IsDeleted\n"
	tricky := hdr +
		"r1,o1,2024-01-10,Prospecting,100,2024-06-30,10,Pipeline,false\n" +
		"\n" +
		"r2,o2,2024-01-11,\"Needs\nAnalysis\",200,2024-06-30,20,Pipeline,false\r\n" +
		"r3,o1,2024-01-12,Qualification,100,2024-06-30,10,Pipeline,false\n" +
		"r1,o2,2024-01-13,Qualification,250,2024-06-30,10,Pipeline,false\n" +
		"r4,o2,2024-01-13,Qualification,250,2024-06-30,10,Pipeline,false\n" +
		"r5,o1,\"2024-01-14,bad\"x,Qualification,1,2024-06-30,10,Pipeline,false\n" +
		"r6,o1,2024-01-09,Closed Won,100,2024-01-09,100,Closed,false"
	tests := []struct {
		name string
		h    History
		data []byte
	}{
		{"salesforce", sf, []byte(sfHistory)},
		{"refused rows", sf, []byte(sfHistoryBad)},
		{"utf-8", sf, []byte(sfHistoryEUR)},
		{"windows-1252", sf, to1252(t, sfHistoryEUR)},
		{"windows-1252 nbsp", sf, to1252(t, strings.ReplaceAll(sfHistoryEUR, `"Qualifizierung"`, "\"\u00a0Qualifizierung\u00a0\""))},
		{"byte-order mark", sf, append([]byte("\xef\xbb\xbf"), sfHistory...)},
		{"byte-order mark, windows-1252", sf, append([]byte("\xef\xbb\xbf"), to1252(t, sfHistoryEUR)...)},
		{"forced utf-8 of windows-1252", History{Tenant: "acme", Source: "salesforce", Columns: sf.Columns, Encoding: "utf-8"}, to1252(t, sfHistoryEUR)},
		{"tricky", sf, []byte(tricky)},
		{"mapped", mh, []byte(genericHistory)},
		{"non-ASCII delimiter, windows-1252", withComma(mh, '§'), to1252(t, strings.ReplaceAll(genericHistory, ";", "§")+"D-3§01/02/2024 10:00§Lead§5§EUR§zoë§\n")},
		{"header only", sf, []byte(hdr)},
		{"empty", sf, nil},
		{"no column", sf, []byte("Id,Foo\nx,y\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { sameAsParse(t, tc.h, tc.data) })
	}
}

func withComma(h History, c rune) History {
	h.Comma = c
	return h
}

// TestHistoryFileGenerated checks HistoryFile against Parse on a
// generated export with every row of a deal apart (in date order) and
// rows repeated.
func TestHistoryFileGenerated(t *testing.T) {
	data := gen.SalesforceHistory(5000)
	lines := strings.SplitAfter(string(data), "\n")
	data = append(data, lines[10]+lines[4000]+lines[1]...) // repeated ids
	sameAsParse(t, SalesforceHistory("acme", "USD"), data)
}

func FuzzHistoryFile(f *testing.F) {
	f.Add([]byte(sfHistory))
	f.Add([]byte(sfHistoryBad))
	f.Add([]byte(sfHistoryEUR + "\"x\",\"\xff\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsParse(t, SalesforceHistory("acme", "USD"), data)
	})
}

// TestHistoryFileMemory checks what a HistoryFile of a 100k-row export
// keeps in memory: a few tens of bytes a row, where the parsed rows take
// hundreds.
func TestHistoryFileMemory(t *testing.T) {
	const n = 100_000
	data := gen.SalesforceHistory(n)
	path := filepath.Join(t.TempDir(), "history.csv")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h := SalesforceHistory("acme", "USD")
	live := func() int64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return int64(m.HeapAlloc)
	}
	before := live()
	hf, err := h.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	kept := live() - before
	before = live()
	rows, err := h.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	parsed := live() - before
	t.Logf("%d rows: a HistoryFile keeps %d bytes a row, the parsed rows %d", n, kept/n, parsed/n)
	if kept > 40*n {
		t.Errorf("a HistoryFile keeps %d bytes a row, want at most 40", kept/n)
	}
	runtime.KeepAlive(rows)
}

// TestHistoryFileChanged changes the file between Open and Each: Each
// fails naming the row, rather than publishing other events.
func TestHistoryFileChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.csv")
	if err := os.WriteFile(path, []byte(sfHistory), 0o644); err != nil {
		t.Fatal(err)
	}
	hf, err := SalesforceHistory("acme", "USD").Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(sfHistory, "2024-", "1900-")), 0o644); err != nil {
		t.Fatal(err)
	}
	err = hf.Each(func(Row) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "line 2: read again") {
		t.Fatalf("Each of a changed file: %v, want an error naming line 2", err)
	}
}

// failAfter acknowledges batches until the n-th, which fails, recording
// the ids acknowledged.
type failAfter struct {
	n     int32
	calls atomic.Int32
	acked sync.Map
}

func (p *failAfter) PublishBatch(_ context.Context, evs []event.Event) error {
	if p.calls.Add(1) == p.n {
		return errors.New("refused")
	}
	for _, ev := range evs {
		p.acked.Store(ev.ID, true)
	}
	return nil
}

// TestHistoryFileResumes interrupts the import of a HistoryFile and runs
// it again from its checkpoint, reopening the file: together the two
// runs publish every event Parse makes of the file.
func TestHistoryFileResumes(t *testing.T) {
	data := gen.SalesforceHistory(3000)
	dir := t.TempDir()
	path := filepath.Join(dir, "history.csv")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	h := SalesforceHistory("acme", "USD")
	cp := filepath.Join(dir, "cp.json")
	o := Options{Checkpoint: cp, BatchSize: 500, InFlight: 1}
	run := func(pub Publisher) (Summary, error) {
		hf, err := h.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer hf.Close()
		return Run(t.Context(), hf, DigestKey(hf.Digest(), "k"), pub, o)
	}
	first := &failAfter{n: 4}
	if _, err := run(first); err == nil {
		t.Fatal("the import with a failed batch succeeded")
	}
	again := &failAfter{}
	sum, err := run(again)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resumed == 0 {
		t.Error("the second run did not resume")
	}
	rows, err := h.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		for _, ev := range r.Events {
			_, a := first.acked.Load(ev.ID)
			_, b := again.acked.Load(ev.ID)
			if !a && !b {
				t.Fatalf("line %d: event %s never published", r.Line, ev.ID)
			}
		}
	}
}

// TestScanUTF8 checks the encoding found by reading a file in 1 MiB
// reads: a character cut by a read is no invalid byte, an invalid byte
// after the first read is found.
func TestScanUTF8(t *testing.T) {
	text := "x" + strings.Repeat("ä", 1<<20) // "ä" across the first read's end
	tests := []struct {
		name  string
		data  string
		valid bool
	}{
		{"cut rune", text, true},
		{"cut euro sign", "xy" + strings.Repeat("€", 1<<19), true},
		{"invalid in the second read", text + "\xff", false},
		{"cut at the end", text + "\xe2\x82", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			if err := os.WriteFile(path, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			hf := &HistoryFile{f: f, size: int64(len(tc.data))}
			valid, _, err := hf.scan()
			if err != nil || valid != tc.valid {
				t.Fatalf("valid %v (%v), want %v", valid, err, tc.valid)
			}
			if hf.digest != sha256.Sum256([]byte(tc.data)) {
				t.Error("digest is not the content's")
			}
		})
	}
}
