package derive

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

func TestLatest(t *testing.T) {
	base := created("e1", t0, "Prospecting", 1000)
	corrected := created("e1", t0, "Prospecting", 999999)
	moved := created("e1", t0.AddDate(0, 1, 0), "Prospecting", 999999)
	resent := base
	resent.ReceivedAt = base.ReceivedAt.Add(time.Hour) // not content
	other := created("e2", t0, "Prospecting", 5)

	type pair struct {
		winner, loser uint64
		fields        []string
	}
	for _, tc := range []struct {
		name      string
		copies    []Copy
		want      []uint64 // sequences kept, in (source, id) order
		conflicts []pair
	}{
		{"one copy", []Copy{{base, 1}}, []uint64{1}, nil},
		{"redelivery", []Copy{{base, 1}, {base, 1}}, []uint64{1}, nil},
		{"identical republish", []Copy{{base, 1}, {resent, 7}}, []uint64{7}, nil},
		{"correction", []Copy{{base, 1}, {corrected, 7}}, []uint64{7},
			[]pair{{7, 1, []string{"amount"}}}},
		{"correction seen first", []Copy{{corrected, 7}, {base, 1}}, []uint64{7},
			[]pair{{7, 1, []string{"amount"}}}},
		{"older copy arrives last", []Copy{{corrected, 1}, {base, 7}}, []uint64{7},
			[]pair{{7, 1, []string{"amount"}}}},
		{"two fields", []Copy{{base, 3}, {moved, 9}, {other, 4}}, []uint64{9, 4},
			[]pair{{9, 3, []string{"amount", "occurred_at"}}}},
		{"three copies", []Copy{{base, 1}, {corrected, 2}, {base, 3}}, []uint64{3},
			[]pair{{3, 2, []string{"amount"}}}},
		{"each copy twice", []Copy{{base, 1}, {corrected, 2}, {base, 1}, {corrected, 2}}, []uint64{2},
			[]pair{{2, 1, []string{"amount"}}}},
		{"another type", []Copy{{base, 1}, {ev("e1", t0, &event.AmountChange{From: 1, To: 2}), 2}}, []uint64{2},
			[]pair{{2, 1, []string{"amount", "close_date", "from", "lead_source", "name", "owner_id", "probability", "product", "segment", "stage", "team", "to", "type"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, conflicts := Latest(slices.Clone(tc.copies))
			var seqs []uint64
			for _, c := range got {
				seqs = append(seqs, c.Seq)
			}
			if !reflect.DeepEqual(seqs, tc.want) {
				t.Errorf("kept %v, want %v", seqs, tc.want)
			}
			var pairs []pair
			for _, c := range conflicts {
				pairs = append(pairs, pair{c.Winner.Seq, c.Loser.Seq, c.Fields})
			}
			if !reflect.DeepEqual(pairs, tc.conflicts) {
				t.Errorf("conflicts %v, want %v", pairs, tc.conflicts)
			}
		})
	}
}

// TestLatestDecidesDerive: derivation follows the copy with the highest
// stream sequence, whichever order the copies come in.
func TestLatestDecidesDerive(t *testing.T) {
	old, fixed := created("e1", t0, "Prospecting", 1000), created("e1", t0, "Prospecting", 999999)
	for _, copies := range [][]Copy{{{old, 1}, {fixed, 2}}, {{fixed, 2}, {old, 1}}} {
		latest, _ := Latest(copies)
		evs := make([]event.Event, len(latest))
		for i, c := range latest {
			evs[i] = c.Event
		}
		out := run(evs, day(1))
		if len(out) == 0 || out[len(out)-1].Amount != 999999 {
			t.Fatalf("derived from %v: %s", copies, lines(out))
		}
	}
}
