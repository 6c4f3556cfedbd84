package importer

import (
	"bytes"
	"os"
	"testing"
)

// uniqueIDs fails t if two events of rows share an id: the stream would
// drop one as a duplicate.
func uniqueIDs(t *testing.T, rows Rows) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range rows {
		for _, ev := range r.Events {
			if line, ok := seen[ev.ID]; ok {
				t.Fatalf("line %d: event id %q of line %d again", r.Line, ev.ID, line)
			}
			seen[ev.ID] = r.Line
		}
	}
}

func FuzzHubSpotDeals(f *testing.F) {
	pipelines := hubspotPipelines(f)
	// The fixtures' headers and first rows: whole files make the engine
	// spend its time minimizing.
	for _, name := range []string{"testdata/hubspot/deals.csv", "testdata/hubspot/deals-internal.csv"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		lines := bytes.SplitAfter(data, []byte("\n"))
		f.Add(bytes.Join(lines[:min(3, len(lines))], nil))
	}
	f.Add([]byte("Record ID,Create Date,Deal Stage,Date entered 'A (P)',Date exited 'A (P)',hs_date_entered_a\n1,2024-01-01,A,2024-01-01,2024-01-01,2024-01-02\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, p := range []HubSpotDeals{
			{Tenant: "acme", Currency: "USD"},
			{Tenant: "acme", Currency: "USD", Pipelines: pipelines},
		} {
			rows, err := p.Parse(data)
			if err == nil {
				checkRows(t, rows, "acme")
				uniqueIDs(t, rows)
			}
			sameAsParse(t, p.Parse, readRecords(p.records()), data)
		}
	})
}

func FuzzHubSpotPipelines(f *testing.F) {
	pl, err := os.ReadFile("testdata/hubspot/pipelines.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pl)
	f.Add([]byte(`{"id":"p","label":"P","stages":[{"id":"s","label":"S","metadata":{"isClosed":true,"probability":1}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseHubSpotPipelines(data)
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.ID == "" || p.Label == "" || len(p.Stages) == 0 {
				t.Fatalf("pipeline %+v accepted", p)
			}
			for _, s := range p.Stages {
				if s.ID == "" || s.Label == "" || s.Probability < 0 || s.Probability > 1 {
					t.Fatalf("stage %+v accepted", s)
				}
			}
		}
	})
}
