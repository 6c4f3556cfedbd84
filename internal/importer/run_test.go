package importer

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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

// recorder is a Publisher that keeps what it was given.
type recorder struct {
	mu  sync.Mutex
	evs []event.Event
}

func (p *recorder) PublishBatch(_ context.Context, evs []event.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.evs = append(p.evs, evs...)
	return nil
}

// TestRunStrict checks that with Strict a file with a refused row
// publishes nothing, fails naming the first refused row, lists every
// refused row and leaves no checkpoint; without it the other rows are
// published deal by deal.
func TestRunStrict(t *testing.T) {
	rows := Rows{
		{Line: 2, Events: []event.Event{{ID: "a1", Tenant: "t", OpportunityID: "a"}}},
		{Line: 3, Events: []event.Event{{ID: "b1", Tenant: "t", OpportunityID: "b"}}},
		{Line: 4, Err: errors.New(`column "Amount": "12,5x" is not a number`)},
		{Line: 5, Events: []event.Event{{ID: "a2", Tenant: "t", OpportunityID: "a"}}},
		{Line: 6, Err: errors.New(`column "StageName" is empty`)},
	}
	cp := filepath.Join(t.TempDir(), "cp.json")
	pub := &recorder{}
	sum, err := Run(t.Context(), rows, "k", pub, Options{Checkpoint: cp, Strict: true})
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), "12,5x") || !strings.Contains(err.Error(), "nothing published") {
		t.Errorf("strict: err = %v, want line 4 named, its reason, and nothing published", err)
	}
	if len(pub.evs) != 0 || sum.Events != 0 {
		t.Errorf("strict: %d events published, %d counted; want none", len(pub.evs), sum.Events)
	}
	if want := []Refusal{{4, `column "Amount": "12,5x" is not a number`}, {6, `column "StageName" is empty`}}; !slices.Equal(sum.Refused, want) {
		t.Errorf("strict: refused %v, want %v", sum.Refused, want)
	}
	if _, err := os.Stat(cp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("strict: checkpoint left: %v", err)
	}

	sum, err = Run(t.Context(), rows, "k", pub, Options{Checkpoint: cp})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range pub.evs {
		ids = append(ids, ev.ID)
	}
	if want := []string{"a1", "a2", "b1"}; !slices.Equal(ids, want) || sum.Events != 3 || len(sum.Refused) != 2 {
		t.Errorf("not strict: published %v, %d counted, %d refused; want %v, 3, 2", ids, sum.Events, len(sum.Refused), want)
	}
}
