package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/importer"
)

// sfHistoryFile is a small Salesforce OpportunityHistory export in the
// Data Export shape (every value quoted, ISO 8601 CreatedDate, Probability
// in percent; the field names of the Object Reference's OpportunityHistory):
// one opportunity created, qualified and won, and a deleted row.
const sfHistoryFile = `"Id","OpportunityId","CreatedById","CreatedDate","StageName","Amount","ExpectedRevenue","CloseDate","Probability","ForecastCategory","IsDeleted","SystemModstamp"
"0085g00000H1AAAAA1","0065g00000AAAAAAA1","0055g00000USER001","2024-01-10T09:00:00.000Z","Prospecting","10000.00","1000.00","2024-06-30","10","Pipeline","false","2024-01-10T09:00:00.000Z"
"0085g00000H1AAAAA2","0065g00000AAAAAAA1","0055g00000USER001","2024-02-01T10:30:00.000Z","Qualification","10000.00","1000.00","2024-06-30","20","Pipeline","false","2024-02-01T10:30:00.000Z"
"0085g00000H1AAAAA3","0065g00000AAAAAAA1","0055g00000USER001","2024-02-02T10:30:00.000Z","Qualification","10000.00","1000.00","2024-06-30","20","Pipeline","true","2024-02-02T10:30:00.000Z"
"0085g00000H1AAAAA4","0065g00000AAAAAAA1","0055g00000USER001","2024-05-20T08:00:00.000Z","Closed Won","12500.00","12500.00","2024-05-20","100","Closed","false","2024-05-20T08:00:00.000Z"
`

func TestImportCommand(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 4)
	dir := t.TempDir()
	file := filepath.Join(dir, "OpportunityHistory.csv")
	if err := os.WriteFile(file, []byte(sfHistoryFile), 0o644); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	args := []string{"--nats", url, "--data", data, "--tenant", "acme", "--currency", "USD", file}
	const summary = "OpportunityHistory.csv: 4 rows read, 6 events published, 1 rows refused\n" +
		"  line 4: IsDeleted: a deleted row (in the recycle bin)\n"
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		if err := runImport(ctx, args, &stdout, &stderr); err != nil {
			t.Fatalf("import %d: %v\n%s", i+1, err, stderr.String())
		}
		if got := strings.ReplaceAll(stdout.String(), file, "OpportunityHistory.csv"); got != summary {
			t.Errorf("import %d: summary\n%s\nwant\n%s", i+1, got, summary)
		}
		if !strings.Contains(stderr.String(), "rows/s") {
			t.Errorf("import %d: no progress on stderr: %q", i+1, stderr.String())
		}
		s, err := js.Stream(ctx, bus.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.CachedInfo().State.Msgs; n != 6 {
			t.Errorf("after import %d: %d messages in %s, want 6", i+1, n, bus.EventsStream)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(data, "import", "*")); len(left) > 0 {
		t.Errorf("checkpoints left after complete imports: %v", left)
	}

	var stdout, stderr bytes.Buffer
	err := runImport(ctx, append([]string{"--strict"}, args...), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "line 4 refused") || !strings.Contains(err.Error(), "nothing published") {
		t.Fatalf("--strict: err = %v, want line 4 refused and nothing published", err)
	}
	for _, bad := range [][]string{
		{"--format", "xml", file},
		{"--format", "csv", file},
		{"--mapping", filepath.Join(dir, "none.yaml"), "--format", "ndjson", file},
		{},
	} {
		if err := runImport(ctx, append([]string{"--nats", url, "--data", data}, bad...), &stdout, &stderr); err == nil {
			t.Errorf("import %v: no error", bad)
		}
	}
}

// TestImportMappedDeals imports a "one row per deal" CSV through a
// mapping file (columns as a HubSpot deals export names them).
func TestImportMappedDeals(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 4)
	dir := t.TempDir()
	file := filepath.Join(dir, "deals.csv")
	mapping := filepath.Join(dir, "deals.yaml")
	const deals = "Deal ID,Deal Stage,Amount,Create Date,Date entered Demo,Close Date\n" +
		"101,Closed Won,5000,2024-01-02,2024-01-10,2024-03-01\n" +
		"102,Demo,,2024-01-05,,\n"
	const yaml = "shape: deals\nsource: hubspot-csv\ncolumns:\n  opportunity_id: Deal ID\n  stage: Deal Stage\n" +
		"  amount: Amount\n  created_at: Create Date\n  closed_at: Close Date\nstage_dates:\n  Demo: Date entered Demo\n"
	if err := os.WriteFile(file, []byte(deals), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mapping, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"--nats", url, "--data", filepath.Join(dir, "data"), "--tenant", "acme", "--currency", "EUR", "--mapping", mapping, file}
	if err := runImport(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if want := file + ": 2 rows read, 4 events published, 0 rows refused\n"; stdout.String() != want {
		t.Errorf("summary %q, want %q", stdout.String(), want)
	}
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 4 {
		t.Errorf("%d messages in %s, want 4", n, bus.EventsStream)
	}
}

