package api

import (
	"context"
	"encoding/csv"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/answercache"
	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/report"
)

// csvPaths are a request of every endpoint that answers CSV, by report
// name.
var csvPaths = []struct{ name, path string }{
	{"funnel", "/v1/funnel?" + period},
	{"funnel", "/v1/funnel?" + period + "&by=owner&interval=month"},
	{"stalls", "/v1/stalls?as_of=2024-07-01"},
	{"missed", "/v1/missed?" + period},
	{"movement", "/v1/movement?" + period},
	{"cycle-time", "/v1/cycle-time?" + period},
	{"stage-history", "/v1/stage-history?as_of=2024-07-01"},
	{"forecast", "/v1/forecast?as_of=2024-07-01&backtest=2024-03-01&horizon_days=90&draws=200"},
	{"deals", "/v1/deals?as_of=2024-03-10"},
	{"warnings", "/v1/warnings?as_of=2024-03-10"},
}

// request GETs target from h with the token and the header given.
func request(h http.Handler, target, token string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", target, nil)
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestCSVAnswers: format=csv (or Accept: text/csv) on every metrics
// endpoint and the deal and warnings lists answers each table of the
// answer exactly as `commitflow report --format csv --table T` prints the
// JSON answer, as an attachment named for the endpoint, tenant and date;
// with the answer cache the CSV is made from the cached answer.
func TestCSVAnswers(t *testing.T) {
	f := newFixture(t)
	rd := deals.New(f.st, nil, 0)
	plain := f.handler(Config{Deals: rd})
	cache := answercache.New(answercache.Options{MaxBytes: 16 << 20})
	cached := f.handler(Config{Deals: rd, Answers: cache})
	for _, tt := range csvPaths {
		rec := request(plain, tt.path, tokenAcme, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", tt.path, rec.Code, rec.Body.String())
		}
		res, _, err := DecodeAnswer(tt.name, rec.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		tables := report.Tables(tt.name, res)
		if len(tables) != len(report.TableNames(tt.name)) {
			t.Errorf("%s: tables %v, want every one of %v", tt.path, tables, report.TableNames(tt.name))
		}
		for i, table := range tables {
			var want strings.Builder
			if err := report.Write(&want, tt.name, res, "csv", table); err != nil {
				t.Fatal(err)
			}
			suffix := ""
			if i > 0 {
				suffix = "." + table
			}
			date := "2024-07-01"
			if tt.name == "deals" || tt.name == "warnings" {
				date = "2024-03-10"
			}
			file := tt.name + suffix + "-acme-" + date + ".csv"
			for _, h := range []struct {
				name    string
				handler http.Handler
				cache   string
			}{{"plain", plain, ""}, {"cached", cached, "hit"}} {
				target := tt.path + "&format=csv&table=" + table
				if h.cache != "" && tt.name != "deals" && tt.name != "warnings" {
					// The JSON answer first: the CSV is made from it.
					if rec := request(h.handler, tt.path, tokenAcme, nil); rec.Code != http.StatusOK {
						t.Fatalf("GET %s: %d", tt.path, rec.Code)
					}
				}
				rec := request(h.handler, target, tokenAcme, nil)
				if rec.Code != http.StatusOK {
					t.Fatalf("%s GET %s: %d %s", h.name, target, rec.Code, rec.Body.String())
				}
				hd := rec.Header()
				if got := rec.Body.String(); got != want.String() {
					t.Errorf("%s GET %s:\n%s\nwant\n%s", h.name, target, got, want.String())
				}
				if ct := hd.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
					t.Errorf("%s GET %s: Content-Type %q", h.name, target, ct)
				}
				if cd := hd.Get("Content-Disposition"); cd != `attachment; filename="`+file+`"` {
					t.Errorf("%s GET %s: Content-Disposition %q, want file %s", h.name, target, cd, file)
				}
				if got := len(hd.Values("Link")); got != len(tables)-1 {
					t.Errorf("%s GET %s: %d links %v, want one to each other table", h.name, target, got, hd.Values("Link"))
				}
				if h.cache != "" && tt.name != "deals" && tt.name != "warnings" && hd.Get(HeaderCache) != h.cache {
					t.Errorf("%s GET %s: %s %q, want %s", h.name, target, HeaderCache, hd.Get(HeaderCache), h.cache)
				}
			}
		}
	}

	// Accept: text/csv asks for the main table; a browser's Accept and
	// none are JSON.
	for accept, want := range map[string]string{
		"text/csv":                       "text/csv; charset=utf-8",
		"text/csv, */*;q=0.1":            "text/csv; charset=utf-8",
		"application/json;q=0.5, text/*": "text/csv; charset=utf-8",
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": "application/json",
		"":                                 "application/json",
		"text/csv;q=0.5, application/json": "application/json",
	} {
		rec := request(plain, "/v1/stalls?as_of=2024-07-01", tokenAcme, http.Header{"Accept": {accept}})
		if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusOK || ct != want {
			t.Errorf("Accept %q: %d %s, want %s", accept, rec.Code, ct, want)
		}
		if vary := rec.Header().Values("Vary"); !slices.Contains(vary, "Accept") {
			t.Errorf("Accept %q: Vary %q lacks Accept", accept, vary)
		}
	}
	// format=json wins over Accept.
	rec := request(plain, "/v1/stalls?as_of=2024-07-01&format=json", tokenAcme, http.Header{"Accept": {"text/csv"}})
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("format=json with Accept text/csv: %s", ct)
	}
	// An answer as of now names the file with the time, without colons.
	rec = request(plain, "/v1/stalls?format=csv", tokenAcme, nil)
	if cd := rec.Header().Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename="stalls-acme-20`) ||
		!strings.HasSuffix(cd, `Z.csv"`) || strings.Contains(cd, ":") {
		t.Errorf("stalls as of now: Content-Disposition %q", cd)
	}
}

