package report

import (
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/metrics"
)

// TestWriteNamed: a table shows each owner whose name is known as
// "Name (id)" — in the stalled deals, the misses by owner and the
// forecast by owner — and the others by id; csv keeps the ids.
func TestWriteNamed(t *testing.T) {
	stalls := answer(t, "stalls", "stalls").(*metrics.StallsResult)
	missed := answer(t, "missed", "missed").(*metrics.MissedResult)
	fc := answer(t, "forecast", "forecast").(*forecast.Result)
	if len(stalls.Deals) == 0 || len(missed.ByOwner) == 0 || len(fc.Pipeline.ByOwner) == 0 {
		t.Fatal("the answers of testdata name no owner")
	}
	for _, tt := range []struct {
		metric, table, owner string
		res                  any
	}{
		{"stalls", "deals", stalls.Deals[0].OwnerID, stalls},
		{"missed", "by_owner", missed.ByOwner[0].Key, missed},
		{"forecast", "pipeline", fc.Pipeline.ByOwner[0].Key, fc},
	} {
		names := map[string]string{tt.owner: "Ann Example"}
		var table, csv strings.Builder
		if err := WriteNamed(&table, tt.metric, tt.res, "table", tt.table, names); err != nil {
			t.Fatal(err)
		}
		if err := WriteNamed(&csv, tt.metric, tt.res, "csv", tt.table, names); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(table.String(), "Ann Example ("+tt.owner+")") {
			t.Errorf("%s table does not name %s:\n%s", tt.metric, tt.owner, table.String())
		}
		if strings.Contains(csv.String(), "Ann Example") || !strings.Contains(csv.String(), tt.owner) {
			t.Errorf("%s csv:\n%s", tt.metric, csv.String())
		}
	}
}
