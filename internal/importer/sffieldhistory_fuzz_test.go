package importer

import "testing"

func FuzzSalesforceFieldHistory(f *testing.F) {
	for _, name := range []string{"OpportunityFieldHistory.csv", "OpportunityFieldHistory-windows1252.csv", "OpportunityFieldHistory-bad.csv"} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := SalesforceFieldHistory("acme", "USD", "").Parse(data)
		if err == nil {
			checkRows(t, rows, "acme")
		}
	})
}
