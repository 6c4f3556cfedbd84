package report

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/metrics"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata from the answers")

// answer reads testdata/NAME.json, an answer of metric as the API gives it
// (trimmed of what no table shows: rules and histograms).
func answer(t *testing.T, name, metric string) any {
	t.Helper()
	var res any
	switch metric {
	case "funnel":
		res = new(metrics.FunnelResult)
	case "stalls":
		res = new(metrics.StallsResult)
	case "missed":
		res = new(metrics.MissedResult)
	case "movement":
		res = new(metrics.MovementResult)
	case "forecast":
		res = new(forecast.Result)
	case "cycle-time":
		res = new(metrics.CycleResult)
	case "stage-history":
		res = new(metrics.StageHistoryResult)
	default:
		t.Fatalf("no answer type for %s", metric)
	}
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, res); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return res
}

// golden compares got with testdata/file, or writes it there with -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", file, got, want)
	}
}

// TestWrite prints every answer of testdata as tables (NAME.table) and each
// of its tables as CSV (NAME.TABLE.csv). The answers are of a generated
// book of 24 deals, every fifth in euros, so that amounts over several
// currencies are null; the goldens were first written by the formatting
// of cmd/commitflow before it moved here.
func TestWrite(t *testing.T) {
	tests := []struct{ name, metric string }{
		{"funnel", "funnel"},
		{"funnel-by-team-quarter", "funnel"},
		{"stalls", "stalls"},
		{"stalls-usd", "stalls"},
		{"missed", "missed"},
		{"movement", "movement"},
		{"forecast", "forecast"},
		{"forecast-backtest", "forecast"},
		{"cycle-time", "cycle-time"},
		{"cycle-time-by-team-quarter", "cycle-time"},
		{"stage-history", "stage-history"},
		{"stage-history-by-team", "stage-history"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := answer(t, tt.name, tt.metric)
			var b strings.Builder
			if err := Write(&b, tt.metric, res, "table", ""); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".table", b.String())
			_, tables := render(res, formatter{})
			var rendered []string
			for _, tb := range tables {
				rendered = append(rendered, tb.name)
			}
			if got, want := strings.Join(Tables(tt.metric, res), ","), strings.Join(rendered, ","); got != want {
				t.Errorf("Tables = %s, the answer holds %s", got, want)
			}
			for _, tb := range TableNames(tt.metric) {
				b.Reset()
				err := Write(&b, tt.metric, res, "csv", tb)
				if fc, ok := res.(*forecast.Result); ok && fc.Backtest == nil && (tb == "backtest" || tb == "calibration") {
					if !errors.Is(err, ErrNoTable) {
						t.Errorf("table %s of a forecast without a back-test: error %v, want ErrNoTable", tb, err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				golden(t, tt.name+"."+tb+".csv", b.String())
			}
		})
	}
}

// TestWriteOnly: --table picks one table in either format; without it csv
// prints the first.
func TestWriteOnly(t *testing.T) {
	res := answer(t, "stalls", "stalls")
	var all, deals, first strings.Builder
	if err := Write(&all, "stalls", res, "table", ""); err != nil {
		t.Fatal(err)
	}
	if err := Write(&deals, "stalls", res, "table", "deals"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(all.String(), "\nsteps\n") || strings.Contains(deals.String(), "\nsteps\n") || !strings.Contains(deals.String(), "\ndeals\n") {
		t.Errorf("table deals:\n%s", deals.String())
	}
	if err := Write(&first, "stalls", res, "csv", ""); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.String(), "step_index,step,open,") {
		t.Errorf("csv without --table:\n%s", first.String())
	}
}

// TestWriteJSON: json is the answer as the API encodes it.
func TestWriteJSON(t *testing.T) {
	res := answer(t, "movement", "movement")
	var b strings.Builder
	if err := Write(&b, "movement", res, "json", "by_step"); err != nil {
		t.Fatal(err)
	}
	want, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if b.String() != string(want)+"\n" {
		t.Errorf("json:\n%s", b.String())
	}
}

// TestWriteNothing: a CSV of an answer without tables is an error.
func TestWriteNothing(t *testing.T) {
	err := Write(&strings.Builder{}, "funnel", struct{}{}, "csv", "")
	if err == nil || err.Error() != "report funnel: nothing to print" {
		t.Errorf("error %v", err)
	}
}

func TestTableNames(t *testing.T) {
	for metric, want := range map[string]string{
		"funnel": "steps", "stalls": "steps,deals", "missed": "by_step,by_reason,by_owner", "movement": "by_step",
		"forecast": "pipeline,model,backtest,calibration", "cycle-time": "outcomes", "stage-history": "stages,transitions",
		"deals": "deals", "warnings": "deals,by_kind,by_owner,by_team", "nope": "",
	} {
		if got := strings.Join(TableNames(metric), ","); got != want {
			t.Errorf("TableNames(%s) = %s, want %s", metric, got, want)
		}
	}
}

func TestGroupKey(t *testing.T) {
	tests := []struct {
		human  bool
		key    string
		other  bool
		merged int
		want   string
	}{
		{true, "ann", false, 3, "ann"},
		{true, "", false, 3, "-"},
		{true, "", true, 3, "(3 others)"},
		{false, "", true, 3, "(other)"},
		{false, "", false, 0, ""},
	}
	for _, tt := range tests {
		if got := (formatter{human: tt.human}).key(tt.key, tt.other, tt.merged); got != tt.want {
			t.Errorf("key(%q, %v, %d) human=%v = %q, want %q", tt.key, tt.other, tt.merged, tt.human, got, tt.want)
		}
	}
}
