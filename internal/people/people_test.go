package people_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/people"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

var (
	ada   = people.Person{ID: "005A", Name: "Ada Lovelace", Email: "ada@example.com", Team: "Enterprise EMEA", Manager: "005M"}
	grace = people.Person{ID: "005B", Name: "Grace Hopper", Email: "grace@example.com", Team: "Mid-Market AMER"}
)

// TestImportAndLookup imports people, imports the same again (nothing
// written), then a change; lookups see the latest record, per tenant, and
// leave unknown ids out.
func TestImportAndLookup(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, store.Options{})
	d := people.New(st.Conn())

	steps := []struct {
		name   string
		tenant string
		ps     []people.Person
		want   people.Counts
		rows   uint64 // rows in the table after the import
	}{
		{"first import", "acme", []people.Person{ada, grace}, people.Counts{New: 2}, 2},
		{"same again", "acme", []people.Person{grace, ada}, people.Counts{Unchanged: 2}, 2},
		{"one changed", "acme", []people.Person{ada, {ID: "005B", Name: "Grace B. Hopper", Email: "grace@example.com"}}, people.Counts{Changed: 1, Unchanged: 1}, 3},
		{"other tenant", "globex", []people.Person{{ID: "005A", Name: "Someone Else"}}, people.Counts{New: 1}, 4},
	}
	for _, s := range steps {
		got, err := d.Import(ctx, s.tenant, s.ps)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got != s.want {
			t.Errorf("%s: %+v, want %+v", s.name, got, s.want)
		}
		var rows uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count() FROM people").Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows != s.rows {
			t.Errorf("%s: %d rows stored, want %d", s.name, rows, s.rows)
		}
	}

	got, err := d.Lookup(ctx, "acme", []string{"005B", "005A", "005A", "nobody", ""})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]people.Person{
		"005A": ada,
		"005B": {ID: "005B", Name: "Grace B. Hopper", Email: "grace@example.com"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("acme lookup:\n got %+v\nwant %+v", got, want)
	}
	if got, err := d.Lookup(ctx, "globex", []string{"005A", "005B"}); err != nil || len(got) != 1 || got["005A"].Name != "Someone Else" {
		t.Errorf("globex lookup: %+v, %v", got, err)
	}
	if got, err := d.Lookup(ctx, "acme", nil); err != nil || len(got) != 0 {
		t.Errorf("lookup of no ids: %+v, %v", got, err)
	}
}

// TestLookupManyIDs looks up more ids than one query takes.
func TestLookupManyIDs(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, store.Options{})
	d := people.New(st.Conn())
	var ps []people.Person
	var ids []string
	for i := range 4500 {
		id := fmt.Sprintf("u%05d", i)
		ids = append(ids, id)
		if i%2 == 0 {
			ps = append(ps, people.Person{ID: id, Name: "Person " + id})
		}
	}
	if _, err := d.Import(ctx, "acme", ps); err != nil {
		t.Fatal(err)
	}
	got, err := d.Lookup(ctx, "acme", ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ps) || got["u04498"].Name != "Person u04498" {
		t.Errorf("%d people found, want %d; u04498: %+v", len(got), len(ps), got["u04498"])
	}
}

func TestImportRefusesDuplicateIDs(t *testing.T) {
	st := storetest.Open(t, store.Options{})
	if _, err := people.New(st.Conn()).Import(context.Background(), "acme", []people.Person{ada, ada}); err == nil {
		t.Error("two records of one id imported")
	}
}
