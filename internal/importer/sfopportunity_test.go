package importer

import (
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

func TestSalesforceOpportunity(t *testing.T) {
	tests := []struct {
		file string
		p    Parser
		want string
	}{
		{"Opportunity.csv", SalesforceOpportunity("acme", "", ""), `
2: 0065g00000OPAAAA01 2024-01-05T09:00 opportunity.created 0065g00000OPAAAA01:created {"name":"Acme, Inc. — Platform rollout","account_id":"0015g00000ACCT0001","amount":120000,"currency":"USD","close_date":"2024-04-30","owner_id":"0055g00000USERAA01","lead_source":"Web"}
2: 0065g00000OPAAAA01 2024-04-30T15:00 opportunity.stage_changed 0065g00000OPAAAA01:stage:Closed Won {"to":"Closed Won","probability":1}
2: 0065g00000OPAAAA01 2024-04-30T15:00 opportunity.forecast_category_changed 0065g00000OPAAAA01:stage:Closed Won:forecast_category {"to":"Closed"}
2: 0065g00000OPAAAA01 2024-04-30T15:00 opportunity.closed_won 0065g00000OPAAAA01:stage:Closed Won:closed {"amount":120000,"currency":"USD"}
4: 0065g00000OPAAAA02 2024-02-01T10:00 opportunity.created 0065g00000OPAAAA02:created {"name":"Globex renewal","account_id":"0015g00000ACCT0001","amount":40000,"currency":"EUR","close_date":"2024-03-15","owner_id":"0055g00000USERAA02","lead_source":"Web"}
4: 0065g00000OPAAAA02 2024-03-15T08:00 opportunity.stage_changed 0065g00000OPAAAA02:stage:Closed Lost {"to":"Closed Lost"}
4: 0065g00000OPAAAA02 2024-03-15T08:00 opportunity.forecast_category_changed 0065g00000OPAAAA02:stage:Closed Lost:forecast_category {"to":"Omitted"}
4: 0065g00000OPAAAA02 2024-03-15T08:00 opportunity.probability_changed 0065g00000OPAAAA02:stage:Closed Lost:probability {"from":0,"to":0}
4: 0065g00000OPAAAA02 2024-03-15T08:00 opportunity.closed_lost 0065g00000OPAAAA02:stage:Closed Lost:closed {"amount":40000,"currency":"EUR"}
5: 0065g00000OPAAAA03 2024-03-01T11:30 opportunity.created 0065g00000OPAAAA03:created {"name":"Initech expansion","account_id":"0015g00000ACCT0001","amount":75000,"currency":"GBP","close_date":"2024-06-30","owner_id":"0055g00000USERAA01","lead_source":"Web"}
5: 0065g00000OPAAAA03 2024-04-10T16:20 opportunity.stage_changed 0065g00000OPAAAA03:stage:Negotiation/Review {"to":"Negotiation/Review","probability":0.9}
5: 0065g00000OPAAAA03 2024-04-10T16:20 opportunity.forecast_category_changed 0065g00000OPAAAA03:stage:Negotiation/Review:forecast_category {"to":"Commit"}
6: 0065g00000OPAAAA04 2024-04-01T09:00 opportunity.created 0065g00000OPAAAA04:created {"name":"Umbrella pilot","account_id":"0015g00000ACCT0001","currency":"JPY","close_date":"2024-09-30","stage":"Prospecting","probability":0.1,"forecast_category":"Pipeline","owner_id":"0055g00000USERAA02","lead_source":"Web"}
7: refused: IsWon: true on an opportunity that is not closed (IsClosed false)
8: refused: IsClosed: "yes" is not true or false
9: refused: LastModifiedDate: 2024-03-03T12:00:00.000Z is before CreatedDate 2024-04-01T09:00:00.000Z
10: refused: Id: "0065g00000OPAAAA03" repeats the opportunity at line 5
11: refused: Amount: "-5" is not an amount >= 0
12: refused: IsDeleted: a deleted row (in the recycle bin)
`},
		{"Opportunity-windows1252.csv", SalesforceOpportunity("acme", "", ""), `
2: 0065g00000OPDDDD01 2024-05-02T08:15 opportunity.created 0065g00000OPDDDD01:created {"name":"Müller GmbH – Lizenz, Wartung","account_id":"0015g00000ACCT0001","amount":24500.5,"currency":"EUR","close_date":"2024-06-28","owner_id":"0055g00000USERAA01","lead_source":"Messe"}
2: 0065g00000OPDDDD01 2024-06-28T13:00 opportunity.stage_changed 0065g00000OPDDDD01:stage:Gewonnen – Vertrag unterzeichnet {"to":"Gewonnen – Vertrag unterzeichnet","probability":1}
2: 0065g00000OPDDDD01 2024-06-28T13:00 opportunity.forecast_category_changed 0065g00000OPDDDD01:stage:Gewonnen – Vertrag unterzeichnet:forecast_category {"to":"Closed"}
2: 0065g00000OPDDDD01 2024-06-28T13:00 opportunity.closed_won 0065g00000OPDDDD01:stage:Gewonnen – Vertrag unterzeichnet:closed {"amount":24500.5,"currency":"EUR"}
3: 0065g00000OPDDDD02 2024-05-03T08:15 opportunity.created 0065g00000OPDDDD02:created {"name":"Weiß \u0026 Söhne","account_id":"0015g00000ACCT0001","amount":8000,"currency":"CHF","close_date":"2024-06-10","owner_id":"0055g00000USERAA02","lead_source":"Empfehlung"}
3: 0065g00000OPDDDD02 2024-06-10T07:00 opportunity.stage_changed 0065g00000OPDDDD02:stage:Verloren {"to":"Verloren"}
3: 0065g00000OPDDDD02 2024-06-10T07:00 opportunity.forecast_category_changed 0065g00000OPDDDD02:stage:Verloren:forecast_category {"to":"Omitted"}
3: 0065g00000OPDDDD02 2024-06-10T07:00 opportunity.probability_changed 0065g00000OPDDDD02:stage:Verloren:probability {"from":0,"to":0}
3: 0065g00000OPDDDD02 2024-06-10T07:00 opportunity.closed_lost 0065g00000OPDDDD02:stage:Verloren:closed {"amount":8000,"currency":"CHF"}
`},
		{"OpportunityContactRole.csv", SalesforceContactRoles("acme", ""), `
2: 0065g00000OPAAAA01 2024-01-20T10:00 contact.added 00K5g00000OCR00001 {"contact_id":"0035g00000CONT0001","role":"Economic Buyer","side":"buyer"}
3: 0065g00000OPAAAA01 2024-02-03T09:00 contact.added 00K5g00000OCR00002 {"contact_id":"0035g00000CONT0002","role":"Technical Buyer","side":"buyer"}
4: 0065g00000OPAAAA01 2024-02-03T09:00 contact.added 00K5g00000OCR00003 {"contact_id":"0035g00000CONT0003","role":"Champion","side":"buyer"}
5: 0065g00000OPAAAA01 2024-02-04T09:00 contact.added 00K5g00000OCR00004 {"contact_id":"0035g00000CONT0004","role":"Business User","side":"buyer"}
6: 0065g00000OPAAAA02 2024-02-10T09:00 contact.added 00K5g00000OCR00005 {"contact_id":"0035g00000CONT0005","role":"Legal, Procurement","side":"buyer"}
7: 0065g00000OPAAAA02 2024-02-11T09:00 contact.added 00K5g00000OCR00006 {"contact_id":"0035g00000CONT0006","side":"buyer"}
8: refused: IsDeleted: a deleted row (in the recycle bin)
9: refused: ContactId: missing
10: refused: CreatedDate: "not a date" is not a time (want ISO 8601, e.g. 2024-03-27T14:30:12.000Z or 2024-03-27)
11: refused: Id: "00K5g00000OCR00002" repeats the row at line 3
`},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			rows, err := tc.p.Parse(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			checkRows(t, rows, "acme")
			if got := describe(t, rows); got != strings.TrimPrefix(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", got, strings.TrimPrefix(tc.want, "\n"))
			}
		})
	}
}

