package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/param"
)

// dealEndpoints are the deal endpoints, their parameters and answers.
var dealEndpoints = []struct {
	path   string
	params []Param
	result reflect.Type
}{
	{"/v1/deals", append(DealListParams(), FormatParams()...), reflect.TypeFor[deals.ListResult]()},
	{"/v1/deals/{id}", append(DealParams(), Param{Name: "id"}), reflect.TypeFor[deals.Deal]()},
	{"/v1/warnings", append(WarningsParams(), FormatParams()...), reflect.TypeFor[deals.WarningsResult]()},
}

func TestOpenAPIDealEndpoints(t *testing.T) {
	doc := openAPIDoc(t)
	for _, e := range dealEndpoints {
		op := mapAt(doc, "paths", e.path, "get")
		if op == nil {
			t.Fatalf("%s: no GET in openapi.yaml", e.path)
		}
		var got []string
		for _, p := range op["parameters"].([]any) {
			got = append(got, resolve(t, doc, p.(map[string]any))["name"].(string))
		}
		want := []string{"tenant"}
		for _, p := range e.params {
			want = append(want, p.Name)
		}
		sort.Strings(got)
		sort.Strings(want)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: openapi parameters %v, handler parameters %v", e.path, got, want)
		}
		responses := mapAt(op, "responses")
		for _, code := range []string{"400", "503"} {
			if resolve(t, doc, mapAt(responses, code)) == nil {
				t.Errorf("%s: no %s response", e.path, code)
			}
		}
		compareSchema(t, doc, e.path, answerType(e.result), mapAt(responses, "200", "content", "application/json", "schema"))
	}
}

