package importer

import "testing"

func FuzzSalesforceContactRoles(f *testing.F) {
	f.Add(readFixture(f, "OpportunityContactRole.csv"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := SalesforceContactRoles("acme", "").Parse(data)
		if err == nil {
			checkRows(t, rows, "acme")
		}
	})
}
