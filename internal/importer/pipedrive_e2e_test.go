package importer

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
)

// pipedriveSteps are the steps of pipedriveLadder's stages.
var pipedriveSteps = map[string]string{
	"Qualified": "change", "Demo Scheduled": "time", "Proposal Made": "review", "Negotiations Started": "resolve_concerns",
}

// genPipedriveDeals writes a Pipedrive deals export (the shape of
// testdata/pipedrive/deals.csv) of n deals in two pipelines: won, lost
// and open deals in five currencies, some values empty, some without a
// last stage change, some won with only Deal closed on, and every 13th
// row deleted.
func genPipedriveDeals(n int) []byte {
	stages := []string{"Lead In", "Qualified", "Demo Scheduled", "Proposal Made", "Negotiations Started"}
	currencies := []string{"EUR", "USD", "GBP", "SEK", "CHF"}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"Deal - ID", "Deal - Title", "Deal - Owner", "Deal - Value", "Deal - Currency", "Deal - Pipeline", "Deal - Stage",
		"Deal - Status", "Deal - Deal created", "Deal - Last stage change", "Deal - Won time", "Deal - Lost time", "Deal - Deal closed on",
		"Deal - Lost reason", "Deal - Expected close date"})
	base := time.Date(2024, 2, 1, 8, 30, 0, 0, time.UTC)
	const layout = "2006-01-02 15:04:05"
	for i := range n {
		created := base.Add(time.Duration(i) * 31 * time.Hour)
		stage := stages[i%len(stages)]
		since := created.Add(time.Duration(1+i%9) * 24 * time.Hour)
		closed := since.Add(6 * 24 * time.Hour)
		value := strconv.Itoa(500 + 25*i)
		if i%10 == 4 {
			value = ""
		}
		pipeline := "Sales"
		if i%3 == 1 {
			pipeline = "Partners"
		}
		row := []string{strconv.Itoa(300 + i), "Deal " + strconv.Itoa(i), "Rep " + strconv.Itoa(i%4), value, currencies[i%len(currencies)],
			pipeline, stage, "open", created.Format(layout), since.Format(layout), "", "", "", "", closed.Format(time.DateOnly)}
		if i%4 == 0 {
			row[9] = ""
		}
		switch {
		case i%13 == 12:
			row[7] = "deleted"
		case i%3 == 0:
			row[7], row[10], row[12] = "won", closed.Format(layout), closed.Format(layout)
			if i%2 == 0 {
				row[10] = ""
			}
		case i%3 == 1:
			row[7], row[11], row[12], row[13] = "lost", closed.Format(layout), closed.Format(layout), "Reason "+strconv.Itoa(i%5)
		}
		_ = w.Write(row)
	}
	w.Flush()
	return b.Bytes()
}

// pipedriveOracle reads a Pipedrive deals export as the test understands
// it: a deal reaches the step of its current stage (and decide when won);
// it is won or lost as its status says; its amount and currency are the
// row's; a deleted deal is not imported.
func pipedriveOracle(t *testing.T, data []byte) oracle {
	t.Helper()
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	steps := map[string]int{}
	for i, k := range ladderSteps(mustLadder(t, pipedriveLadder)) {
		steps[k] = i + 1
	}
	o := oracle{facts: map[string]dealFacts{}, highest: map[string]int{}}
	for _, r := range recs[1:] {
		if r[7] == "deleted" {
			continue
		}
		f := dealFacts{status: r[7], stage: r[6], currency: r[4]}
		f.amount, _ = strconv.ParseFloat(r[3], 64)
		h := steps[pipedriveSteps[r[6]]]
		if f.status == derive.StatusWon {
			h = max(h, steps["decide"])
		}
		o.facts[r[0]], o.highest[r[0]] = f, h
	}
	return o
}

// TestPipedriveDealsEndToEnd imports a generated Pipedrive deals export
// twice through NATS into ClickHouse, with the workers deriving under a
// ladder of Pipedrive's default stages: one copy of each event is
// stored, and every deal's final status, stage, amount and currency and
// the funnel's cohorts are those the test reads from the file's rows.
func TestPipedriveDealsEndToEnd(t *testing.T) {
	s := startDeriveStack(t, mustLadder(t, pipedriveLadder))
	data := genPipedriveDeals(150)
	rows, err := PipedriveDeals{Tenant: "acme"}.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Err != nil && r.Err.Error() != "Deal - Status: a deleted deal" {
			t.Fatalf("line %d refused: %v", r.Line, r.Err)
		}
	}
	n := s.importTwice(t, rows, Key(data, "pipedrive-deals"), "acme")
	t.Logf("%d rows, %d events", len(rows), n)
	pipedriveOracle(t, data).check(t, s, "acme")
}
