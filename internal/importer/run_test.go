package importer

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/event"
)

func TestReadCheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.json")
	if err := writeCheckpoint(path, checkpoint{Key: "k", Rows: 7, Line: 9, Order: byDealOrder}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		n    int
		want int
	}{
		{"k", 10, 7},
		{"other file", 10, 0},
		{"k", 5, 0}, // more rows than the file has: start over
	} {
		if got, err := readCheckpoint(path, tc.key, tc.n); err != nil || got != tc.want {
			t.Errorf("readCheckpoint(%q, %d) = %d, %v; want %d", tc.key, tc.n, got, err, tc.want)
		}
	}
	// A checkpoint of an older release counted rows in file order.
	old := filepath.Join(dir, "old.json")
	if err := os.WriteFile(old, []byte(`{"key":"k","rows":7,"line":9}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readCheckpoint(old, "k", 10); err != nil || got != 0 {
		t.Errorf("checkpoint in file order: %d, %v; want 0 (start over)", got, err)
	}
	if got, err := readCheckpoint(filepath.Join(dir, "none.json"), "k", 10); err != nil || got != 0 {
		t.Errorf("no checkpoint: %d, %v; want 0", got, err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readCheckpoint(path, "k", 10); err == nil {
		t.Error("a corrupt checkpoint was read")
	}
}

func TestByDeal(t *testing.T) {
	row := func(line int, deals ...string) Row {
		r := Row{Line: line}
		for _, d := range deals {
			tenant, id, _ := strings.Cut(d, "/")
			r.Events = append(r.Events, event.Event{Tenant: tenant, OpportunityID: id})
		}
		return r
	}
	refused := Row{Line: 99, Err: errors.New("bad amount")}
	for _, tc := range []struct {
		name string
		in   Rows
		want []int // lines
	}{
		{"empty", nil, nil},
		{"one deal", Rows{row(2, "t/a"), row(3, "t/a")}, []int{2, 3}},
		{"interleaved", Rows{row(2, "t/a"), row(3, "t/b"), row(4, "t/a"), row(5, "t/c"), row(6, "t/b")}, []int{2, 4, 3, 6, 5}},
		{"tenants apart", Rows{row(2, "t/a"), row(3, "u/a"), row(4, "t/a")}, []int{2, 4, 3}},
		{"no deal keeps its place", Rows{row(2, "t/a"), row(3), row(4, "t/b"), row(5, "t/a"), row(6, "t/"), row(7, "t/b")}, []int{2, 5, 3, 4, 7, 6}},
		{"refused keeps its place", Rows{row(2, "t/a"), refused, row(4, "t/a")}, []int{2, 4, 99}},
		{"first deal of a row", Rows{row(2, "t/a"), row(3, "t/b", "t/a"), row(4, "t/a")}, []int{2, 4, 3}},
	} {
		var got []int
		for _, r := range byDeal(tc.in) {
			got = append(got, r.Line)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: lines %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestByDealProperties checks on random rows that byDeal permutes them,
// keeps each deal's rows together and in file order, and keeps the deals
// and the rows without one in the order of their first row.
func TestByDealProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for range 200 {
		rows := make(Rows, rng.IntN(300))
		for i := range rows {
			rows[i].Line = i + 2
			if d := rng.IntN(40); d > 0 {
				rows[i].Events = []event.Event{{Tenant: "t", OpportunityID: strconv.Itoa(d)}}
			}
		}
		got := byDeal(rows)
		if len(got) != len(rows) {
			t.Fatalf("%d rows, want %d", len(got), len(rows))
		}
		seen := map[int]bool{}
		var order []string // groups in the order they appear
		last := map[string]int{}
		for _, r := range got {
			if seen[r.Line] {
				t.Fatalf("line %d twice", r.Line)
			}
			seen[r.Line] = true
			k := "line " + strconv.Itoa(r.Line)
			if len(r.Events) > 0 {
				k = r.Events[0].OpportunityID
			}
			if l, ok := last[k]; ok {
				if order[len(order)-1] != k {
					t.Fatalf("deal %s's rows are not together", k)
				}
				if r.Line < l {
					t.Fatalf("deal %s: line %d after %d", k, r.Line, l)
				}
			} else {
				order = append(order, k)
			}
			last[k] = r.Line
		}
		var want []string // groups in the order of their first row
		in := map[string]bool{}
		for _, r := range rows {
			k := "line " + strconv.Itoa(r.Line)
			if len(r.Events) > 0 {
				k = r.Events[0].OpportunityID
			}
			if !in[k] {
				in[k] = true
				want = append(want, k)
			}
		}
		if !slices.Equal(order, want) {
			t.Fatalf("groups in order %v, want %v", order, want)
		}
	}
}