// TestSalesforceExportsDerive folds the events of the fixtures with the
// default ladder: an Opportunity export closes its deals by IsClosed and
// IsWon whatever the stage is called (the German org's stages are not in
// the ladder; the close sorts after the stage change at the same instant,
// which would otherwise reopen it), and a field history closes by its
// stage changes, with the amount of that time.
func TestSalesforceExportsDerive(t *testing.T) {
	byOpp := map[string][]event.Event{}
	for _, f := range []struct {
		file string
		p    Parser
	}{
		{"Opportunity-windows1252.csv", SalesforceOpportunity("acme", "", "")},
		{"Opportunity.csv", SalesforceOpportunity("acme", "", "")},
		{"OpportunityFieldHistory.csv", SalesforceFieldHistory("acme", "USD", "")},
	} {
		for opp, evs := range eventsByOpp(t, f.p, readFixture(t, f.file)) {
			byOpp[opp] = append(byOpp[opp], evs...)
		}
	}
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		opp, status string
		at          time.Time
		amount      float64
		currency    string
	}{
		{"0065g00000OPDDDD01", derive.StatusWon, time.Date(2024, 6, 28, 13, 0, 0, 0, time.UTC), 24500.5, "EUR"},
		{"0065g00000OPDDDD02", derive.StatusLost, time.Date(2024, 6, 10, 7, 0, 0, 0, time.UTC), 8000, "CHF"},
		{"0065g00000OPAAAA01", derive.StatusWon, time.Date(2024, 4, 30, 15, 0, 0, 0, time.UTC), 120000, "USD"},
		{"0065g00000OPAAAA03", derive.StatusOpen, time.Time{}, 75000, "GBP"},
		{"0065g00000FHAAAA01", derive.StatusWon, time.Date(2024, 4, 2, 11, 0, 0, 0, time.UTC), 12500, "USD"},
		{"0065g00000FHAAAA02", derive.StatusLost, time.Date(2024, 3, 5, 12, 0, 0, 0, time.UTC), 0, "GBP"},
	} {
		out := derive.Derive("acme", tc.opp, byOpp[tc.opp], ladder.Default(), now)
		var closed []derive.Derived
		for _, d := range out {
			if d.Type == derive.DealClosed || d.Type == derive.DealReopened {
				closed = append(closed, d)
			}
		}
		last := out[len(out)-1]
		if last.Status != tc.status || last.Amount != tc.amount || last.Currency != tc.currency {
			t.Errorf("%s: ends %s with %v %s, want %s with %v %s", tc.opp, last.Status, last.Amount, last.Currency, tc.status, tc.amount, tc.currency)
		}
		if tc.status == derive.StatusOpen {
			if len(closed) != 0 {
				t.Errorf("%s: closes %+v, want none", tc.opp, closed)
			}
			continue
		}
		if len(closed) != 1 || closed[0].Type != derive.DealClosed || closed[0].Status != tc.status || !closed[0].OccurredAt.Equal(tc.at) {
			t.Errorf("%s: closes and reopens %+v, want one %s close at %s", tc.opp, closed, tc.status, tc.at)
		}
	}
}
