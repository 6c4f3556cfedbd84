package deals

import (
	"testing"

	"github.com/commitflow/commitflow/internal/goldentest"
	"github.com/commitflow/commitflow/internal/snapshot"
)

// goldenShapes are the two ways a list reads opportunity_state: through a
// View (its parts, leaving out superseded rows) and with FINAL.
var goldenShapes = []struct {
	name string
	q    rowsSQL
}{
	{"view", rowsSQL{from: snapshot.Table, prewhere: "PREWHERE (opp_hash, version) NOT IN _superseded", where: "tenant = @tenant AND _part IN @snapshot_parts"}},
	{"final", rowsSQL{from: snapshot.Table + " FINAL", where: "tenant = @tenant AND 1"}},
}

// TestGoldenShapes checks the view shape against a View without FINAL.
func TestGoldenShapes(t *testing.T) {
	var v snapshot.View
	if sh := goldenShapes[0].q; v.From() != sh.from || "tenant = @tenant AND "+v.Where() != sh.where {
		t.Errorf("a View reads %q where %q; the golden view shape says %q where %q", v.From(), v.Where(), sh.from, sh.where)
	}
}

// TestListSQL compares the list queries with testdata/golden: every deal,
// by owner and step, open deals with a warning, stalled and not
// single-threaded, and the legacy single-threaded join.
func TestListSQL(t *testing.T) {
	yes, no := true, false
	for _, sh := range goldenShapes {
		for _, c := range []struct {
			name string
			f    Filter
			step int
		}{
			{"all", Filter{}, -1},
			{"owner_step", Filter{OwnerID: "ann"}, 2},
			{"warning_any", Filter{Warning: "any"}, -1},
			{"stalled_not_single", Filter{Stalled: &yes, SingleThreaded: &no}, -1},
		} {
			facts, warned, _ := filterSQL(c.f, c.step)
			goldentest.Check(t, "list_"+c.name+"_"+sh.name, sh.q.selectDeals(facts, warned))
		}
		legacy := sh.q
		legacy.legacy = true
		goldentest.Check(t, "deals_legacy_"+sh.name, legacy.deals("1"))
	}
}
