package importer

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// readFixture reads a file of testdata/salesforce (see its README.txt).
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "salesforce", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSalesforceFieldHistory(t *testing.T) {
	tests := []struct {
		file, currency string
		want           string
		skipped        Skipped
	}{
		{"OpportunityFieldHistory.csv", "USD", `
2: 0065g00000FHAAAA01 2024-01-20T10:00 opportunity.stage_changed 0175g00000FH000002 {"from":"Prospecting","to":"Qualification"}
3: 0065g00000FHAAAA01 2024-01-20T10:00 opportunity.probability_changed 0175g00000FH000003 {"from":0.1,"to":0.2}
4: 0065g00000FHAAAA01 2024-01-10T09:00 opportunity.created 0175g00000FH000001 {"amount":10000,"currency":"USD","close_date":"2024-06-30","stage":"Prospecting","probability":0.1,"forecast_category":"Pipeline","owner_id":"0055g00000USERAA01"}
5: 0065g00000FHAAAA01 2024-02-01T11:00 opportunity.amount_changed 0175g00000FH000004 {"from":10000,"to":12500,"currency":"USD"}
6: 0065g00000FHAAAA01 2024-02-05T12:00 opportunity.owner_changed 0175g00000FH000005 {"from":"0055g00000USERAA01","to":"0055g00000USERAA02"}
10: 0065g00000FHAAAA01 2024-03-01T16:45 opportunity.stage_changed 0175g00000FH000008 {"from":"Qualification","to":"Proposal/Price Quote"}
11: 0065g00000FHAAAA01 2024-03-01T16:45 opportunity.close_date_changed 0175g00000FH000009 {"from":"2024-06-30","to":"2024-07-31"}
12: 0065g00000FHAAAA01 2024-03-01T16:45 opportunity.forecast_category_changed 0175g00000FH000010 {"from":"Pipeline","to":"Best Case"}
13: 0065g00000FHAAAA01 2024-04-02T11:00 opportunity.stage_changed 0175g00000FH000011 {"from":"Proposal/Price Quote","to":"Closed Won"}
14: 0065g00000FHAAAA01 2024-04-02T11:00 opportunity.probability_changed 0175g00000FH000012 {"from":0.75,"to":1}
15: 0065g00000FHAAAA01 2024-04-02T11:00 opportunity.forecast_category_changed 0175g00000FH000013 {"from":"Best Case","to":"Closed"}
16: 0065g00000FHAAAA02 2024-01-15T12:00 opportunity.created 0175g00000FH000021 {"currency":"EUR","stage":"Prospecting","probability":0.1}
17: 0065g00000FHAAAA02 2024-01-15T12:05 opportunity.updated 0175g00000FH000022 {"currency":"GBP"}
18: 0065g00000FHAAAA02 2024-02-01T08:00 opportunity.amount_changed 0175g00000FH000023 {"from":0,"to":5000,"currency":"GBP"}
19: 0065g00000FHAAAA02 2024-02-20T08:00 opportunity.amount_changed 0175g00000FH000024 {"from":5000,"to":0,"currency":"GBP","cleared":true}
20: 0065g00000FHAAAA02 2024-03-05T12:00 opportunity.stage_changed 0175g00000FH000025 {"from":"Prospecting","to":"Closed Lost"}
21: 0065g00000FHAAAA02 2024-03-05T12:00 opportunity.probability_changed 0175g00000FH000026 {"from":0.1,"to":0}
23: 0065g00000FHAAAA03 2024-02-02T09:00 opportunity.stage_changed 0175g00000FH000031 {"from":"Needs Analysis","to":"Value Proposition"}
`, Skipped{"Description": 1, "Name": 1, "Owner (names)": 1, "opportunityCreatedFromLead": 1}},
		{"OpportunityFieldHistory-windows1252.csv", "EUR", `
2: 0065g00000FHDDDD01 2024-05-02T08:15 opportunity.created 0175g00000FH000041 {"amount":20000,"currency":"EUR","stage":"Qualifizierung","owner_id":"0055g00000USERAA01"}
3: 0065g00000FHDDDD01 2024-05-10T09:00 opportunity.stage_changed 0175g00000FH000042 {"from":"Qualifizierung","to":"Angebot – Prüfung"}
4: 0065g00000FHDDDD01 2024-05-10T09:00 opportunity.amount_changed 0175g00000FH000043 {"from":20000,"to":24500.5,"currency":"EUR"}
6: 0065g00000FHDDDD01 2024-05-12T14:00 opportunity.owner_changed 0175g00000FH000045 {"from":"0055g00000USERAA01","to":"0055g00000USERAA02"}
`, Skipped{"NextStep": 1, "Owner (names)": 1}},
		{"OpportunityFieldHistory-bad.csv", "USD", `
2: 0065g00000FHEEEE01 2024-01-10T09:00 opportunity.created 0175g00000FH000051 {"currency":"USD","stage":"Prospecting"}
3: refused: IsDeleted: a deleted row (in the recycle bin)
4: refused: OpportunityId: missing
5: refused: CreatedDate: "12/01/2024" is not a time (want ISO 8601, e.g. 2024-03-27T14:30:12.000Z or 2024-03-27)
6: refused: Amount: NewValue: "1.000,00" is not an amount >= 0
7: refused: Id: "0175g00000FH000051" repeats the row at line 2
8: refused: 6 fields, the header has 9
9: refused: Probability: NewValue: "150" is not a percentage 0..100
10: refused: StageName: NewValue: missing (a stage cannot be cleared)
11: refused: CurrencyIsoCode: NewValue: "Euro" is not an ISO 4217 currency code
12: refused: occurred_at: 1960-01-16T09:00:00Z is out of range (years 1971..2105)
13: 0065g00000FHEEEE01 2024-01-19T09:00 opportunity.stage_changed 0175g00000FH000062 {"from":"Prospecting","to":"Qualification"}
`, Skipped{}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			rows, skipped, err := SalesforceFieldHistory("acme", tc.currency, "").ParseCounted(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, rows, "acme")
			if got := describe(t, rows); got != strings.TrimPrefix(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", got, strings.TrimPrefix(tc.want, "\n"))
			}
			if !reflect.DeepEqual(skipped, tc.skipped) {
				t.Errorf("skipped %v, want %v", skipped, tc.skipped)
			}
		})
	}
}