// TestCSVBadInput: bad format and table parameters are 400 naming them;
// a table the answer does not hold says which it holds.
func TestCSVBadInput(t *testing.T) {
	f := newFixture(t)
	h := f.handler(Config{Deals: deals.New(f.st, nil, 0)})
	for target, want := range map[string]struct{ param, says string }{
		"/v1/stalls?format=xml":                                   {"format", `want json or csv, got \"xml\"`},
		"/v1/stalls?format=csv&format=json":                       {"format", "given more than once"},
		"/v1/stalls?table=deals":                                  {"table", "only with format=csv"},
		"/v1/stalls?format=json&table=deals":                      {"table", "only with format=csv"},
		"/v1/stalls?format=csv&table=nope":                        {"table", `want one of steps, deals, got \"nope\"`},
		"/v1/warnings?format=csv&table=by_step":                   {"table", "want one of deals, by_kind, by_owner, by_team"},
		"/v1/forecast?as_of=2024-07-01&format=csv&table=backtest": {"table", "backtest is not in this answer, which holds pipeline, model"},
		"/v1/deals/a-1?format=csv":                                {"format", "unknown parameter"},
		"/v1/funnel?format=csv":                                   {"from", "required"},
	} {
		rec := serve(h, "GET", target, tokenAcme)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"param":"`+want.param+`"`) ||
			!strings.Contains(rec.Body.String(), want.says) {
			t.Errorf("GET %s: %d %s, want 400 on %s saying %s", target, rec.Code, rec.Body.String(), want.param, want.says)
		}
	}
}

// TestCSVInjection: a CRM value a spreadsheet would evaluate (a team
// "=1+2", an owner "@SUM(A1)") reaches the CSV quoted, as text; the
// numbers stay numbers.
func TestCSVInjection(t *testing.T) {
	f := newFixture(t)
	o := opp{"evil", "e-1", "@SUM(A1)", "=1+2", 1500, "2024-01-05", []string{"2024-01-10"}, "", "", "2024-03-01", "2024-01-20"}
	if err := f.st.InsertDerivedWithStates(context.Background(), o.rows(f.l), f.l.Len()); err != nil {
		t.Fatal(err)
	}
	const tokenEvil = "evil-token-0123456789"
	h := f.handler(Config{Deals: deals.New(f.st, nil, 0), Tokens: map[string]string{tokenEvil: "evil"}})
	for _, target := range []string{
		"/v1/stalls?as_of=2024-07-01&format=csv&table=deals",
		"/v1/deals?as_of=2024-07-01&format=csv",
		"/v1/missed?" + period + "&format=csv&table=by_owner",
	} {
		rec := serve(h, "GET", target, tokenEvil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body.String())
		}
		recs, err := csv.NewReader(strings.NewReader(rec.Body.String())).ReadAll()
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		for _, row := range recs[1:] {
			for _, cell := range row {
				if cell != "" && strings.ContainsRune("=+-@", rune(cell[0])) {
					t.Errorf("GET %s: cell %q would be a formula:\n%s", target, cell, rec.Body.String())
				}
			}
		}
		if !strings.Contains(rec.Body.String(), "'@SUM(A1)") {
			t.Errorf("GET %s: the owner is not quoted:\n%s", target, rec.Body.String())
		}
	}
	rec := serve(h, "GET", "/v1/deals?as_of=2024-07-01&format=csv", tokenEvil)
	if !strings.Contains(rec.Body.String(), "e-1,,'@SUM(A1),'=1+2,1500.00,") {
		t.Errorf("deal row:\n%s", rec.Body.String())
	}
}

// TestNegotiate: how format, table and Accept choose the representation,
// and that format and table leave the query the answer is keyed by.
func TestNegotiate(t *testing.T) {
	tests := []struct {
		query, accept string
		want          representation
	}{
		{"", "", representation{}},
		{"format=csv", "", representation{csv: true}},
		{"format=csv&table=deals", "", representation{csv: true, table: "deals"}},
		{"format=json", "text/csv", representation{}},
		{"table=deals", "text/csv", representation{csv: true, table: "deals"}},
		{"", "TEXT/CSV", representation{csv: true}},
		{"", "text/*;q=0.9, application/json;q=0.8", representation{csv: true}},
		{"", "*/*", representation{}},
	}
	for _, tt := range tests {
		v, err := url.ParseQuery(tt.query + "&as_of=2024-01-01")
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("GET", "/v1/stalls", nil)
		if tt.accept != "" {
			r.Header.Set("Accept", tt.accept)
		}
		got, err := negotiate(r, v, "stalls")
		if err != nil || got != tt.want {
			t.Errorf("%q Accept %q: %+v %v, want %+v", tt.query, tt.accept, got, err, tt.want)
		}
		if v.Encode() != "as_of=2024-01-01" {
			t.Errorf("%q: left %s", tt.query, v.Encode())
		}
	}
}

// TestOpenAPICSV: every endpoint that answers CSV documents it: the
// format parameter, its tables (the report's), the text/csv answer and
// its Content-Disposition.
func TestOpenAPICSV(t *testing.T) {
	doc := openAPIDoc(t)
	paths := map[string]string{"deals": "/v1/deals", "warnings": "/v1/warnings"}
	for _, e := range Endpoints() {
		paths[e.Name] = e.Path
	}
	for name, path := range paths {
		op := mapAt(doc, "paths", path, "get")
		var tables []string
		for _, p := range op["parameters"].([]any) {
			if prm := resolve(t, doc, p.(map[string]any)); prm["name"] == "table" {
				for _, v := range mapAt(prm, "schema")["enum"].([]any) {
					tables = append(tables, v.(string))
				}
			}
		}
		if strings.Join(tables, ",") != strings.Join(report.TableNames(name), ",") {
			t.Errorf("%s: tables %v, the report's %v", path, tables, report.TableNames(name))
		}
		ok := resolve(t, doc, mapAt(op, "responses", "200"))
		if mapAt(ok, "content", "text/csv") == nil || resolve(t, doc, mapAt(ok, "headers", "Content-Disposition")) == nil {
			t.Errorf("%s: the 200 does not document text/csv with its Content-Disposition", path)
		}
	}
}

// TestAnswerTypes checks newAnswer and answerAsOf on the answer of every
// report: each decodes its definitions and tells its as_of.
func TestAnswerTypes(t *testing.T) {
	names := []string{"deals", "warnings"}
	for _, e := range Endpoints() {
		names = append(names, e.Name)
	}
	want := time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC)
	for _, name := range names {
		res, _, err := DecodeAnswer(name, []byte(`{"definitions":{"as_of":"2024-07-01T12:00:00Z"}}`))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := answerAsOf(res); !got.Equal(want) {
			t.Errorf("%s: answerAsOf = %v, want %v", name, got, want)
		}
	}
	if newAnswer("nothing") != nil || !answerAsOf(nil).IsZero() || !answerAsOf(3).IsZero() {
		t.Error("an unknown report has an answer or an as_of")
	}
}
