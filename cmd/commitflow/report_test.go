package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestMain runs the tests, or, with COMMITFLOW_TEST_AS_CLI=1 in the
// environment, the commitflow command itself with the binary's arguments:
// how a test has a command start another (bench import runs commitflow
// import).
func TestMain(m *testing.M) {
	if os.Getenv("COMMITFLOW_TEST_AS_CLI") == "1" {
		main()
		os.Exit(0)
	}
	chtest.Main(m)
}

// reportDSN returns a migrated database holding a few derived events of
// tenants acme and globex.
func reportDSN(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	dsn := chtest.DSN(t)
	st := storetest.OpenDSN(t, dsn, store.Options{})
	l := ladder.Default()
	var rows []store.DerivedRow
	add := func(tenant, o string, kind derive.Kind, day string, step int, status string) {
		at, _ := time.Parse(time.DateOnly, day)
		rows = append(rows, store.DerivedRow{Version: 1, Derived: derive.Derived{
			Tenant: tenant, OpportunityID: o, ID: o + string(kind) + day, Type: kind, OccurredAt: at.Add(9 * time.Hour),
			Step: l.Key(step), StepIndex: step, LadderVersion: l.Version,
			Snapshot: derive.Snapshot{Amount: 1000, Status: status, OwnerID: "ann", Team: "east", Probability: 0.2},
		}})
	}
	add("acme", "a-1", derive.DealCreated, "2024-01-02", 0, "open")
	add("acme", "a-1", derive.CommitmentGained, "2024-01-03", 1, "open")
	add("acme", "a-1", derive.CommitmentGained, "2024-01-09", 2, "open")
	add("acme", "a-2", derive.DealCreated, "2024-01-04", 0, "open")
	add("acme", "a-2", derive.CommitmentGained, "2024-01-05", 1, "open")
	add("acme", "a-2", derive.DealStalled, "2024-03-05", 1, "open")
	add("globex", "g-1", derive.CommitmentGained, "2024-01-05", 1, "open")
	if err := st.InsertDerivedWithStates(ctx, rows, ladder.Default().Len()); err != nil {
		t.Fatal(err)
	}
	return dsn
}

func runReport(args ...string) (string, error) {
	var out bytes.Buffer
	err := dispatch(context.Background(), append([]string{"report"}, args...), &out)
	return out.String(), err
}