// TestSalesforceFieldHistoryShapes: an export without the DataType column
// (a report export, or a Data Loader query that left it out) keeps the
// owner row with ids by their shape; ForecastCategory is read as
// ForecastCategoryName; a file without a needed column or with a bad
// default currency is refused whole.
func TestSalesforceFieldHistoryShapes(t *testing.T) {
	data := "Id,OpportunityId,CreatedDate,Field,OldValue,NewValue\r\n" +
		"0175g00000FH000071,0065g00000FHFFFF01,2024-01-10,Owner,Alice Smith,Bob Jones\r\n" +
		"0175g00000FH000072,0065g00000FHFFFF01,2024-01-10,Owner,0055g00000USERAA01,0055g00000USERAA02\r\n" +
		"0175g00000FH000073,0065g00000FHFFFF01,2024-01-11,ForecastCategory,Pipeline,Commit\r\n"
	rows, skipped, err := SalesforceFieldHistory("acme", "", "").ParseCounted([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := `3: 0065g00000FHFFFF01 2024-01-10T00:00 opportunity.owner_changed 0175g00000FH000072 {"from":"0055g00000USERAA01","to":"0055g00000USERAA02"}
4: 0065g00000FHFFFF01 2024-01-11T00:00 opportunity.forecast_category_changed 0175g00000FH000073 {"from":"Pipeline","to":"Commit"}
`
	if got := describe(t, rows); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if !reflect.DeepEqual(skipped, Skipped{"Owner (names)": 1}) {
		t.Errorf("skipped %v", skipped)
	}
	if _, err := SalesforceFieldHistory("acme", "", "").Parse([]byte("Id,OpportunityId,CreatedDate,Field,NewValue\r\n")); err == nil ||
		!strings.Contains(err.Error(), `no column "OldValue"`) {
		t.Errorf("no OldValue column: %v", err)
	}
	if _, err := SalesforceFieldHistory("acme", "dollars", "").Parse([]byte(data)); err == nil {
		t.Error("a default currency that is not a code was taken")
	}
}
