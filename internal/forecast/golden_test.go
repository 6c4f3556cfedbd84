package forecast

import (
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/goldentest"
	"github.com/commitflow/commitflow/internal/snapshot"
)

// goldenShapes fill a query's {from}, {prewhere} and {where} as a View
// does: its parts leaving out superseded rows, or with FINAL.
var goldenShapes = []struct {
	name string
	r    *strings.Replacer
}{
	{"view", strings.NewReplacer("{from}", snapshot.Table, "{prewhere}", "PREWHERE (opp_hash, version) NOT IN _superseded", "{where}", "_part IN @snapshot_parts")},
	{"final", strings.NewReplacer("{from}", snapshot.Table+" FINAL", "{prewhere}", "", "{where}", "1")},
}

// TestGoldenShapes checks the view shape against a View without FINAL.
func TestGoldenShapes(t *testing.T) {
	var v snapshot.View
	if got, want := onView("{from} {where}", &v), goldenShapes[0].r.Replace("{from} {where}"); got != want {
		t.Errorf("a View reads %q; the golden view shape says %q", got, want)
	}
}

// TestSQL compares the forecast's queries with testdata/golden.
func TestSQL(t *testing.T) {
	for _, sh := range goldenShapes {
		for _, q := range []struct{ name, sql string }{
			{"training", trainingSQL},
			{"samples", samplesSQL},
			{"deals", dealsQuery(false, false, nil)},
			{"deals_category_attrs", dealsQuery(false, true, []string{"region", "deal_type"})},
			{"deals_latest", dealsQuery(true, false, nil)},
			{"deals_latest_category_attrs", dealsQuery(true, true, []string{"region", "deal_type"})},
		} {
			goldentest.Check(t, q.name+"_"+sh.name, sh.r.Replace(q.sql))
		}
	}
}