// TestDealEndpoints serves the deal endpoints over real ClickHouse: the
// list and its filters, one deal, the warnings, 404s and bad parameters.
func TestDealEndpoints(t *testing.T) {
	f := newFixture(t)
	cfg := Config{Deals: deals.New(f.st, nil, 0)}
	h := f.handler(cfg)
	getJSON := func(target, token string, want int) map[string]any {
		t.Helper()
		rec := serve(h, "GET", target, token)
		if rec.Code != want {
			t.Fatalf("GET %s: %d %s, want %d", target, rec.Code, rec.Body.String(), want)
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		return body
	}
	ids := func(body map[string]any) []string {
		var out []string
		for _, d := range body["deals"].([]any) {
			out = append(out, d.(map[string]any)["opportunity_id"].(string))
		}
		return out
	}

	// As of 2024-03-10: a-1 open (stalled? no: gained 2024-02-10), a-2
	// open and stalled since 2024-03-01, a-3 open; globex's deals never.
	all := getJSON("/v1/deals?as_of=2024-03-10", tokenAcme, 200)
	if got := ids(all); !reflect.DeepEqual(got, []string{"a-2", "a-1", "a-3"}) || all["total"].(float64) != 3 {
		t.Fatalf("deals as of 2024-03-10: %v (total %v), want a-2, a-1, a-3 by amount", got, all["total"])
	}
	for target, want := range map[string][]string{
		"/v1/deals?as_of=2024-03-10&stalled=true":              {"a-2"},
		"/v1/deals?as_of=2024-03-10&stalled=false":             {"a-1", "a-3"},
		"/v1/deals?as_of=2024-03-10&warning=stalled":           {"a-2"},
		"/v1/deals?as_of=2024-03-10&owner=ann":                 {"a-1", "a-3"},
		"/v1/deals?as_of=2024-03-10&team=west":                 {"a-2"},
		"/v1/deals?as_of=2024-05-01&status=won":                {"a-1"},
		"/v1/deals?as_of=2024-05-01&status=lost":               {"a-3"},
		"/v1/deals?as_of=2024-03-10&step=explore":              {"a-3"},
		"/v1/deals?as_of=2024-03-10&page=2&page_size=1":        {"a-1"},
		"/v1/deals?as_of=2024-03-10&page=4&page_size=1":        nil,
		"/v1/deals?as_of=2024-03-10&warning=any&owner=bob":     {"a-2"},
		"/v1/deals?as_of=2024-03-10&single_threaded=true":      nil,
		"/v1/deals?as_of=2024-03-10&warning=no_next_step":      {"a-2"},
		"/v1/deals?as_of=2024-01-06&close_from=2024-09-30":     {"a-1"}, // every close date is 2024-09-30
		"/v1/deals?as_of=2024-01-06&close_to=2024-09-30":       nil,
		"/v1/deals?as_of=2024-01-06&warning=close_date_pushed": nil,
	} {
		if got := ids(getJSON(target, tokenAcme, 200)); !reflect.DeepEqual(got, want) {
			t.Errorf("GET %s: %v, want %v", target, got, want)
		}
	}

	w := getJSON("/v1/warnings?as_of=2024-03-10", tokenAcme, 200)
	if got := ids(w); !reflect.DeepEqual(got, []string{"a-2"}) {
		t.Errorf("warnings: %v, want a-2", got)
	}
	total := w["total"].(map[string]any)
	if total["deals"].(float64) != 1 || total["kinds"].(map[string]any)["stalled"].(float64) != 1 {
		t.Errorf("warnings total: %v", total)
	}
	if len(w["definitions"].(map[string]any)["rules"].([]any)) < len(deals.WarningRules) {
		t.Error("warnings: the rules are not in the definitions")
	}

	d := getJSON("/v1/deals/a-2?as_of=2024-03-10", tokenAcme, 200)
	if d["opportunity_id"] != "a-2" || d["highest_step"] != "time" || d["facts"].(map[string]any)["owner_id"] != "bob" {
		t.Errorf("deal a-2: %v", d)
	}
	if ws := d["warnings"].([]any); len(ws) == 0 || ws[0].(map[string]any)["kind"] != "stalled" {
		t.Errorf("deal a-2 warnings: %v", ws)
	}
	if len(d["timeline"].([]any)) == 0 || len(d["misses"].([]any)) != 1 {
		t.Errorf("deal a-2: timeline %v, misses %v", d["timeline"], d["misses"])
	}

	// 404s: an unknown deal, a deal of another tenant, a deal before its
	// first event, a tenant without data.
	for target, want := range map[string]string{
		"/v1/deals/nope":                     `no deal "nope" in tenant "acme"`,
		"/v1/deals/g-1":                      `no deal "g-1" in tenant "acme"`,
		"/v1/deals/a-1?as_of=2023-01-01":     "has no event at or before as_of",
		"/v1/deals/" + url.PathEscape("a/b"): `no deal "a/b"`,
	} {
		body := getJSON(target, tokenAcme, http.StatusNotFound)
		if !strings.Contains(body["error"].(string), want) {
			t.Errorf("GET %s: %q, want it to say %q", target, body["error"], want)
		}
	}
	open := f.handler(Config{Deals: cfg.Deals, Open: true, Tokens: map[string]string{}})
	rec := serve(open, "GET", "/v1/deals/x?tenant=initech", "")
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `tenant \"initech\" has no data`) {
		t.Errorf("unknown tenant: %d %s", rec.Code, rec.Body.String())
	}

	// Bad parameters are 400 naming the parameter and what is wrong.
	for _, tc := range []struct {
		target, param string
		code          param.Code
	}{
		{"/v1/deals?step=nope", "step", param.Invalid},
		{"/v1/deals?status=pending", "status", param.Invalid},
		{"/v1/deals?stalled=maybe", "stalled", param.Invalid},
		{"/v1/deals?single_threaded=1", "single_threaded", param.Invalid},
		{"/v1/deals?warning=late", "warning", param.Invalid},
		{"/v1/deals?page=0", "page", param.OutOfRange},
		{"/v1/deals?page_size=1001", "page_size", param.OutOfRange},
		{"/v1/deals?close_from=2024-05-01&close_to=2024-04-01", "close_from", param.Conflict},
		{"/v1/deals?close_to=soon", "close_to", param.Invalid},
		{"/v1/deals?as_of=yesterday", "as_of", param.Invalid},
		{"/v1/deals?as_of=2200-01-01", "as_of", param.OutOfRange},
		{"/v1/deals?by=owner", "by", param.Unknown},
		{"/v1/deals?format=csv&table=nope", "table", param.Invalid},
		{"/v1/deals/a-1?page=2", "page", param.Unknown},
		{"/v1/deals/a-1?as_of=2024-03-10&as_of=2024-03-11", "as_of", param.Repeated},
		{"/v1/warnings?kind=late", "kind", param.Invalid},
		{"/v1/warnings?stalled=true", "stalled", param.Unknown},
	} {
		body := getJSON(tc.target, tokenAcme, http.StatusBadRequest)
		if body["param"] != tc.param || body["code"] != string(tc.code) {
			t.Errorf("GET %s: param %v, code %v (%v), want %s, %s", tc.target, body["param"], body["code"], body["error"], tc.param, tc.code)
		}
	}

	// Without a deal read model the endpoints say so.
	if rec := serve(f.handler(Config{}), "GET", "/v1/deals", tokenAcme); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("no read model: %d %s", rec.Code, rec.Body.String())
	}
}
