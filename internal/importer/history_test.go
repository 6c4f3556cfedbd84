package importer

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// describe renders rows as "line: type id payload" and "line: refused:
// reason" lines, one per event or refusal.
func describe(t *testing.T, rows Rows) string {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		if r.Err != nil {
			fmt.Fprintf(&b, "%d: refused: %v\n", r.Line, r.Err)
			continue
		}
		for _, ev := range r.Events {
			if err := ev.Validate(); err != nil {
				t.Errorf("line %d: invalid event %s: %v", r.Line, ev.ID, err)
			}
			p, err := json.Marshal(ev.Payload)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%d: %s %s %s %s %s\n", r.Line, ev.OpportunityID, ev.OccurredAt.Format("2006-01-02T15:04"), ev.Type, ev.ID, p)
		}
	}
	return b.String()
}

// to1252 encodes s, whose runes must all be in Windows-1252, in it.
func to1252(t *testing.T, s string) []byte {
	t.Helper()
	rev := map[rune]byte{}
	for i, r := range cp1252 {
		rev[r] = byte(0x80 + i)
	}
	var out []byte
	for _, r := range s {
		switch {
		case r < 0x80 || (r >= 0xa0 && r <= 0xff):
			out = append(out, byte(r))
		case rev[r] != 0:
			out = append(out, rev[r])
		default:
			t.Fatalf("%q is not in Windows-1252", r)
		}
	}
	return out
}

