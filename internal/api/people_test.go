package api

import (
	"context"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/answercache"
	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/people"
)

// answerType is the JSON of an answer whose result has type typ: the
// result's fields and people.
func answerType(typ reflect.Type) reflect.Type {
	return reflect.StructOf([]reflect.StructField{
		{Name: "Result", Type: typ, Anonymous: true},
		{Name: "People", Type: reflect.TypeFor[map[string]people.Person](), Tag: `json:"people"`},
	})
}

// namedPaths are the answers of the fixture's tenant acme (owners ann and
// bob) that name owners, and the owners each names.
var namedPaths = []struct {
	path   string
	owners []string
}{
	{"/v1/funnel?" + period + "&by=owner", []string{"ann", "bob"}},
	{"/v1/funnel?" + period + "&by=owner&interval=month", []string{"ann", "bob"}},
	{"/v1/funnel?" + period + "&by=team", nil},
	{"/v1/stalls?as_of=2024-07-01", []string{"bob"}},
	{"/v1/missed?" + period, []string{"bob"}},
	{"/v1/movement?" + period, nil},
	{"/v1/cycle-time?" + period + "&by=owner", []string{"ann"}},
	{"/v1/stage-history?as_of=2024-07-01&by=owner", []string{"ann", "bob"}},
	{"/v1/forecast?as_of=2024-03-10&draws=50&by=owner", []string{"ann", "bob"}},
	{"/v1/deals?as_of=2024-03-10", []string{"ann", "bob"}},
	{"/v1/deals?as_of=2024-03-10&owner=bob", []string{"bob"}},
	{"/v1/deals/a-2?as_of=2024-03-10", []string{"bob"}},
	{"/v1/warnings?as_of=2024-03-10", []string{"bob"}},
}

// TestPeopleInAnswers serves every answer that names owners over real
// ClickHouse, with and without the answer cache: before any users import
// every answer has an empty "people"; people imported later show in the
// next answer at once, a cached one included; an owner of no known person
// (bob) is left out, and another tenant's people never show.
func TestPeopleInAnswers(t *testing.T) {
	f := newFixture(t)
	dir := people.New(f.st.Conn())
	for _, cache := range []bool{false, true} {
		cfg := Config{Deals: deals.New(f.st, nil, 0), People: dir}
		if cache {
			cfg.Answers = answercache.New(answercache.Options{MaxBytes: 1 << 20})
		}
		srv := httptest.NewServer(f.handler(cfg))
		for _, p := range namedPaths {
			code, _, body, raw := get(t, srv, p.path, tokenAcme)
			if code != 200 || body["people"] == nil || len(body["people"].(map[string]any)) != 0 {
				t.Errorf("cache %v: GET %s before the import: %d, people %v", cache, p.path, code, body["people"])
			}
			if !strings.HasSuffix(raw, "}\n") {
				t.Errorf("cache %v: GET %s: answer ends %q", cache, p.path, raw[max(0, len(raw)-10):])
			}
		}
		srv.Close()
	}

	ctx := context.Background()
	ann := people.Person{ID: "ann", Name: "Ann Example", Email: "ann@acme.example", Team: "East", Manager: "zoe"}
	if _, err := dir.Import(ctx, "acme", []people.Person{ann, {ID: "zoe", Name: "Zoe Boss"}}); err != nil {
		t.Fatal(err)
	}
	// globex has a person of id bob: never in acme's answers.
	if _, err := dir.Import(ctx, "globex", []people.Person{{ID: "bob", Name: "Globex Bob"}}); err != nil {
		t.Fatal(err)
	}
	for _, cache := range []bool{false, true} {
		cfg := Config{Deals: deals.New(f.st, nil, 0), People: dir}
		if cache {
			cfg.Answers = answercache.New(answercache.Options{MaxBytes: 1 << 20})
		}
		srv := httptest.NewServer(f.handler(cfg))
		for round := range 2 { // with the cache, the second round is answered from it
			for _, p := range namedPaths {
				code, h, body, raw := get(t, srv, p.path, tokenAcme)
				if code != 200 {
					t.Fatalf("GET %s: %d %s", p.path, code, raw)
				}
				if cache && round == 1 && strings.HasPrefix(p.path, "/v1/funnel") && h.Get(HeaderCache) != "hit" {
					t.Errorf("GET %s again: %s %q, want a stored answer", p.path, HeaderCache, h.Get(HeaderCache))
				}
				want := map[string]any{}
				if slices.Contains(p.owners, "ann") {
					want["ann"] = map[string]any{"name": "Ann Example", "email": "ann@acme.example", "team": "East", "manager": "zoe"}
				}
				if got := body["people"]; !reflect.DeepEqual(got, want) {
					t.Errorf("cache %v, round %d: GET %s: people %v, want %v", cache, round, p.path, got, want)
				}
			}
		}
		srv.Close()
	}
}

