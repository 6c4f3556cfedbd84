package importer

import "testing"

func FuzzSalesforceOpportunity(f *testing.F) {
	for _, name := range []string{"Opportunity.csv", "Opportunity-windows1252.csv"} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := SalesforceOpportunity("acme", "USD", "")
		rows, err := o.Parse(data)
		if err == nil {
			checkRows(t, rows, "acme")
		}
		sameAsParse(t, o.Parse, readRecords(o.records()), data)
	})
}