// TestImportMappedHistory imports a "one row per change" CSV through a
// mapping file: a semicolon-separated Windows-1252 export without row ids,
// read from its file deal by deal, with one row refused. Imported again
// it publishes nothing new.
func TestImportMappedHistory(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 4)
	dir := t.TempDir()
	file := filepath.Join(dir, "history.csv")
	mapping := filepath.Join(dir, "history.yaml")
	const history = "Deal;Changed;Stage;Value;Owner\n" +
		"D-1;2024-01-03 09:15;Lead;1000;Ren\xe9e\n" + // Renée in Windows-1252
		"D-2;2024-01-05 09:00;Lead;;carol\n" +
		"D-1;2024-01-10 10:00;Demo;1200;Ren\xe9e\n" +
		"D-2;yesterday;Demo;;carol\n"
	const yaml = "shape: history\nsource: mycrm\ndelimiter: \";\"\ncolumns:\n  opportunity_id: Deal\n  occurred_at: Changed\n" +
		"  stage: Stage\n  amount: Value\n  owner: Owner\n"
	if err := os.WriteFile(file, []byte(history), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mapping, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--nats", url, "--data", filepath.Join(dir, "data"), "--tenant", "acme", "--currency", "EUR", "--mapping", mapping, file}
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		if err := runImport(ctx, args, &stdout, &stderr); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		want := file + ": 4 rows read, 4 events published, 1 rows refused\n" +
			"  line 5: Changed: \"yesterday\" is not a time (want ISO 8601, e.g. 2024-03-27T14:30:12.000Z or 2024-03-27)\n"
		if stdout.String() != want {
			t.Errorf("import %d: summary %q, want %q", i+1, stdout.String(), want)
		}
		s, err := js.Stream(ctx, bus.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.CachedInfo().State.Msgs; n != 4 {
			t.Errorf("after import %d: %d messages in %s, want 4", i+1, n, bus.EventsStream)
		}
	}
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	owners := 0
	for seq := uint64(1); seq <= 4; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(m.Data), `"owner_id":"Renée"`) {
			owners++
		}
	}
	if owners != 1 {
		t.Errorf("%d events with owner Renée, want 1 (D-1 created)", owners)
	}
}

// TestImportFieldHistory imports an OpportunityFieldHistory export, read
// from its file deal by deal, twice: the summary and the stream hold what
// parsing it in memory makes of it.
func TestImportFieldHistory(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 4)
	dir := t.TempDir()
	file := filepath.Join("..", "..", "internal", "importer", "testdata", "salesforce", "OpportunityFieldHistory-bad.csv")
	content, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := importer.SalesforceFieldHistory("acme", "USD", "").Parse(content)
	if err != nil {
		t.Fatal(err)
	}
	events, refused := 0, ""
	for _, r := range rows {
		events += len(r.Events)
		if r.Err != nil {
			refused += fmt.Sprintf("  line %d: %v\n", r.Line, r.Err)
		}
	}
	if refused == "" || events == 0 {
		t.Fatalf("the fixture has %d events and no refused row", events)
	}
	args := []string{"--nats", url, "--data", filepath.Join(dir, "data"), "--format", "salesforce-field-history", "--tenant", "acme", "--currency", "USD", file}
	for i := range 2 {
		var stdout, stderr bytes.Buffer
		if err := runImport(ctx, args, &stdout, &stderr); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		want := fmt.Sprintf("%s: %d rows read, %d events published, %d rows refused\n%s", file, len(rows), events, strings.Count(refused, "\n"), refused)
		if stdout.String() != want {
			t.Errorf("import %d: summary\n%s\nwant\n%s", i+1, stdout.String(), want)
		}
		s, err := js.Stream(ctx, bus.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		if n := s.CachedInfo().State.Msgs; n != uint64(events) {
			t.Errorf("after import %d: %d messages in %s, want %d", i+1, n, bus.EventsStream, events)
		}
	}
}

// TestImportNDJSON imports canonical events of any tenant, unless --tenant
// names one: then the others' are refused.
func TestImportNDJSON(t *testing.T) {
	ctx := t.Context()
	url, _ := embeddedBus(t, 4)
	dir := t.TempDir()
	file := filepath.Join(dir, "events.ndjson")
	const evs = `{"v":1,"id":"e1","tenant":"acme","source":"salesforce","type":"opportunity.stage_changed","occurred_at":"2024-01-10T09:00:00Z","opportunity_id":"006A","payload":{"to":"Qualification"}}
{"v":1,"id":"e2","tenant":"globex","source":"salesforce","type":"opportunity.stage_changed","occurred_at":"2024-01-10T09:00:00Z","opportunity_id":"006B","payload":{"to":"Qualification"}}
`
	if err := os.WriteFile(file, []byte(evs), 0o644); err != nil {
		t.Fatal(err)
	}
	refusedGlobex := ": 2 rows read, 1 events published, 1 rows refused\n" +
		`  line 2: tenant: "globex" is not the tenant imported, "acme"` + "\n"
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"", nil, ": 2 rows read, 2 events published, 0 rows refused\n"},
		{"", []string{"--tenant", "acme"}, refusedGlobex},
		{"acme", nil, refusedGlobex},
	} {
		t.Setenv("COMMITFLOW_TENANT", tc.env)
		var stdout, stderr bytes.Buffer
		args := append(append([]string{"--nats", url, "--data", filepath.Join(dir, "data")}, tc.args...), file)
		if err := runImport(ctx, args, &stdout, &stderr); err != nil {
			t.Fatalf("%v: %v\n%s", tc.args, err, stderr.String())
		}
		if got := strings.TrimPrefix(stdout.String(), file); got != tc.want {
			t.Errorf("%v: summary %q, want %q", tc.args, got, tc.want)
		}
	}
}
