package report

import (
	"encoding/csv"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/metrics"
)

func TestCSVCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"Acme renewal", "Acme renewal"},
		{"=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"},
		{"+1 555", "'+1 555"},
		{"-2+3", "'-2+3"},
		{"@SUM(A1)", "'@SUM(A1)"},
		{"\tcmd", "'\tcmd"},
		{"\r=1", "'\r=1"},
		{"-12", "-12"},
		{"-12.50", "-12.50"},
		{"0.2500", "0.2500"},
		{"-", "'-"},
		{"-.5", "'-.5"},
		{"-1e5", "'-1e5"},
		{"-Inf", "'-Inf"},
		{"a=b", "a=b"},
	}
	for _, tt := range tests {
		if got := csvCell(tt.in); got != tt.want {
			t.Errorf("csvCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// dealsAnswer is a deal list of two deals, one named as a formula.
func dealsAnswer() *deals.ListResult {
	closeDate := "2024-09-30"
	return &deals.ListResult{
		Definitions: metrics.Definitions{Tenant: "acme", AsOf: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC), LadderVersion: "v1"},
		Total:       2, Page: 1, PageSize: 50,
		Deals: []deals.Row{
			{OpportunityID: "a-1", Name: "=cmd|' /C calc'!A0", OwnerID: "ann", Team: "east", Amount: 1234.5, Currency: "USD", CloseDate: &closeDate,
				Stage: "Discovery", Status: "open", StepIndex: 2, Step: "explore", DaysSinceCommitment: 40,
				Warnings: []deals.Warning{{Kind: deals.WarnStalled}, {Kind: deals.WarnSingleThreaded}}},
			{OpportunityID: "a-2", Name: "Globex", OwnerID: "bob", Amount: -10, Status: "open", StepIndex: 1, Step: "meet"},
		},
	}
}

// TestWriteDealsCSV: the deal list as CSV, a formula-like name quoted and
// a negative amount left a number.
func TestWriteDealsCSV(t *testing.T) {
	var b strings.Builder
	if err := Write(&b, "deals", dealsAnswer(), "csv", ""); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(b.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"opportunity_id", "name", "owner_id", "team", "amount", "currency", "close_date", "stage", "status", "step_index", "step", "days_since_commitment", "warnings"},
		{"a-1", "'=cmd|' /C calc'!A0", "ann", "east", "1234.50", "USD", "2024-09-30", "Discovery", "open", "2", "explore", "40", "stalled single_threaded"},
		{"a-2", "Globex", "bob", "", "-10.00", "", "", "", "open", "1", "meet", "0", ""},
	}
	if got, w := strings.Join(flat(recs), "|"), strings.Join(flat(want), "|"); got != w {
		t.Errorf("deals csv:\n%s\nwant\n%s", got, w)
	}
	// The table for people names the owner.
	b.Reset()
	if err := WriteNamed(&b, "deals", dealsAnswer(), "table", "", map[string]string{"ann": "Ann Example"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Ann Example (ann)") || !strings.Contains(b.String(), "2 deals, page 1") {
		t.Errorf("deals table:\n%s", b.String())
	}
}

func flat(recs [][]string) []string {
	var out []string
	for _, r := range recs {
		out = append(out, strings.Join(r, ","))
	}
	return out
}

// TestWriteWarningsCSV: each table of the warnings answer; amounts in
// one column per currency, never added.
func TestWriteWarningsCSV(t *testing.T) {
	res := &deals.WarningsResult{
		Definitions: metrics.Definitions{Tenant: "acme", AsOf: time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC)},
		Total:       deals.WarningCounts{Deals: 2},
		ByKind: []deals.WarningCounts{
			{Key: deals.WarnStalled, Deals: 2, Kinds: map[string]int64{deals.WarnStalled: 2}, AmountsByCurrency: map[string]float64{"USD": 100, "EUR": 50}},
		},
		ByOwner: []deals.WarningCounts{
			{Key: "ann", Deals: 1, Kinds: map[string]int64{deals.WarnStalled: 1, deals.WarnNoNextStep: 1}, AmountsByCurrency: map[string]float64{"USD": 100}},
			{Key: "bob", Deals: 1, Kinds: map[string]int64{deals.WarnStalled: 1}, AmountsByCurrency: map[string]float64{"EUR": 50}},
		},
		Deals: dealsAnswer().Deals,
	}
	tests := []struct{ table, want string }{
		{"", "opportunity_id,name,owner_id"},
		{"by_kind", "kind,deals,stalled,single_threaded,buyer_action_overdue,close_date_pushed,no_next_step,amount_EUR,amount_USD\n" +
			"stalled,2,2,0,0,0,0,50.00,100.00\n"},
		{"by_owner", "owner,deals,stalled,single_threaded,buyer_action_overdue,close_date_pushed,no_next_step,amount_EUR,amount_USD\n" +
			"ann,1,1,0,0,0,1,,100.00\nbob,1,1,0,0,0,0,50.00,\n"},
		{"by_team", "team,deals,stalled,single_threaded,buyer_action_overdue,close_date_pushed,no_next_step\n"},
	}
	for _, tt := range tests {
		var b strings.Builder
		if err := Write(&b, "warnings", res, "csv", tt.table); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(b.String(), tt.want) || tt.table != "" && b.String() != tt.want {
			t.Errorf("warnings table %q:\n%s\nwant\n%s", tt.table, b.String(), tt.want)
		}
	}
}

// TestWriteNoTable: a table the answer does not hold is an error, not
// another table in its place (a forecast without a back-test printed its
// pipeline for --table backtest).
func TestWriteNoTable(t *testing.T) {
	res := answer(t, "forecast", "forecast").(*forecast.Result)
	for _, format := range []string{"csv", "table"} {
		var b strings.Builder
		err := Write(&b, "forecast", res, format, "backtest")
		if !errors.Is(err, ErrNoTable) || b.Len() != 0 {
			t.Errorf("%s: error %v, output %q", format, err, b.String())
		}
	}
}
