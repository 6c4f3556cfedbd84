package importer

import (
	"os"
	"testing"
)

func FuzzPipedriveDeals(f *testing.F) {
	data, err := os.ReadFile("testdata/pipedrive/deals.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("ID,Title,Value,Stage,Status,Add time,Won time,Last stage change\n1,x,1,Won,won,2024-01-01,2024-01-02 10:00,2024-01-03\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := PipedriveDeals{Tenant: "acme", Currency: "EUR"}
		rows, err := p.Parse(data)
		if err == nil {
			checkRows(t, rows, "acme")
			uniqueIDs(t, rows)
		}
		sameAsParse(t, p.Parse, readRecords(p.records()), data)
	})
}
