package api

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
)

// serve runs one request through h.
func serve(h http.Handler, method, target, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestParseTokens(t *testing.T) {
	long := "0123456789abcdef"
	tests := []struct {
		in      string
		want    map[string]string
		wantErr string
	}{
		{"", map[string]string{}, ""},
		{" , ", map[string]string{}, ""},
		{long + "=acme", map[string]string{long: "acme"}, ""},
		{" " + long + "=acme , " + long + "X=globex-2 ,", map[string]string{long: "acme", long + "X": "globex-2"}, ""},
		{long, nil, "want token=tenant"},
		{"short=acme", nil, "shorter than"},
		{long + "=", nil, "invalid tenant"},
		{long + "=Acme", nil, "invalid tenant"},
		{long + "=x' OR '1'='1", nil, "invalid tenant"},
		{long + "=a;DROP TABLE x", nil, "invalid tenant"},
		{"=acme", nil, "shorter than"},
		{long + "é=acme", nil, "printable ASCII"},
		{long + "=acme," + long + "=globex", nil, "given twice"},
	}
	for _, tt := range tests {
		got, err := ParseTokens(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseTokens(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), long) {
				t.Errorf("ParseTokens(%q) error leaks the token: %v", tt.in, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTokens(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseDate(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2024-03-01", time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), true},
		{"2024-03-01T10:00:00+02:00", time.Date(2024, 3, 1, 8, 0, 0, 0, time.UTC), true},
		{"2024-03-01T10:00:00Z", time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC), true},
		{"2024-02-30", time.Time{}, false},
		{"2024-3-1", time.Time{}, false},
		{"01/03/2024", time.Time{}, false},
		{"1970-01-01", time.Time{}, false},
		{"2106-01-01", time.Time{}, false},
		{"2024-03-01 10:00:00", time.Time{}, false},
		{"'; DROP TABLE derived_events; --", time.Time{}, false},
		{"", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := ParseDate(tt.in)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("ParseDate(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// wantParam checks that err is a *param.Error naming name.
func wantParam(t *testing.T, what string, err error, name string) {
	t.Helper()
	if name == "" {
		if err != nil {
			t.Errorf("%s: unexpected error %v", what, err)
		}
		return
	}
	if pe := param.As(err); pe == nil || pe.Param != name {
		t.Errorf("%s: error %v, want a *param.Error naming %q", what, err, name)
	}
}

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func intp(i int) *int { return &i }

// checkNow checks that *asOf, parsed from v without an as_of at about
// the time since, is now, and zeroes it to compare the rest.
func checkNow(t *testing.T, v url.Values, asOf *time.Time, since time.Time) {
	t.Helper()
	if v.Has("as_of") {
		return
	}
	since = since.UTC().Truncate(time.Second)
	if asOf.Before(since) || asOf.After(time.Now()) {
		t.Errorf("%s: as_of %s, want now (absent)", v.Encode(), asOf)
	}
	*asOf = time.Time{}
}

func TestParseFunnel(t *testing.T) {
	tests := []struct {
		q     string
		want  metrics.FunnelQuery
		param string // the parameter an error names; "" for success
	}{
		{"from=2024-01-01&to=2024-04-01", metrics.FunnelQuery{From: day("2024-01-01"), To: day("2024-04-01"), Top: DefaultTop}, ""},
		{"from=2024-01-01&to=2024-04-01&as_of=2024-05-01&window_days=30&by=owner&interval=month&tenant=acme",
			metrics.FunnelQuery{From: day("2024-01-01"), To: day("2024-04-01"), AsOf: day("2024-05-01"), WindowDays: intp(30), By: "owner", Interval: "month", Top: DefaultTop}, ""},
		{"from=2024-01-01&to=2024-04-01&window_days=0", metrics.FunnelQuery{From: day("2024-01-01"), To: day("2024-04-01"), WindowDays: intp(0), Top: DefaultTop}, ""},
		{"to=2024-04-01", metrics.FunnelQuery{}, "from"},
		{"from=2024-01-01", metrics.FunnelQuery{}, "to"},
		{"from=2024-04-01&to=2024-04-01", metrics.FunnelQuery{}, "from"},
		{"from=2024-05-01&to=2024-04-01", metrics.FunnelQuery{}, "from"},
		{"from=yesterday&to=2024-04-01", metrics.FunnelQuery{}, "from"},
		{"from=2024-01-01&to=2024-13-01", metrics.FunnelQuery{}, "to"},
		{"from=2024-01-01&to=2024-04-01&as_of=now", metrics.FunnelQuery{}, "as_of"},
		{"from=2024-01-01&to=2024-04-01&window_days=-1", metrics.FunnelQuery{}, "window_days"},
		{"from=2024-01-01&to=2024-04-01&window_days=36501", metrics.FunnelQuery{}, "window_days"},
		{"from=2024-01-01&to=2024-04-01&window_days=1e3", metrics.FunnelQuery{}, "window_days"},
		{"from=2024-01-01&to=2024-04-01&by=region", metrics.FunnelQuery{}, "by"},
		{"from=2024-01-01&to=2024-04-01&by=" + url.QueryEscape("owner;DROP TABLE x"), metrics.FunnelQuery{}, "by"},
		{"from=2024-01-01&to=2024-04-01&by=owner_id", metrics.FunnelQuery{}, "by"},
		{"from=2024-01-01&to=2024-04-01&by=attr.region", metrics.FunnelQuery{From: day("2024-01-01"), To: day("2024-04-01"), By: "attr.region", Top: DefaultTop}, ""},
		{"from=2024-01-01&to=2024-04-01&by=attr.Region", metrics.FunnelQuery{}, "by"},
		{"from=2024-01-01&to=2024-04-01&by=attr.", metrics.FunnelQuery{}, "by"},
		{"from=2024-01-01&to=2024-04-01&by=" + url.QueryEscape("attr.x'); DROP TABLE y"), metrics.FunnelQuery{}, "by"},
		{"from=2024-01-01&to=2024-04-01&interval=day", metrics.FunnelQuery{}, "interval"},
		{"from=2024-01-01&to=2024-04-01&interval=Month", metrics.FunnelQuery{}, "interval"},
		{"from=2024-01-01&to=2024-04-01&page=2", metrics.FunnelQuery{}, "page"},
		{"from=2024-01-01&from=2024-02-01&to=2024-04-01", metrics.FunnelQuery{}, "from"},
		{"from=2024-01-01&to=2024-04-01&by=owner&top=all", metrics.FunnelQuery{From: day("2024-01-01"), To: day("2024-04-01"), By: "owner"}, ""},
		{"from=2024-01-01&to=2024-04-01&by=owner&top=7", metrics.FunnelQuery{From: day("2024-01-01"), To: day("2024-04-01"), By: "owner", Top: 7}, ""},
		{"from=2024-01-01&to=2024-04-01&by=owner&top=0", metrics.FunnelQuery{}, "top"},
		{"from=2024-01-01&to=2024-04-01&by=owner&top=10001", metrics.FunnelQuery{}, "top"},
		{"from=2024-01-01&to=2024-04-01&by=owner&top=ALL", metrics.FunnelQuery{}, "top"},
	}
	for _, tt := range tests {
		v, err := url.ParseQuery(tt.q)
		if err != nil {
			t.Fatal(err)
		}
		since := time.Now()
		got, err := ParseFunnel(v, Scope{})
		wantParam(t, tt.q, err, tt.param)
		checkNow(t, v, &got.AsOf, since)
		if tt.param == "" && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseFunnel(%q) = %+v, want %+v", tt.q, got, tt.want)
		}
	}
}

func TestParseStalls(t *testing.T) {
	tests := []struct {
		q     string
		want  metrics.StallsQuery
		param string
	}{
		{"", metrics.StallsQuery{Page: 1, PageSize: metrics.DefaultPageSize}, ""},
		{"as_of=2024-06-01&page=3&page_size=10", metrics.StallsQuery{AsOf: day("2024-06-01"), Page: 3, PageSize: 10}, ""},
		{"page_size=1000", metrics.StallsQuery{Page: 1, PageSize: 1000}, ""},
		{"page_size=1001", metrics.StallsQuery{}, "page_size"},
		{"page_size=0", metrics.StallsQuery{}, "page_size"},
		{"page=0", metrics.StallsQuery{}, "page"},
		{"page=-1", metrics.StallsQuery{}, "page"},
		{"page=99999999999999999999", metrics.StallsQuery{}, "page"},
		{"as_of=2024-06-31", metrics.StallsQuery{}, "as_of"},
		{"from=2024-01-01", metrics.StallsQuery{}, "from"},
	}
	for _, tt := range tests {
		v, _ := url.ParseQuery(tt.q)
		since := time.Now()
		got, err := ParseStalls(v, Scope{})
		wantParam(t, tt.q, err, tt.param)
		checkNow(t, v, &got.AsOf, since)
		if tt.param == "" && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseStalls(%q) = %+v, want %+v", tt.q, got, tt.want)
		}
	}
}

func TestParseMissedAndMovement(t *testing.T) {
	tests := []struct {
		q     string
		param string
	}{
		{"from=2024-01-01&to=2024-02-01", ""},
		{"from=2024-01-01T00:00:00Z&to=2024-02-01T12:30:00+01:00&as_of=2024-03-01", ""},
		{"to=2024-02-01", "from"},
		{"from=2024-01-01", "to"},
		{"from=2024-02-01&to=2024-01-01", "from"},
		{"from=2024-01-01&to=2024-02-01&as_of=x", "as_of"},
		{"from=2024-01-01&to=2024-02-01&window_days=3", "window_days"},
		{"from=2024-01-01&to=2024-02-01&by=owner", "by"},
	}
	for _, tt := range tests {
		v, _ := url.ParseQuery(tt.q)
		mq, err := ParseMissed(v, Scope{})
		wantParam(t, "missed "+tt.q, err, tt.param)
		vq, err2 := ParseMovement(v, Scope{})
		wantParam(t, "movement "+tt.q, err2, tt.param)
		if tt.param == "" {
			if mq.From.IsZero() || mq.To.IsZero() || !mq.From.Equal(vq.From) || !mq.To.Equal(vq.To) {
				t.Errorf("%q: missed %+v, movement %+v", tt.q, mq, vq)
			}
		}
	}
}

func TestParseForecast(t *testing.T) {
	bt := day("2024-01-01")
	tests := []struct {
		q     string
		want  forecast.Query
		param string
	}{
		{"as_of=2024-06-01", forecast.Query{AsOf: day("2024-06-01"), HorizonDays: 180, ClosePeriod: "month", ReferenceMonths: 12, Draws: 2000, Seed: 1, PriorStrength: 20}, ""},
		{"as_of=2024-06-01&backtest=2024-01-01&horizon_days=90&by=owner,close_period,owner&close_period=quarter&reference_months=6&prior_strength=5.5&draws=100&seed=7",
			forecast.Query{AsOf: day("2024-06-01"), Backtest: &bt, HorizonDays: 90, By: []string{"owner", "close_period"}, ClosePeriod: "quarter", ReferenceMonths: 6, Draws: 100, Seed: 7, PriorStrength: 5.5}, ""},
		{"as_of=2024-06-01&by=forecast_category,team", forecast.Query{AsOf: day("2024-06-01"), HorizonDays: 180, By: []string{"forecast_category", "team"}, ClosePeriod: "month", ReferenceMonths: 12, Draws: 2000, Seed: 1, PriorStrength: 20}, ""},
		{"as_of=2024-06-01&backtest=2024-06-01", forecast.Query{}, "backtest"},
		{"as_of=2024-06-01&backtest=2024-07-01", forecast.Query{}, "backtest"},
		{"as_of=2024-06-01&backtest=soon", forecast.Query{}, "backtest"},
		{"as_of=2024-06-01&horizon_days=0", forecast.Query{}, "horizon_days"},
		{"as_of=2024-06-01&horizon_days=731", forecast.Query{}, "horizon_days"},
		{"as_of=2024-06-01&by=segment", forecast.Query{}, "by"},
		{"as_of=2024-06-01&by=" + url.QueryEscape("owner;DROP TABLE x"), forecast.Query{}, "by"},
		{"as_of=2024-06-01&close_period=week", forecast.Query{}, "close_period"},
		{"as_of=2024-06-01&reference_months=0", forecast.Query{}, "reference_months"},
		{"as_of=2024-06-01&prior_strength=-1", forecast.Query{}, "prior_strength"},
		{"as_of=2024-06-01&prior_strength=NaN", forecast.Query{}, "prior_strength"},
		{"as_of=2024-06-01&draws=20001", forecast.Query{}, "draws"},
		{"as_of=2024-06-01&seed=0", forecast.Query{}, "seed"},
		{"as_of=2024-06-01&window_days=3", forecast.Query{}, "window_days"},
	}
	for _, tt := range tests {
		v, _ := url.ParseQuery(tt.q)
		got, err := ParseForecast(v, Scope{})
		wantParam(t, tt.q, err, tt.param)
		if tt.param == "" && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseForecast(%q) = %+v, want %+v", tt.q, got, tt.want)
		}
	}
	// Without as_of the forecast is as of now.
	got, err := ParseForecast(url.Values{}, Scope{})
	if err != nil || time.Since(got.AsOf) > time.Minute || got.AsOf.After(time.Now()) {
		t.Errorf("ParseForecast() as_of = %v, %v; want now", got.AsOf, err)
	}
}

func TestCheck(t *testing.T) {
	for _, e := range Endpoints() {
		if err := Check(e.Name, url.Values{"nope": {"1"}}); err == nil {
			t.Errorf("Check(%s) accepted an unknown parameter", e.Name)
		}
	}
	if err := Check("nothing", url.Values{}); err == nil {
		t.Error("Check accepted an unknown endpoint")
	}
}

// FuzzParseFunnel checks that no input makes the parser panic, and that an
// accepted query only carries values from the allowed sets.
func FuzzParseFunnel(f *testing.F) {
	f.Add("from=2024-01-01&to=2024-04-01&by=owner&interval=month&window_days=30")
	f.Add("from=2024-01-01T00:00:00Z&to=2024-04-01&as_of=2024-05-01")
	f.Add("by=owner%3BDROP+TABLE+x")
	f.Fuzz(func(t *testing.T, q string) {
		v, err := url.ParseQuery(q)
		if err != nil {
			return
		}
		fq, err := ParseFunnel(v, Scope{})
		if err != nil {
			if param.As(err) == nil {
				t.Fatalf("error %v is not a *param.Error", err)
			}
			return
		}
		switch fq.By {
		case "", "owner", "team", "segment", "source", "product":
		default:
			t.Fatalf("accepted by=%q", fq.By)
		}
		switch fq.Interval {
		case "", "week", "month", "quarter":
		default:
			t.Fatalf("accepted interval=%q", fq.Interval)
		}
		if !fq.From.Before(fq.To) {
			t.Fatalf("accepted from %v >= to %v", fq.From, fq.To)
		}
	})
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		raw   string
		want  url.Values
		param string // the parameter named by the error; "" for none
	}{
		{"", url.Values{}, ""},
		{"a=1&b=2&a=3", url.Values{"a": {"1", "3"}, "b": {"2"}}, ""},
		{"&&a=&b&", url.Values{"a": {""}, "b": {""}}, ""},
		{"by=owner%2Cteam&x+y=a+b%26c", url.Values{"by": {"owner,team"}, "x y": {"a b&c"}}, ""},
		{"by=%3B", url.Values{"by": {";"}}, ""},
		{"by=%zz", nil, "by"},
		{"from=2024-01-01&by=%", nil, "by"},
		{"by=%4", nil, "by"},
		{"%zz=1", nil, "%zz"},
		{"a%=1", nil, "a%"},
		{"by=owner;team", nil, "by"},
		{"a=1;b=2", nil, "a"},
		{"a;b", nil, "a;b"},
		{"x=%zz&by=%zz", nil, "x"},
		{strings.Repeat("k", 100) + "%=1", nil, strings.Repeat("k", 64) + "…"},
	}
	for _, tt := range tests {
		got, err := parseQuery(tt.raw)
		if tt.param != "" {
			if pe := param.As(err); pe == nil || pe.Param != tt.param || pe.Code != param.Invalid || pe.Reason == "" {
				t.Errorf("parseQuery(%q) = %v, want an error naming %q", tt.raw, err, tt.param)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseQuery(%q) = %v, %v; want %v", tt.raw, got, err, tt.want)
		}
		// Where it succeeds it agrees with url.ParseQuery.
		if std, err := url.ParseQuery(tt.raw); err != nil || !reflect.DeepEqual(got, std) {
			t.Errorf("parseQuery(%q) = %v; url.ParseQuery %v, %v", tt.raw, got, std, err)
		}
	}
}