func TestReport(t *testing.T) {
	dsn := reportDSN(t)
	base := []string{"--clickhouse", dsn, "--tenant", "acme", "--log-level", "error"}

	out, err := runReport(append([]string{"funnel", "--from", "2024-01-01", "--to", "2024-02-01", "--as-of", "2024-04-01", "--window-days", "30"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "tenant acme") || !strings.Contains(out, "window 30 days") || !strings.Contains(out, "time") {
		t.Errorf("funnel table:\n%s", out)
	}

	out, err = runReport(append([]string{"funnel", "--from", "2024-01-01", "--to", "2024-02-01", "--as-of", "2024-04-01", "--format", "csv"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatalf("funnel csv: %v\n%s", err, out)
	}
	if recs[0][0] != "from_step" || recs[1][0] != "time" || recs[1][4] != "2" || recs[1][5] != "1" {
		t.Errorf("funnel csv: reached/converted of step 1 = %v, want 2 and 1\n%s", recs[1], out)
	}

	out, err = runReport(append([]string{"stalls", "--as-of", "2024-04-01", "--format", "csv", "--table", "deals"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "a-2") || strings.Contains(out, "a-1") || strings.Contains(out, "g-1") {
		t.Errorf("stalled deals csv:\n%s", out)
	}

	for _, m := range []string{"missed", "movement", "cycle-time"} {
		out, err = runReport(append([]string{m, "--from", "2024-01-01", "--to", "2024-04-01", "--format", "json"}, base...)...)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); err != nil || v["definitions"] == nil {
			t.Errorf("%s json: %v\n%s", m, err, out)
		}
	}
	out, err = runReport(append([]string{"forecast", "--as-of", "2024-04-01", "--backtest", "2024-02-01", "--draws", "100"}, base...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "pipeline") || !strings.Contains(out, "calibration") {
		t.Errorf("forecast table:\n%s", out)
	}
}

func TestReportErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "which metric"},
		{[]string{"funnnel"}, "unknown metric"},
		{[]string{"funnel", "--tenant", "acme", "--from", "2024-01-01", "--to", "2024-02-01", "--by", "owner;DROP TABLE x"}, "--by:"},
		{[]string{"funnel", "--tenant", "acme", "--from", "2024-03-01", "--to", "2024-02-01"}, "--from:"},
		{[]string{"stalls", "--tenant", "acme", "--page-size", "5000"}, "--page-size:"},
		{[]string{"stalls", "--tenant", "x' OR '1'='1"}, "--tenant"},
		{[]string{"stalls", "--tenant", "acme", "--format", "xml"}, "--format"},
		{[]string{"stalls", "--tenant", "acme", "--table", "nope"}, "--table"},
		{[]string{"stalls", "--tenant", "acme", "--clickhouse", "", "--data", t.TempDir()}, "no managed ClickHouse running under"},
	}
	for _, tt := range tests {
		t.Setenv("COMMITFLOW_CLICKHOUSE", "")
		_, err := runReport(tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("report %q: error %v, want %q", tt.args, err, tt.want)
		}
	}
}

// Answers use the ladder the states were derived with, or refuse naming
// both versions and the way out (issue 18 defect 2): states derived with a
// two-step ladder are not reported in the shipped ladder's steps.
func TestReportLadder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	twoFile := filepath.Join(dir, "two.yaml")
	if err := os.WriteFile(twoFile, []byte("version: two-steps\nsteps:\n  - key: meet\n  - key: buy\nwon_step: buy\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	two, err := ladder.Load(twoFile)
	if err != nil {
		t.Fatal(err)
	}
	def := ladder.Default()
	dsn := chtest.DSN(t)
	st := storetest.OpenDSN(t, dsn, store.Options{})
	// acme's two deals derived with the two-step ladder, globex's with the
	// default one.
	insert := func(l *ladder.Ladder, tenant string, opps ...string) {
		t.Helper()
		var rows []store.DerivedRow
		for _, o := range opps {
			for step, day := range []string{"2024-01-02", "2024-01-03", "2024-01-09"} {
				at, _ := time.Parse(time.DateOnly, day)
				kind := derive.CommitmentGained
				if step == 0 {
					kind = derive.DealCreated
				}
				rows = append(rows, store.DerivedRow{Version: 1, Derived: derive.Derived{
					Tenant: tenant, OpportunityID: o, ID: o + string(kind) + day, Type: kind, OccurredAt: at.Add(9 * time.Hour),
					Step: l.Key(step), StepIndex: step, LadderVersion: l.Version,
					Snapshot: derive.Snapshot{Amount: 1000, Status: "open", OwnerID: "ann"},
				}})
			}
		}
		if err := st.InsertDerivedWithStates(ctx, rows, l.Len()); err != nil {
			t.Fatal(err)
		}
	}
	insert(two, "acme", "a-1", "a-2")
	insert(def, "globex", "g-1")

	empty := t.TempDir() // no commitflow run there
	funnel := []string{"funnel", "--clickhouse", dsn, "--data", empty, "--from", "2024-01-01", "--to", "2024-02-01", "--as-of", "2024-04-01", "--log-level", "error"}
	_, err = runReport(append(funnel, "--tenant", "acme")...)
	want := "report funnel: tenant acme: 2 of 2 opportunity states were derived with ladder two-steps (2), not with ladder " + def.Version +
		" (the shipped default): pass the ladder file they were derived with, --ladder FILE, or replay them with this one: commitflow replay --tenant acme"
	if err == nil || err.Error() != want {
		t.Errorf("acme with the shipped ladder: error\n%v\nwant\n%s", err, want)
	}
	_, err = runReport(append(funnel, "--tenant", "globex", "--ladder", twoFile)...)
	if err == nil || !strings.Contains(err.Error(), "derived with ladder "+def.Version+" (1), not with ladder two-steps ("+twoFile+")") ||
		!strings.Contains(err.Error(), "commitflow replay --tenant globex --ladder "+twoFile) {
		t.Errorf("globex with the two-step ladder: %v", err)
	}

	// With the ladder they were derived with, answers name its steps.
	out, err := runReport(append(funnel, "--tenant", "acme", "--ladder", twoFile, "--format", "csv")...)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) != 2 || recs[1][0] != "meet" || recs[1][1] != "buy" || recs[1][4] != "2" || recs[1][5] != "2" {
		t.Errorf("acme's funnel with its ladder: %v\n%s", err, out)
	}
	// Without --ladder, the ladder of the commitflow run under --data.
	runDir := t.TempDir()
	remove, err := writeRunInfo(runDir, runInfo{PID: 1, Ladder: twoFile, LadderVersion: two.Version})
	if err != nil {
		t.Fatal(err)
	}
	defer remove()
	funnel[4] = runDir
	out, err = runReport(append(funnel, "--tenant", "acme")...)
	if err != nil || !strings.Contains(out, "ladder two-steps") || !strings.Contains(out, "meet") {
		t.Errorf("acme with run's ladder: %v\n%s", err, out)
	}
	_, err = runReport(append(funnel, "--tenant", "globex")...)
	if err == nil || !strings.Contains(err.Error(), "not with ladder two-steps (the ladder of commitflow run, "+twoFile+")") {
		t.Errorf("globex with run's ladder: %v", err)
	}
}
