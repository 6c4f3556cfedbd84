package importer

import (
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/ladder"
)

func TestPipedriveDeals(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		p    PipedriveDeals
		data string // "" for testdata/pipedrive/deals.csv
		want string
	}{
		// Won, lost (with its reason), open with and without a last stage
		// change, in two pipelines and five currencies; an empty value; a
		// won deal without a won time closed at Deal closed on, its later
		// stage change brought back to the close; a won deal with no close
		// time, a deleted deal and a bad value refused.
		{"export", PipedriveDeals{Tenant: "acme"}, "", `
2: 101 2024-01-08T10:15 opportunity.created 101:created {"name":"Acme rollout","amount":15000,"currency":"EUR","close_date":"2024-03-31","pipeline":"Sales","owner_id":"Ana Silva"}
2: 101 2024-03-02T11:00 opportunity.stage_changed 101:stage:00:Negotiations Started {"pipeline":"Sales","to":"Negotiations Started"}
2: 101 2024-03-20T16:30 opportunity.closed_won 101:status:won {}
3: 102 2024-02-01T09:00 opportunity.created 102:created {"name":"Globex, pilot","amount":4200,"currency":"USD","close_date":"2024-04-30","pipeline":"Sales","owner_id":"Ben Ode"}
3: 102 2024-02-20T12:00 opportunity.stage_changed 102:stage:00:Proposal Made {"pipeline":"Sales","to":"Proposal Made"}
3: 102 2024-03-15T10:00 opportunity.closed_lost 102:status:lost {"reason":"No budget"}
4: 103 2024-03-01T08:00 opportunity.created 103:created {"name":"Initech renewal","currency":"GBP","close_date":"2024-06-30","pipeline":"Renewals","owner_id":"Ben Ode"}
4: 103 2024-03-05T14:00 opportunity.stage_changed 103:stage:00:Qualified {"pipeline":"Renewals","to":"Qualified"}
5: 104 2024-03-02T00:00 opportunity.created 104:created {"name":"Hooli","amount":900,"currency":"SEK","pipeline":"Sales","stage":"Lead In","owner_id":"Ana Silva"}
6: 105 2024-01-20T09:00 opportunity.created 105:created {"name":"Pied Piper","amount":1200,"currency":"USD","pipeline":"Sales","owner_id":"Ben Ode"}
6: 105 2024-02-28T17:00 opportunity.stage_changed 105:stage:00:Demo Scheduled {"pipeline":"Sales","to":"Demo Scheduled"}
6: 105 2024-02-28T17:00 opportunity.closed_won 105:status:won {}
7: refused: Deal - Status: won, but neither the won time nor the close time is given
8: refused: Deal - Status: a deleted deal
9: refused: Deal - Value: "1.000,50" is not an amount >= 0
`},
		// Columns without the prefix, times in the account's zone (Tokyo,
		// UTC+9) or with an offset, the default currency, a status that
		// is none, a bad time.
		{"time zone", PipedriveDeals{Tenant: "acme", Currency: "JPY", Location: tokyo}, `ID,Title,Value,Stage,Status,Add time,Lost time,Lost reason,Expected close date
7,Tokyo deal,500000,Proposal Made,lost,2024-04-01 09:00:00,2024-05-01T12:00:00+09:00,Competitor,2024-05-31
8,Osaka deal,1,Qualified,stalled,2024-04-01 09:00:00,,,
9,Kyoto deal,1,Qualified,open,2024-04-31 09:00:00,,,
`, `
2: 7 2024-04-01T00:00 opportunity.created 7:created {"name":"Tokyo deal","amount":500000,"currency":"JPY","close_date":"2024-05-31"}
2: 7 2024-05-01T03:00 opportunity.stage_changed 7:stage:00:Proposal Made {"to":"Proposal Made"}
2: 7 2024-05-01T03:00 opportunity.closed_lost 7:status:lost {"reason":"Competitor"}
3: refused: Status: "stalled" is not open, won, lost or deleted
4: refused: Add time: "2024-04-31 09:00:00" is not a date or time (want 2024-03-27, 2024-03-27 14:30 or ISO 8601)
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.data)
			if tc.data == "" {
				data = vendorFixture(t, "pipedrive/deals.csv")
			}
			checkParsed(t, tc.p, data, tc.want)
		})
	}
}

func TestPipedriveFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, data, want string
	}{
		{"no status", "Deal - ID,Deal - Deal created,Deal - Stage\n1,2024-01-01,a\n", `no column "Deal - Status"`},
		{"no id", "Deal - Title,Deal - Deal created,Deal - Stage,Deal - Status\nx,2024-01-01,a,open\n", `no column "Deal - ID"`},
	} {
		if _, err := (PipedriveDeals{Tenant: "acme"}).Parse([]byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// pipedriveLadder maps the stages of Pipedrive's default pipeline.
const pipedriveLadder = `steps:
  - {key: time, title: Time, stall_after_days: 14}
  - {key: change, title: Change, stall_after_days: 14}
  - {key: review, title: Review, stall_after_days: 14}
  - {key: resolve_concerns, title: Resolve, stall_after_days: 14}
  - {key: decide, title: Decide, stall_after_days: 0}
pipelines:
  - pipeline: "*"
    stages: {Lead In: none, Qualified: change, Demo Scheduled: time, Proposal Made: review, Negotiations Started: resolve_concerns}
won_step: decide
`

// TestPipedriveDerives folds each imported deal: the status decides won
// and lost at their times (the stage names close nothing), and a deal
// gains the steps of its current stage only (the export has no stage
// history).
func TestPipedriveDerives(t *testing.T) {
	l, err := ladder.Parse("pipedrive", []byte(pipedriveLadder))
	if err != nil {
		t.Fatal(err)
	}
	byOpp := eventsByOpp(t, PipedriveDeals{Tenant: "acme"}, vendorFixture(t, "pipedrive/deals.csv"))
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		opp, status string
		closedAt    time.Time
		gained      string
	}{
		{"101", derive.StatusWon, time.Date(2024, 3, 20, 16, 30, 0, 0, time.UTC), "resolve_concerns,decide"},
		{"102", derive.StatusLost, time.Date(2024, 3, 15, 10, 0, 0, 0, time.UTC), "review"},
		{"103", derive.StatusOpen, time.Time{}, "change"},
		{"104", derive.StatusOpen, time.Time{}, ""},
		{"105", derive.StatusWon, time.Date(2024, 2, 28, 17, 0, 0, 0, time.UTC), "time,decide"},
	} {
		out, gained, closes := fold(byOpp[tc.opp], tc.opp, l, now)
		if last := out[len(out)-1]; last.Status != tc.status {
			t.Errorf("%s: %s, want %s", tc.opp, last.Status, tc.status)
		}
		if strings.Join(gained, ",") != tc.gained {
			t.Errorf("%s: gained %v, want %s", tc.opp, gained, tc.gained)
		}
		checkCloses(t, tc.opp, closes, tc.closedAt)
	}
}
