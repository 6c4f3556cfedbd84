package metrics

import (
	"testing"

	"github.com/commitflow/commitflow/internal/goldentest"
	"github.com/commitflow/commitflow/internal/snapshot"
)

// goldenShapes are the two ways a query reads opportunity_state: through
// a View (its parts, leaving out superseded rows, one range of ids) and
// with FINAL in three ranges of ids.
var goldenShapes = []struct {
	name string
	sh   shape
}{
	{"view", shape{from: snapshot.Table, prewhere: "PREWHERE (opp_hash, version) NOT IN _superseded", parts: "_part IN @snapshot_parts", conds: []string{"1"}}},
	{"final", shape{from: snapshot.Table + " FINAL", parts: "1", conds: keyRanges(2)}},
}

// oneCurrencyShape is the view shape when every non-zero amount read is
// in one currency, USD: the sums are taken under it (sumCurSQL).
var oneCurrencyShape = func() shape {
	sh := goldenShapes[0].sh
	sh.oneCurrency, sh.cur = true, 0x445355 // "USD" little-endian
	return sh
}()

// TestGoldenShapes checks that the view shape's table and part condition
// are what a View without FINAL gives.
func TestGoldenShapes(t *testing.T) {
	var v snapshot.View
	if sh := goldenShapes[0].sh; v.From() != sh.from || v.Where() != sh.parts {
		t.Errorf("a View reads %q where %q; the golden view shape says %q where %q", v.From(), v.Where(), sh.from, sh.parts)
	}
}

// TestStallsSQL compares the stalls query with its golden files.
func TestStallsSQL(t *testing.T) {
	for _, g := range goldenShapes {
		goldentest.Check(t, "stalls_"+g.name, stallsSQL(g.sh, false))
	}
	goldentest.Check(t, "stalls_latest", stallsSQL(goldenShapes[0].sh, true))
}

// TestMovementSQL compares the movement query with its golden files.
func TestMovementSQL(t *testing.T) {
	for _, g := range goldenShapes {
		goldentest.Check(t, "movement_"+g.name, movementSQL(g.sh))
	}
	goldentest.Check(t, "movement_onecur", movementSQL(oneCurrencyShape))
}

// TestMissedSQL compares the missed query with its golden files.
func TestMissedSQL(t *testing.T) {
	for _, g := range goldenShapes {
		goldentest.Check(t, "missed_"+g.name, missedSQL(g.sh, false))
	}
	goldentest.Check(t, "missed_onecur", missedSQL(oneCurrencyShape, false))
	goldentest.Check(t, "missed_latest", missedSQL(goldenShapes[0].sh, true))
	goldentest.Check(t, "missed_latest_onecur", missedSQL(oneCurrencyShape, true))
}

// goldenBreakdowns are the breakdowns the golden funnel and cycle-time
// queries are made for: none, by a fact, by a period, by both with the
// values outside the top merged, and by a free attribute and a period.
var goldenBreakdowns = []struct {
	name, by, interval string
	keys               keyset
}{
	{"plain", "", "", keyset{}},
	{"owner", "owner", "", keyset{}},
	{"month", "", "month", keyset{}},
	{"owner_week_top", "owner", "week", keyset{other: 3}},
	{"attr_quarter", "attr.region", "quarter", keyset{}},
}

// TestFunnelSQL compares the funnel queries with their golden files.
func TestFunnelSQL(t *testing.T) {
	for _, sh := range goldenShapes {
		for _, b := range goldenBreakdowns {
			g, err := funnelGrouping(b.by, b.interval, false)
			if err != nil {
				t.Fatal(err)
			}
			goldentest.Check(t, "funnel_"+b.name+"_"+sh.name, funnelSQL(sh.sh, g, b.keys, false, true))
		}
		goldentest.Check(t, "funnel_keys_"+sh.name, breakdownKeysSQL(sh.sh, "owner", funnelPopulation, false))
	}
	g, err := funnelGrouping("", "", false)
	if err != nil {
		t.Fatal(err)
	}
	goldentest.Check(t, "funnel_plain_onecur", funnelSQL(oneCurrencyShape, g, keyset{}, false, true))
	// A breakdown of many values: one sum per number.
	if g, err = funnelGrouping("owner", "month", false); err != nil {
		t.Fatal(err)
	}
	goldentest.Check(t, "funnel_owner_month_sums", funnelSQL(goldenShapes[0].sh, g, keyset{}, false, false))
	// As of a time after every event (shape.latestBy).
	for _, b := range goldenBreakdowns {
		g, err := funnelGrouping(b.by, b.interval, true)
		if err != nil {
			t.Fatal(err)
		}
		goldentest.Check(t, "funnel_"+b.name+"_latest", funnelSQL(goldenShapes[0].sh, g, b.keys, true, true))
	}
	goldentest.Check(t, "funnel_keys_latest", breakdownKeysSQL(goldenShapes[0].sh, "owner", funnelPopulation, true))
}

// TestCycleSQL compares the cycle-time queries with their golden files.
func TestCycleSQL(t *testing.T) {
	for _, sh := range goldenShapes {
		for _, b := range goldenBreakdowns {
			g, err := cycleGrouping(b.by, b.interval)
			if err != nil {
				t.Fatal(err)
			}
			goldentest.Check(t, "cycle_"+b.name+"_"+sh.name, cycleSQL(sh.sh, g, 0, b.keys))
		}
		g, err := cycleGrouping("", "")
		if err != nil {
			t.Fatal(err)
		}
		goldentest.Check(t, "cycle_from_step_"+sh.name, cycleSQL(sh.sh, g, 2, keyset{}))
		goldentest.Check(t, "cycle_keys_"+sh.name, breakdownKeysSQL(sh.sh, "owner", cyclePopulation, false))
	}
}

// TestStageHistorySQL compares the stage history queries with their
// golden files.
func TestStageHistorySQL(t *testing.T) {
	for _, sh := range goldenShapes {
		for _, b := range []struct {
			name, by string
			keys     keyset
		}{{"plain", "", keyset{}}, {"owner", "owner", keyset{}}, {"owner_top", "owner", keyset{other: 3}}, {"attr", "attr.region", keyset{}}} {
			goldentest.Check(t, "stagehistory_"+b.name+"_"+sh.name, stageHistorySQL(sh.sh, b.by, b.keys))
		}
		goldentest.Check(t, "stagehistory_keys_"+sh.name, breakdownKeysSQL(sh.sh, "owner", stageHistoryPopulation, false))
	}
}
