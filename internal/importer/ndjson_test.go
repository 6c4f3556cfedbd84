package importer

import (
	"strings"
	"testing"
)

func TestParseNDJSON(t *testing.T) {
	const good = `{"v":1,"id":"e1","tenant":"acme","source":"salesforce","type":"opportunity.stage_changed","occurred_at":"2024-01-10T09:00:00Z","opportunity_id":"006A","payload":{"from":"Prospecting","to":"Qualification"}}`
	const other = `{"v":1,"id":"e2","tenant":"globex","source":"salesforce","type":"opportunity.stage_changed","occurred_at":"2024-01-10T09:00:00Z","opportunity_id":"006A","payload":{"to":"Qualification"}}`
	tests := []struct {
		name, data, tenant, want string
	}{
		{"one event, BOM, CRLF", "\xef\xbb\xbf" + good + "\r\n", "acme", `
1: 006A 2024-01-10T09:00 opportunity.stage_changed e1 {"from":"Prospecting","to":"Qualification"}
`},
		{"blank lines keep line numbers; bad lines refused", "\n" + good + "\n\n{\"id\":\n" + strings.Replace(good, `"to":"Qualification"`, `"too":"x"`, 1) + "\n", "acme", `
2: 006A 2024-01-10T09:00 opportunity.stage_changed e1 {"from":"Prospecting","to":"Qualification"}
4: refused: body: invalid JSON at byte 6: unexpected end of JSON input
5: refused: payload: unknown field "too"
`},
		{"another tenant refused", good + "\n" + other, "acme", `
1: 006A 2024-01-10T09:00 opportunity.stage_changed e1 {"from":"Prospecting","to":"Qualification"}
2: refused: tenant: "globex" is not the tenant imported, "acme"
`},
		{"any tenant without one given", other, "", `
1: 006A 2024-01-10T09:00 opportunity.stage_changed e2 {"to":"Qualification"}
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := describe(t, ParseNDJSON([]byte(tc.data), tc.tenant))
			if want := strings.TrimPrefix(tc.want, "\n"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestParseMapping(t *testing.T) {
	tests := []struct {
		name, yaml, err string
	}{
		{"good", genericMapping, ""},
		{"typo", "columns:\n  opportunity_id: a\n  occurred_at: b\n  stgae: c\n", "field stgae not found"},
		{"required columns", "columns:\n  stage: a\n", "columns.opportunity_id and columns.occurred_at are required"},
		{"shape", "shape: rows\ncolumns:\n  opportunity_id: a\n  occurred_at: b\n", `shape "rows"`},
		{"deals good", dealsMapping, ""},
		{"deals required columns", "shape: deals\ncolumns:\n  opportunity_id: a\n  occurred_at: b\n", "columns.created_at and columns.stage are required"},
		{"deals without history columns", "shape: deals\ncolumns:\n  opportunity_id: a\n  created_at: b\n  stage: c\n  row_id: d\n", "for shape history"},
		{"history without deal dates", "columns:\n  opportunity_id: a\n  occurred_at: b\nstage_dates:\n  Demo: d\n", "for shape deals"},
		{"delimiter", "delimiter: ';;'\ncolumns:\n  opportunity_id: a\n  occurred_at: b\n", "want one character"},
		{"encoding", "encoding: latin9\ncolumns:\n  opportunity_id: a\n  occurred_at: b\n", "not utf-8, windows-1252 or auto"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseMapping([]byte(tc.yaml), "acme", "", "")
			switch {
			case tc.err == "" && err != nil:
				t.Fatal(err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func TestHistoryFileErrors(t *testing.T) {
	sf := SalesforceHistory("acme", "")
	for _, tc := range []struct{ name, data, enc, err string }{
		{"empty", "", "", "header: EOF"},
		{"column missing", "Id,OpportunityId,StageName\n", "", `no column "CreatedDate"`},
		{"not utf-8 when told so", "Id\xe9\n", "utf-8", "not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sf
			h.Encoding = tc.enc
			_, err := h.Parse([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}
