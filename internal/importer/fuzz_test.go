package importer

import (
	"testing"
)

// checkRows is what every parser promises whatever its input: rows in
// ascending line order, each refused with a reason or turned into valid
// events of the tenant imported.
func checkRows(t *testing.T, rows Rows, tenant string) {
	t.Helper()
	last := 0
	for _, r := range rows {
		if r.Line < last || r.Line < 1 {
			t.Fatalf("line %d after line %d", r.Line, last)
		}
		last = r.Line
		if r.Err != nil {
			if len(r.Events) > 0 {
				t.Fatalf("line %d: refused with events", r.Line)
			}
			continue
		}
		for _, ev := range r.Events {
			if err := ev.Validate(); err != nil {
				t.Fatalf("line %d: invalid event: %v", r.Line, err)
			}
			if tenant != "" && ev.Tenant != tenant {
				t.Fatalf("line %d: tenant %q", r.Line, ev.Tenant)
			}
		}
	}
}

func FuzzNDJSON(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"e1","tenant":"acme","source":"salesforce","type":"opportunity.stage_changed","occurred_at":"2024-01-10T09:00:00Z","opportunity_id":"006A","payload":{"to":"Q"}}` + "\n\n{\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkRows(t, ParseNDJSON(data, "acme"), "acme")
	})
}

func FuzzSalesforceHistory(f *testing.F) {
	f.Add([]byte(sfHistory))
	f.Add([]byte(sfHistoryBad))
	f.Add([]byte(sfHistoryEUR))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := SalesforceHistory("acme", "USD").Parse(data)
		if err == nil {
			checkRows(t, rows, "acme")
		}
	})
}

func FuzzMappedHistory(f *testing.F) {
	h, err := ParseMapping([]byte(genericMapping), "acme", "", "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(genericHistory))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := h.Parse(data)
		if err == nil {
			checkRows(t, rows, "acme")
		}
	})
}

func FuzzMappedDeals(f *testing.F) {
	p, err := ParseMapping([]byte(dealsMapping), "acme", "", "")
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(dealsExport))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := p.Parse(data)
		if err == nil {
			checkRows(t, rows, "acme")
		}
		sameAsParse(t, p.Parse, readRecords(p.(Deals).records()), data)
	})
}

func FuzzMapping(f *testing.F) {
	f.Add([]byte(genericMapping), []byte(genericHistory))
	f.Add([]byte(dealsMapping), []byte(dealsExport))
	f.Fuzz(func(t *testing.T, mapping, data []byte) {
		h, err := ParseMapping(mapping, "acme", "", "")
		if err != nil {
			return
		}
		if rows, err := h.Parse(data); err == nil {
			checkRows(t, rows, "acme")
		}
	})
}
