package importer

import "testing"

func FuzzSalesforceContactRoles(f *testing.F) {
	f.Add(readFixture(f, "OpportunityContactRole.csv"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := SalesforceContactRoles("acme", "")
		rows, err := c.Parse(data)
		if err == nil {
			checkRows(t, rows, "acme")
		}
		sameAsParse(t, c.Parse, readRecords(c.records()), data)
	})
}