func TestHistory(t *testing.T) {
	sf := SalesforceHistory("acme", "USD")
	generic, err := ParseMapping([]byte(genericMapping), "acme", "", "")
	if err != nil {
		t.Fatal(err)
	}
	deals, err := ParseMapping([]byte(dealsMapping), "acme", "", "")
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := ParseMapping([]byte(attrMapping), "acme", "", "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		h    Parser
		data []byte
		want string
	}{
		{"salesforce lifecycle, rows out of time order", sf, []byte(sfHistory), `
2: 0065g00000AAAAAAA1 2024-01-10T09:00 opportunity.created 0085g00000H1AAAAA1 {"amount":10000,"currency":"USD","close_date":"2024-06-30","stage":"Prospecting","probability":0.1,"forecast_category":"Pipeline"}
3: 0065g00000AAAAAAA1 2024-02-01T10:30 opportunity.stage_changed 0085g00000H1AAAAA2:stage {"from":"Prospecting","to":"Qualification","probability":0.1}
4: 0065g00000AAAAAAA1 2024-05-20T08:00 opportunity.stage_changed 0085g00000H1AAAAA6:stage {"from":"Proposal/Price Quote","to":"Closed Won","probability":1}
4: 0065g00000AAAAAAA1 2024-05-20T08:00 opportunity.close_date_changed 0085g00000H1AAAAA6:close_date {"from":"2024-07-31","to":"2024-05-20"}
4: 0065g00000AAAAAAA1 2024-05-20T08:00 opportunity.forecast_category_changed 0085g00000H1AAAAA6:forecast_category {"from":"BestCase","to":"Closed"}
5: 0065g00000AAAAAAA1 2024-02-15T14:00 opportunity.amount_changed 0085g00000H1AAAAA3:amount {"from":10000,"to":12500,"currency":"USD"}
6: 0065g00000AAAAAAA1 2024-03-01T16:45 opportunity.stage_changed 0085g00000H1AAAAA4:stage {"from":"Qualification","to":"Proposal/Price Quote","probability":0.75}
6: 0065g00000AAAAAAA1 2024-03-01T16:45 opportunity.close_date_changed 0085g00000H1AAAAA4:close_date {"from":"2024-06-30","to":"2024-07-31"}
6: 0065g00000AAAAAAA1 2024-03-01T16:45 opportunity.forecast_category_changed 0085g00000H1AAAAA4:forecast_category {"from":"Pipeline","to":"BestCase"}
7: 0065g00000AAAAAAA1 2024-04-02T11:00 opportunity.updated 0085g00000H1AAAAA5:probability {"probability":0.8}
8: 0065g00000AAAAAAA2 2024-01-15T12:00 opportunity.created 0085g00000H2AAAAA1 {"currency":"USD","close_date":"2024-03-31","stage":"Prospecting","probability":0.1,"forecast_category":"Pipeline"}
9: 0065g00000AAAAAAA2 2024-03-05T12:00 opportunity.stage_changed 0085g00000H2AAAAA2:stage {"from":"Prospecting","to":"Closed Lost"}
9: 0065g00000AAAAAAA2 2024-03-05T12:00 opportunity.amount_changed 0085g00000H2AAAAA2:amount {"from":0,"to":5000,"currency":"USD"}
9: 0065g00000AAAAAAA2 2024-03-05T12:00 opportunity.close_date_changed 0085g00000H2AAAAA2:close_date {"from":"2024-03-31","to":"2024-03-05"}
9: 0065g00000AAAAAAA2 2024-03-05T12:00 opportunity.forecast_category_changed 0085g00000H2AAAAA2:forecast_category {"from":"Pipeline","to":"Omitted"}
9: 0065g00000AAAAAAA2 2024-03-05T12:00 opportunity.probability_changed 0085g00000H2AAAAA2:probability {"from":0.1,"to":0}
`},
		{"salesforce refused rows", sf, []byte(sfHistoryBad), `
2: 0065g00000AAAAAAA3 2024-01-10T09:00 opportunity.created 0085g00000H3AAAAA1 {"amount":100,"currency":"USD","close_date":"2024-06-30","stage":"Prospecting","probability":0.1,"forecast_category":"Pipeline"}
3: refused: IsDeleted: a deleted row (in the recycle bin)
4: refused: OpportunityId: missing
5: refused: CreatedDate: "12/01/2024" is not a time (want ISO 8601, e.g. 2024-03-27T14:30:12.000Z or 2024-03-27)
6: refused: Amount: "1.000,00" is not an amount >= 0
7: refused: Id: "0085g00000H3AAAAA1" repeats the row at line 2
8: refused: 6 fields, the header has 12
9: refused: Probability: "150" is not a probability
10: refused: occurred_at: 1960-01-16T09:00:00Z is out of range (years 1971..2105)
`},
		{"windows-1252, multi-currency, German stages", sf, to1252(t, sfHistoryEUR), `
2: 0065g00000AAAAAAA4 2024-01-10T09:00 opportunity.created 0085g00000H4AAAAA1 {"amount":2000,"currency":"EUR","close_date":"2024-06-30","stage":"Qualifizierung","probability":0.1,"forecast_category":"Pipeline"}
3: 0065g00000AAAAAAA4 2024-01-20T09:00 opportunity.stage_changed 0085g00000H4AAAAA2:stage {"from":"Qualifizierung","to":"Angebot – Prüfung","probability":0.5}
3: 0065g00000AAAAAAA4 2024-01-20T09:00 opportunity.amount_changed 0085g00000H4AAAAA2:amount {"from":2000,"to":2500,"currency":"EUR"}
3: 0065g00000AAAAAAA4 2024-01-20T09:00 opportunity.forecast_category_changed 0085g00000H4AAAAA2:forecast_category {"from":"Pipeline","to":"BestCase"}
`},
		{"utf-8 with a byte-order mark", sf, append([]byte("\xef\xbb\xbf"), sfHistoryEUR[:strings.Index(sfHistoryEUR, "\n\"0085g00000H4AAAAA2")+1]...), `
2: 0065g00000AAAAAAA4 2024-01-10T09:00 opportunity.created 0085g00000H4AAAAA1 {"amount":2000,"currency":"EUR","close_date":"2024-06-30","stage":"Qualifizierung","probability":0.1,"forecast_category":"Pipeline"}
`},
		{"generic mapping, no row id", generic, []byte(genericHistory), `
2: D-1 2024-01-03T09:15 opportunity.created row-c64c05b12f8fba5b8bce4b95 {"amount":1000,"currency":"EUR","close_date":"2024-03-31","stage":"Lead","owner_id":"alice"}
3: D-1 2024-01-10T10:00 opportunity.stage_changed row-a51330d080f7822f7ef875a0:stage {"from":"Lead","to":"Demo"}
4: D-1 2024-01-12T10:00 opportunity.owner_changed row-84372237baf63c84cb0bdaa9:owner {"from":"alice","to":"bob"}
5: D-1 2024-02-20T17:30 opportunity.stage_changed row-5256152d833bc5d089614cdf:stage {"from":"Demo","to":"Won"}
5: D-1 2024-02-20T17:30 opportunity.amount_changed row-5256152d833bc5d089614cdf:amount {"from":1000,"to":1200,"currency":"EUR"}
6: D-2 2024-01-05T09:00 opportunity.created row-ec03e14326d8237098bd2185 {"stage":"Lead","owner_id":"carol"}
7: refused: Changed: "not a date" is not a time (want 02/01/2006 15:04 or ISO 8601)
`},
		{"generic mapping with attributes", attrs, []byte(attrHistory), `
2: D-1 2024-01-03T00:00 opportunity.created c1 {"stage":"Lead","attributes":{"deal_type":"new","region":"EMEA"}}
3: D-1 2024-01-10T00:00 opportunity.stage_changed c2:stage {"from":"Lead","to":"Demo"}
4: D-1 2024-01-12T00:00 opportunity.updated c3:attributes {"attributes":{"region":"APAC"}}
5: refused: Region: 257 characters, at most 256
`},
		{"generic mapping, one row per deal", deals, []byte(dealsExport), `
2: 101 2024-01-02T00:00 opportunity.created 101:created {"name":"Acme rollout","amount":5000,"currency":"USD","owner_id":"u1"}
2: 101 2024-01-10T00:00 opportunity.stage_changed 101:stage:00:Demo {"to":"Demo"}
2: 101 2024-02-01T00:00 opportunity.stage_changed 101:stage:01:Proposal {"from":"Demo","to":"Proposal"}
2: 101 2024-03-01T00:00 opportunity.stage_changed 101:stage:02:Closed Won {"from":"Proposal","to":"Closed Won"}
3: 102 2024-01-05T00:00 opportunity.created 102:created {"name":"Globex pilot","amount":2000,"currency":"USD","owner_id":"u2"}
3: 102 2024-01-20T00:00 opportunity.stage_changed 102:stage:00:Demo {"to":"Demo"}
3: 102 2024-01-20T00:00 opportunity.stage_changed 102:stage:01:Proposal {"from":"Demo","to":"Proposal"}
4: 103 2024-02-05T00:00 opportunity.created 103:created {"name":"Initech","currency":"USD","stage":"Demo","owner_id":"u2"}
5: 104 2024-02-06T00:00 opportunity.created 104:created {"name":"Umbrella","amount":900,"currency":"USD","owner_id":"u1"}
5: 104 2024-02-08T00:00 opportunity.stage_changed 104:stage:00:Demo {"to":"Demo"}
5: 104 2024-02-08T00:00 opportunity.stage_changed 104:stage:02:Negotiation {"from":"Demo","to":"Negotiation"}
6: refused: Deal ID: "101" repeats the deal at line 2
7: refused: Date entered Demo: "someday" is not a time (want ISO 8601, e.g. 2024-03-27T14:30:12.000Z or 2024-03-27)
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := tc.h.Parse(tc.data)
			if err != nil {
				t.Fatal(err)
			}
			got := describe(t, rows)
			if got != strings.TrimPrefix(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", got, strings.TrimPrefix(tc.want, "\n"))
			}
		})
	}
}

// TestRepeated: an id an earlier row had is refused with that row's line,
// the id's column and the noun for that row; a new id, or one differing
// only in case or space, is not.
func TestRepeated(t *testing.T) {
	seen := map[string]int{"006A": 2, "0085g00000H3AAAAA1": 7}
	for _, tt := range []struct {
		column, noun, id string
		want             string // "" for nil
	}{
		{"Id", "row", "006A", `Id: "006A" repeats the row at line 2`},
		{"HistoryId", "row", "0085g00000H3AAAAA1", `HistoryId: "0085g00000H3AAAAA1" repeats the row at line 7`},
		{"Id", "opportunity", "006A", `Id: "006A" repeats the opportunity at line 2`},
		{"Deal ID", "deal", "006A", `Deal ID: "006A" repeats the deal at line 2`},
		{"Id", "row", "006B", ""},
		{"Id", "opportunity", "006a", ""},
		{"Id", "row", " 006A", ""},
		{"Id", "row", "", ""},
	} {
		err := repeated(seen, tt.column, tt.noun, tt.id)
		if got := fmt.Sprint(err); tt.want == "" && err != nil || tt.want != "" && got != tt.want {
			t.Errorf("repeated(%s, %s, %q) = %v, want %q", tt.column, tt.noun, tt.id, err, tt.want)
		}
	}
}