// TestPeopleImportedAfterTheAnswerWasStored: an answer stored before the
// people were imported names them when it is served again from the cache.
func TestPeopleImportedAfterTheAnswerWasStored(t *testing.T) {
	f := newFixture(t)
	dir := people.New(f.st.Conn())
	srv := httptest.NewServer(f.handler(Config{People: dir, Answers: answercache.New(answercache.Options{MaxBytes: 1 << 20})}))
	defer srv.Close()
	path := "/v1/missed?" + period
	if _, h, body, _ := get(t, srv, path, tokenAcme); h.Get(HeaderCache) != "miss" || len(body["people"].(map[string]any)) != 0 {
		t.Fatalf("first answer: %s, people %v", h.Get(HeaderCache), body["people"])
	}
	if _, err := dir.Import(context.Background(), "acme", []people.Person{{ID: "bob", Name: "Bob Example"}}); err != nil {
		t.Fatal(err)
	}
	_, h, body, raw := get(t, srv, path, tokenAcme)
	if h.Get(HeaderCache) != "hit" || !strings.Contains(raw, `"people":{"bob":{"name":"Bob Example","email":"","team":"","manager":""}}}`) {
		t.Errorf("stored answer after the import: %s, people %v", h.Get(HeaderCache), body["people"])
	}
	if h.Get("Content-Length") != "" && h.Get("Content-Length") != strconv.Itoa(len(raw)) {
		t.Errorf("Content-Length %s, body %d bytes", h.Get("Content-Length"), len(raw))
	}
}

// TestPeopleLookupFails: without the people table the answers are given,
// naming nobody, and the failure is logged.
func TestPeopleLookupFails(t *testing.T) {
	f := newFixture(t)
	if err := f.st.Conn().Exec(context.Background(), "DROP TABLE people"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.handler(Config{People: people.New(f.st.Conn()), Deals: deals.New(f.st, nil, 0)}))
	defer srv.Close()
	for _, path := range []string{"/v1/stalls?as_of=2024-07-01", "/v1/deals?as_of=2024-03-10"} {
		if code, _, body, raw := get(t, srv, path, tokenAcme); code != 200 || len(body["people"].(map[string]any)) != 0 {
			t.Errorf("GET %s: %d %s", path, code, truncate(raw))
		}
	}
	if !strings.Contains(f.log.String(), "people not looked up") {
		t.Errorf("the failed lookup is not logged:\n%s", f.log.String())
	}
}

// TestOwnerIDsOfOneDeal: one deal's answer names its owner and every
// owner its timeline names (a previous owner too), once each.
func TestOwnerIDsOfOneDeal(t *testing.T) {
	d := &deals.Deal{Facts: deals.Facts{OwnerID: "cy"}, Timeline: []deals.TimelineEvent{
		{Kind: "input", Owners: []string{"ann"}}, {Kind: "input", Owners: []string{"ann", "bob"}},
		{Kind: "derived"}, {Kind: "input", Owners: []string{"bob", "cy"}},
	}}
	if got, want := OwnerIDs(d), []string{"ann", "bob", "cy"}; !slices.Equal(got, want) {
		t.Errorf("OwnerIDs = %v, want %v", got, want)
	}
}
