package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
)

// publishedByDeal returns the rows an import publishes of in, deal by deal: each
// deal's rows with events, in publishing order, with a copy of their
// events; and the refused rows, by line. It checks that Each gives Len
// rows, the refused ones Refused gives, and each deal's rows together.
func publishedByDeal(t *testing.T, in Input) (deals map[string][]Row, refused []string) {
	t.Helper()
	deals = map[string][]Row{}
	n, last := 0, ""
	err := in.Each(func(r Row) error {
		n++
		if r.Err != nil {
			refused = append(refused, fmt.Sprintf("line %d: %v", r.Line, r.Err))
			return nil
		}
		if len(r.Events) == 0 {
			return nil
		}
		d := r.Events[0].Tenant + "/" + r.Events[0].OpportunityID
		if r.Events[0].OpportunityID == "" {
			d = fmt.Sprintf("line %d", r.Line) // of no deal: alone
		}
		if _, ok := deals[d]; ok && d != last {
			t.Fatalf("line %d: deal %s again after other rows", r.Line, d)
		}
		last = d
		r.Events = append([]event.Event(nil), r.Events...)
		deals[d] = append(deals[d], r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != in.Len() {
		t.Fatalf("Each gave %d rows, Len says %d", n, in.Len())
	}
	rs, err := in.Refused()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(refused)
	if got := errorsOf(rs); !slices.Equal(slices.Sorted(slices.Values(got)), refused) {
		t.Fatalf("Refused:\n%v\nEach refused:\n%v", got, refused)
	}
	return deals, refused
}

// sameAsParse checks that a File of data (read by read) imports what
// parse makes of it: the same error for the file, or the same rows,
// refusals and events.
func sameAsParse(t *testing.T, parse func([]byte) (Rows, error), read func(io.ReaderAt, int64) (*File, error), data []byte) {
	t.Helper()
	want, werr := parse(data)
	df, err := read(bytes.NewReader(data), int64(len(data)))
	if werr != nil || err != nil {
		// csv's columns count bytes: of the file's here, of the decoded
		// text's in Parse.
		if !utf8.Valid(data) && werr != nil && err != nil {
			werr, err = errors.New(csvColumn.ReplaceAllString(werr.Error(), "column N")), errors.New(csvColumn.ReplaceAllString(err.Error(), "column N"))
		}
		if werr == nil || err == nil || werr.Error() != err.Error() {
			t.Fatalf("File: %v; Parse: %v", err, werr)
		}
		return
	}
	defer df.Close()
	if df.Digest() != sha256.Sum256(data) {
		t.Error("digest is not the content's")
	}
	if df.Len() != len(want) {
		t.Fatalf("%d rows, Parse has %d", df.Len(), len(want))
	}
	got, gotRefused := publishedByDeal(t, df)
	wantDeals, wantRefused := publishedByDeal(t, want)
	if !slices.Equal(gotRefused, wantRefused) {
		t.Fatalf("refused:\n%v\nParse refused:\n%v", gotRefused, wantRefused)
	}
	if len(got) != len(wantDeals) {
		t.Fatalf("%d deals with events, Parse's %d", len(got), len(wantDeals))
	}
	for d, rows := range wantDeals {
		if !reflect.DeepEqual(got[d], rows) {
			t.Fatalf("deal %s:\n%+v\nParse's:\n%+v", d, got[d], rows)
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

// TestHistoryFile checks File against Parse on the exports of the
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
		t.Run(tc.name, func(t *testing.T) { sameAsParse(t, tc.h.Parse, readAs(&historyFormat{h: tc.h}), tc.data) })
	}
}

func withComma(h History, c rune) History {
	h.Comma = c
	return h
}

// TestHistoryFileGenerated checks File against Parse on a
// generated export with every row of a deal apart (in date order) and
// rows repeated.
func TestHistoryFileGenerated(t *testing.T) {
	data := gen.SalesforceHistory(5000)
	lines := strings.SplitAfter(string(data), "\n")
	data = append(data, lines[10]+lines[4000]+lines[1]...) // repeated ids
	h := SalesforceHistory("acme", "USD")
	sameAsParse(t, h.Parse, readAs(&historyFormat{h: h}), data)
}

func FuzzHistoryFile(f *testing.F) {
	f.Add([]byte(sfHistory))
	f.Add([]byte(sfHistoryBad))
	f.Add([]byte(sfHistoryEUR + "\"x\",\"\xff\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := SalesforceHistory("acme", "USD")
		sameAsParse(t, h.Parse, readAs(&historyFormat{h: h}), data)
	})
}

// TestFieldHistoryFile checks File against Parse on the
// OpportunityFieldHistory fixtures: refusals that only the rows before
// say (a value that is not what its field holds), owner rows by ids and
// by names, currencies changing, Windows-1252; and on them all in one
// file, each deal's rows far apart, with ids repeated.
func TestFieldHistoryFile(t *testing.T) {
	h := SalesforceFieldHistory("acme", "USD", "")
	names := []string{"OpportunityFieldHistory.csv", "OpportunityFieldHistory-windows1252.csv", "OpportunityFieldHistory-bad.csv"}
	var all []string
	for _, name := range names {
		data := readFixture(t, name)
		t.Run(name, func(t *testing.T) { sameAsParse(t, h.Parse, readAs(&fieldHistoryFormat{h: h}), data) })
		if d, err := Decode(data, ""); err == nil {
			lines := strings.SplitAfter(strings.TrimRight(d, "\r\n")+"\n", "\n")
			if all == nil {
				all = append(all, lines[0])
			}
			all = append(all, lines[1:]...)
		}
	}
	// Interleave: every other row to the end, then the first rows again.
	rows := all[1:]
	var mixed []string
	for i := 0; i < len(rows); i += 2 {
		mixed = append(mixed, rows[i])
	}
	for i := 1; i < len(rows); i += 2 {
		mixed = append(mixed, rows[i])
	}
	mixed = append(mixed, rows[:3]...)
	t.Run("interleaved", func(t *testing.T) {
		sameAsParse(t, h.Parse, readAs(&fieldHistoryFormat{h: h}), []byte(all[0]+strings.Join(mixed, "")))
	})
}

func FuzzFieldHistoryFile(f *testing.F) {
	for _, name := range []string{"OpportunityFieldHistory.csv", "OpportunityFieldHistory-windows1252.csv", "OpportunityFieldHistory-bad.csv"} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h := SalesforceFieldHistory("acme", "USD", "")
		sameAsParse(t, h.Parse, readAs(&fieldHistoryFormat{h: h}), data)
	})
}

// TestFileMemory checks what a File of a 100k-row export
// keeps in memory: a few tens of bytes a row, where the parsed rows take
// hundreds.
func TestFileMemory(t *testing.T) {
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
	t.Logf("%d rows: a File keeps %d bytes a row, the parsed rows %d", n, kept/n, parsed/n)
	if kept > 40*n {
		t.Errorf("a File keeps %d bytes a row, want at most 40", kept/n)
	}
	runtime.KeepAlive(rows)
}

// TestFileChanged changes the file between Open and Each: Each
// fails naming the row, rather than publishing other events.
func TestFileChanged(t *testing.T) {
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
	if err == nil || !strings.HasPrefix(err.Error(), "line 2: ") || !strings.Contains(err.Error(), "read again") {
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

// TestFileResumes interrupts the import of a File and runs
// it again from its checkpoint, reopening the file: together the two
// runs publish every event Parse makes of the file.
func TestFileResumes(t *testing.T) {
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
			hf := &File{source: source{f: f, size: int64(len(tc.data))}}
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

// readAs reads a File of f from r, for sameAsParse.
func readAs(f format) func(io.ReaderAt, int64) (*File, error) {
	return func(r io.ReaderAt, size int64) (*File, error) {
		return readFile(source{f: r, size: size}, f)
	}
}

// readRecords reads a File of rs, for sameAsParse.
func readRecords(rs records) func(io.ReaderAt, int64) (*File, error) {
	return readAs(&recordsFormat{rs: rs})
}

// TestRecordsFile checks File against Parse on the fixtures of the
// formats of one row per deal or contact role, as they are and with their
// rows reversed and then all repeated (every repeat refused).
func TestRecordsFile(t *testing.T) {
	pipelines := hubspotPipelines(t)
	mapped, err := ParseMapping([]byte(dealsMapping), "acme", "", "")
	if err != nil {
		t.Fatal(err)
	}
	read := func(name string) string { return string(vendorFixture(t, name)) }
	type format struct {
		parse func([]byte) (Rows, error)
		rs    records
	}
	opp, roles := SalesforceOpportunity("acme", "USD", ""), SalesforceContactRoles("acme", "")
	hs, hsp := HubSpotDeals{Tenant: "acme", Currency: "USD"}, HubSpotDeals{Tenant: "acme", Currency: "USD", Pipelines: pipelines}
	pd, deals := PipedriveDeals{Tenant: "acme", Currency: "EUR"}, mapped.(Deals)
	tests := []struct {
		name string
		f    format
		data string
	}{
		{"salesforce opportunity", format{opp.Parse, opp.records()}, read("salesforce/Opportunity.csv")},
		{"salesforce opportunity, windows-1252", format{opp.Parse, opp.records()}, read("salesforce/Opportunity-windows1252.csv")},
		{"salesforce contact roles", format{roles.Parse, roles.records()}, read("salesforce/OpportunityContactRole.csv")},
		{"hubspot", format{hs.Parse, hs.records()}, read("hubspot/deals.csv")},
		{"hubspot with pipelines", format{hsp.Parse, hsp.records()}, read("hubspot/deals.csv")},
		{"hubspot internal names", format{hsp.Parse, hsp.records()}, read("hubspot/deals-internal.csv")},
		{"pipedrive", format{pd.Parse, pd.records()}, read("pipedrive/deals.csv")},
		{"mapped deals", format{deals.Parse, deals.records()}, dealsExport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { sameAsParse(t, tc.f.parse, readRecords(tc.f.rs), []byte(tc.data)) })
		lines := strings.SplitAfter(strings.TrimRight(tc.data, "\r\n")+"\n", "\n")
		header, rows := lines[0], lines[1:len(lines)-1]
		slices.Reverse(rows)
		again := header + strings.Join(rows, "") + strings.Join(rows, "")
		t.Run(tc.name+", reversed and repeated", func(t *testing.T) { sameAsParse(t, tc.f.parse, readRecords(tc.f.rs), []byte(again)) })
	}
}

// TestOpenPipe opens exports through a named pipe, as a shell's
// <(zcat export.csv.gz) gives them: what cannot be read twice is read
// whole first, and imports what Parse makes of it.
func TestOpenPipe(t *testing.T) {
	h := SalesforceHistory("acme", "USD")
	fh := SalesforceFieldHistory("acme", "USD", "")
	tests := []struct {
		name  string
		data  []byte
		parse func([]byte) (Rows, error)
		open  func(string) (Input, error)
	}{
		{"history", []byte(sfHistory), h.Parse, func(p string) (Input, error) { return h.Open(p) }},
		{"field history", readFixture(t, "OpportunityFieldHistory.csv"), fh.Parse, func(p string) (Input, error) { return fh.Open(p) }},
		{"ndjson", []byte(`{"v":1,"id":"e1","tenant":"acme","source":"salesforce","type":"opportunity.stage_changed","occurred_at":"2024-01-10T09:00:00Z","opportunity_id":"006A","payload":{"to":"Q"}}` + "\n"),
			func(b []byte) (Rows, error) { return ParseNDJSON(b, ""), nil }, func(p string) (Input, error) { return OpenNDJSON(p, "") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pipe")
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			go func() {
				f, err := os.OpenFile(path, os.O_WRONLY, 0)
				if err != nil {
					return
				}
				f.Write(tc.data)
				f.Close()
			}()
			in, err := tc.open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.(io.Closer).Close()
			want, err := tc.parse(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			got, gotRefused := publishedByDeal(t, in)
			wantDeals, wantRefused := publishedByDeal(t, want)
			if len(got) == 0 || !reflect.DeepEqual(got, wantDeals) || !slices.Equal(gotRefused, wantRefused) {
				t.Fatalf("through a pipe:\n%+v\n%v\nParse:\n%+v\n%v", got, gotRefused, wantDeals, wantRefused)
			}
		})
	}
}
