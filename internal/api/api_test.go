package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/logtest"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

const (
	tokenAcme   = "acme-token-0123456789"
	tokenGlobex = "globex-token-0123456789"
)

// fixture is a migrated database with two tenants' derived events.
type fixture struct {
	st  *store.Store
	l   *ladder.Ladder
	log *logtest.Buffer
	// final makes the handler's metrics read with FINAL, as on a cluster.
	final bool
}

func ts(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t.Add(10 * time.Hour)
}

// opp builds the derived events of one opportunity: created, the steps
// gained (1-based, on the given dates), and optionally a close.
type opp struct {
	tenant, id, owner, team string
	amount                  float64
	created                 string
	gained                  []string // date of step i+1
	closed, status          string   // close date and won/lost; "" for open
	stalled                 string   // date of a deal.stalled; "" for none
	missed                  string   // date of a missed call; "" for none
}

func (o opp) rows(l *ladder.Ladder) []store.DerivedRow {
	snap := derive.Snapshot{Amount: o.amount, CloseDate: time.Date(2024, 9, 30, 0, 0, 0, 0, time.UTC), Stage: "Discovery",
		Probability: 0.3, Status: "open", OwnerID: o.owner, Team: o.team, Segment: "mid", LeadSource: "web", Product: "core"}
	var out []store.DerivedRow
	add := func(kind derive.Kind, at string, step int, mod func(*derive.Derived)) {
		d := derive.Derived{Tenant: o.tenant, OpportunityID: o.id, ID: o.id + "/" + string(kind) + "/" + at,
			Type: kind, OccurredAt: ts(at), Step: l.Key(step), StepIndex: step, Snapshot: snap, LadderVersion: l.Version}
		if mod != nil {
			mod(&d)
		}
		out = append(out, store.DerivedRow{Derived: d, Version: 1})
	}
	add(derive.DealCreated, o.created, 0, nil)
	for i, at := range o.gained {
		add(derive.CommitmentGained, at, i+1, nil)
	}
	if o.missed != "" {
		next := len(o.gained) + 1
		add(derive.InteractionHeld, o.missed, next, func(d *derive.Derived) {
			d.Reason, d.InteractionID = derive.InteractionContinuation, o.id+"-call"
		})
		add(derive.CommitmentMissed, o.missed, next, func(d *derive.Derived) {
			d.Reason, d.InteractionID = derive.MissNoNextStep, o.id+"-call"
		})
	}
	if o.stalled != "" {
		add(derive.DealStalled, o.stalled, len(o.gained), func(d *derive.Derived) { d.Value = 30 })
	}
	if o.closed != "" {
		add(derive.DealClosed, o.closed, 0, func(d *derive.Derived) { d.Status = o.status })
	}
	return out
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t, store.Options{})
	l := ladder.Default()
	opps := []opp{
		{"acme", "a-1", "ann", "east", 1000, "2024-01-05", []string{"2024-01-10", "2024-01-20", "2024-02-10"}, "2024-04-01", "won", "", ""},
		{"acme", "a-2", "bob", "west", 2000, "2024-01-08", []string{"2024-01-15"}, "", "", "2024-03-01", "2024-01-20"},
		{"acme", "a-3", "ann", "east", 500, "2024-02-01", []string{"2024-02-05", "2024-02-10"}, "2024-03-15", "lost", "", ""},
		{"globex", "g-1", "zed", "north", 99999, "2024-01-03", []string{"2024-01-04", "2024-01-05"}, "", "", "2024-02-20", "2024-01-25"},
		{"globex", "g-2", "zed", "north", 77777, "2024-01-04", []string{"2024-01-06"}, "", "", "2024-02-21", ""},
	}
	var rows []store.DerivedRow
	for _, o := range opps {
		rows = append(rows, o.rows(l)...)
	}
	if err := st.InsertDerivedWithStates(ctx, rows, ladder.Default().Len()); err != nil {
		t.Fatal(err)
	}
	return &fixture{st: st, l: l, log: &logtest.Buffer{}}
}

func (f *fixture) handler(cfg Config) http.Handler {
	cfg.Ladder = f.l
	if cfg.Tokens == nil {
		cfg.Tokens = map[string]string{tokenAcme: "acme", tokenGlobex: "globex"}
	}
	if cfg.Ready == nil {
		cfg.Ready = f.st.Ping
	}
	logger := slog.New(slog.NewTextHandler(f.log, nil))
	q := metrics.New(f.st.Conn())
	if f.final {
		q = metrics.NewWithOptions(f.st.Conn(), metrics.Options{Pinner: snapshot.NewFinal(f.st.Conn())})
	}
	return New(cfg, q, forecast.New(f.st.Conn()), logger)
}

// get requests path from srv with token and decodes the JSON body.
func get(t *testing.T, srv *httptest.Server, path, token string) (int, http.Header, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest("GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("GET %s: bad JSON %q: %v", path, body, err)
		}
	}
	return resp.StatusCode, resp.Header, m, string(body)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

const period = "from=2024-01-01&to=2024-07-01&as_of=2024-07-01"

func TestEndpoints(t *testing.T) {
	f := newFixture(t)
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(f.handler(Config{Registry: reg}))
	defer srv.Close()

	tests := []struct {
		path string
		keys []string
	}{
		{"/v1/funnel?" + period, []string{"definitions", "steps"}},
		{"/v1/funnel?" + period + "&window_days=30&by=owner&interval=month", []string{"definitions", "steps"}},
		{"/v1/stalls?as_of=2024-07-01&page=1&page_size=10", []string{"amounts_by_currency", "deals", "definitions", "open", "open_amount", "page", "page_size", "stalled", "stalled_amount", "steps"}},
		{"/v1/missed?" + period, []string{"by_owner", "by_reason", "by_step", "definitions", "total"}},
		{"/v1/movement?" + period, []string{"by_step", "definitions", "total"}},
		{"/v1/cycle-time?" + period + "&from_step=explore", []string{"closed", "definitions", "from_index", "from_step", "lost", "won"}},
		{"/v1/stage-history?as_of=2024-07-01", []string{"definitions", "stages", "total", "transitions"}},
		{"/v1/forecast?as_of=2024-07-01&draws=200", []string{"definitions", "model", "pipeline", "samples"}},
		{"/v1/forecast?as_of=2024-07-01&backtest=2024-03-01&horizon_days=90&draws=200", []string{"backtest", "definitions", "model", "pipeline", "samples"}},
	}
	for _, tt := range tests {
		code, h, body, raw := get(t, srv, tt.path, tokenAcme)
		if code != 200 {
			t.Errorf("GET %s: %d %s", tt.path, code, raw)
			continue
		}
		if ct := h.Get("Content-Type"); ct != "application/json" {
			t.Errorf("GET %s: Content-Type %q", tt.path, ct)
		}
		want := append(append([]string(nil), tt.keys...), "people") // see TestPeopleInAnswers
		sort.Strings(want)
		if got := keys(body); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("GET %s: keys %v, want %v", tt.path, got, want)
		}
		defs, _ := body["definitions"].(map[string]any)
		if defs["tenant"] != "acme" || defs["ladder_version"] != f.l.Version {
			t.Errorf("GET %s: definitions %v", tt.path, defs)
		}
	}

	// A few numbers, to see that the parameters reached the query.
	_, _, body, _ := get(t, srv, "/v1/funnel?"+period, tokenAcme)
	steps := body["steps"].([]any)
	if len(steps) != f.l.Len()-1 {
		t.Fatalf("funnel has %d steps, want %d", len(steps), f.l.Len()-1)
	}
	first := steps[0].(map[string]any)
	if first["reached"] != 3.0 || first["converted"] != 2.0 {
		t.Errorf("funnel step 1: reached %v converted %v, want 3 and 2", first["reached"], first["converted"])
	}
	_, _, body, _ = get(t, srv, "/v1/stalls?as_of=2024-07-01", tokenAcme)
	if body["open"] != 1.0 || body["stalled"] != 1.0 {
		t.Errorf("stalls: open %v stalled %v, want 1 and 1", body["open"], body["stalled"])
	}

	// The ladder in force.
	code, _, body, raw := get(t, srv, "/v1/ladder", tokenAcme)
	if code != 200 || body["version"] != f.l.Version || len(body["steps"].([]any)) != f.l.Len() {
		t.Errorf("GET /v1/ladder: %d %s", code, truncate(raw))
	}

	// The request histogram is exposed, by route and code.
	code, _, _, raw = get(t, srv, "/metrics", "")
	if code != 200 || !strings.Contains(raw, `commitflow_http_request_seconds_bucket{code="200",route="GET /v1/funnel"`) {
		t.Errorf("GET /metrics: %d, no request histogram in\n%s", code, truncate(raw))
	}
	// The access log names the tenant.
	if log := f.log.String(); !strings.Contains(log, "path=/v1/funnel") || !strings.Contains(log, "tenant=acme") {
		t.Errorf("access log lacks path or tenant:\n%s", log)
	}
}

func TestTenantIsolation(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.handler(Config{}))
	defer srv.Close()

	paths := []string{
		"/v1/funnel?" + period + "&by=owner",
		"/v1/stalls?as_of=2024-07-01",
		"/v1/missed?" + period,
		"/v1/movement?" + period,
		"/v1/forecast?as_of=2024-07-01&draws=100",
	}
	for _, p := range paths {
		for _, tc := range []struct {
			token, tenant string
			foreign       []string // strings only the other tenant's data holds
		}{
			{tokenAcme, "acme", []string{"globex", "g-1", "g-2", "zed", "north", "99999", "77777"}},
			{tokenGlobex, "globex", []string{"acme", "a-1", "a-2", "a-3", "ann", "bob", "east", "west"}},
		} {
			code, _, body, raw := get(t, srv, p, tc.token)
			if code != 200 {
				t.Errorf("%s as %s: %d %s", p, tc.tenant, code, raw)
				continue
			}
			if defs := body["definitions"].(map[string]any); defs["tenant"] != tc.tenant {
				t.Errorf("%s as %s: definitions.tenant %v", p, tc.tenant, defs["tenant"])
			}
			for _, s := range tc.foreign {
				if strings.Contains(raw, `"`+s) {
					t.Errorf("%s as %s: the answer mentions %q:\n%s", p, tc.tenant, s, truncate(raw))
				}
			}
			// Asking for the other tenant explicitly is forbidden.
			other := "globex"
			if tc.tenant == "globex" {
				other = "acme"
			}
			if code, _, body, _ := get(t, srv, p+"&tenant="+other, tc.token); code != 403 || body["param"] != "tenant" {
				t.Errorf("%s&tenant=%s as %s: %d %v, want 403 naming tenant", p, other, tc.tenant, code, body)
			}
			// Naming one's own tenant is fine.
			if code, _, _, raw := get(t, srv, p+"&tenant="+tc.tenant, tc.token); code != 200 {
				t.Errorf("%s&tenant=%s as %s: %d %s", p, tc.tenant, tc.tenant, code, raw)
			}
		}
	}
	_, _, acme, _ := get(t, srv, "/v1/stalls?as_of=2024-07-01", tokenAcme)
	_, _, globex, _ := get(t, srv, "/v1/stalls?as_of=2024-07-01", tokenGlobex)
	if acme["open"] != 1.0 || globex["open"] != 2.0 {
		t.Errorf("open deals: acme %v, globex %v; want 1 and 2", acme["open"], globex["open"])
	}
}

func TestBadInput(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.handler(Config{}))
	defer srv.Close()
	openSrv := httptest.NewServer(f.handler(Config{Open: true}))
	defer openSrv.Close()
	inject := url.QueryEscape("x' OR '1'='1")

	tests := []struct {
		name  string
		srv   *httptest.Server
		path  string
		token string
		code  int
		param string
		pcode param.Code // the code of a 400
	}{
		{"no token", srv, "/v1/funnel?" + period, "", 401, "", ""},
		{"unknown token", srv, "/v1/funnel?" + period, "no-such-token-0123456789", 401, "", ""},
		{"unknown token on ladder", srv, "/v1/ladder", "nope", 401, "", ""},
		{"other tenant", srv, "/v1/stalls?tenant=globex", tokenAcme, 403, "tenant", ""},
		{"injected tenant", srv, "/v1/stalls?tenant=" + inject, tokenAcme, 403, "tenant", ""},
		{"injected tenant, open", openSrv, "/v1/stalls?tenant=" + inject, "", 400, "tenant", param.Invalid},
		{"no tenant, open", openSrv, "/v1/stalls", "", 400, "tenant", param.Required},
		{"tenant twice", srv, "/v1/stalls?tenant=acme&tenant=globex", tokenAcme, 400, "tenant", param.Repeated},
		{"bad from", srv, "/v1/funnel?from=2024-13-01&to=2024-07-01", tokenAcme, 400, "from", param.Invalid},
		{"bad to", srv, "/v1/missed?from=2024-01-01&to=July", tokenAcme, 400, "to", param.Invalid},
		{"bad as_of", srv, "/v1/stalls?as_of=" + inject, tokenAcme, 400, "as_of", param.Invalid},
		{"from = to", srv, "/v1/movement?from=2024-07-01&to=2024-07-01", tokenAcme, 400, "from", param.Conflict},
		{"from > to", srv, "/v1/funnel?from=2024-08-01&to=2024-07-01", tokenAcme, 400, "from", param.Conflict},
		{"missing from", srv, "/v1/funnel?to=2024-07-01", tokenAcme, 400, "from", param.Required},
		{"bad by", srv, "/v1/funnel?" + period + "&by=region", tokenAcme, 400, "by", param.Invalid},
		{"unknown from_step", srv, "/v1/cycle-time?" + period + "&from_step=nope", tokenAcme, 400, "from_step", param.Invalid},
		{"injected by", srv, "/v1/funnel?" + period + "&by=" + url.QueryEscape("owner;DROP TABLE x"), tokenAcme, 400, "by", param.Invalid},
		{"injected by 2", srv, "/v1/funnel?" + period + "&by=" + url.QueryEscape("owner_id) FROM system.tables --"), tokenAcme, 400, "by", param.Invalid},
		{"bad interval", srv, "/v1/funnel?" + period + "&interval=day", tokenAcme, 400, "interval", param.Invalid},
		{"negative window", srv, "/v1/funnel?" + period + "&window_days=-5", tokenAcme, 400, "window_days", param.OutOfRange},
		{"page size too big", srv, "/v1/stalls?page_size=5000", tokenAcme, 400, "page_size", param.OutOfRange},
		{"page zero", srv, "/v1/stalls?page=0", tokenAcme, 400, "page", param.OutOfRange},
		{"unknown parameter", srv, "/v1/missed?" + period + "&owner=ann", tokenAcme, 400, "owner", param.Unknown},
		{"bad backtest", srv, "/v1/forecast?as_of=2024-07-01&backtest=2024-08-01", tokenAcme, 400, "backtest", param.Conflict},
		{"bad forecast by", srv, "/v1/forecast?by=" + url.QueryEscape("team' --"), tokenAcme, 400, "by", param.Invalid},
		{"bad horizon", srv, "/v1/forecast?horizon_days=100000", tokenAcme, 400, "horizon_days", param.OutOfRange},
		{"as_of out of range", srv, "/v1/forecast?as_of=1960-01-01", tokenAcme, 400, "as_of", param.OutOfRange},
		{"forecast currency without a rate table", srv, "/v1/forecast?currency=EUR", tokenAcme, 400, "currency", param.Unsupported},
		{"stalls currency without a rate table", srv, "/v1/stalls?currency=EUR", tokenAcme, 400, "currency", param.Unsupported},
		{"not a currency", srv, "/v1/missed?" + period + "&currency=euro", tokenAcme, 400, "currency", param.Invalid},
		{"top zero", srv, "/v1/stage-history?by=owner&top=0", tokenAcme, 400, "top", param.OutOfRange},
		{"stage-history unknown parameter", srv, "/v1/stage-history?from=2024-01-01", tokenAcme, 400, "from", param.Unknown},
		{"by twice", srv, "/v1/cycle-time?" + period + "&by=owner&by=team", tokenAcme, 400, "by", param.Repeated},
		{"bad format", srv, "/v1/movement?" + period + "&format=xml", tokenAcme, 400, "format", param.Invalid},
		{"table without csv", srv, "/v1/funnel?" + period + "&format=json&table=x", tokenAcme, 400, "table", param.Conflict},
		// Malformed query strings, which Request.URL.Query() would read as
		// the parameter being absent.
		{"malformed by", srv, "/v1/funnel?" + period + "&by=%zz", tokenAcme, 400, "by", param.Invalid},
		{"malformed interval", srv, "/v1/funnel?" + period + "&interval=%", tokenAcme, 400, "interval", param.Invalid},
		{"malformed page", srv, "/v1/stalls?page=%2", tokenAcme, 400, "page", param.Invalid},
		{"malformed from", srv, "/v1/missed?from=%zz&to=2024-07-01", tokenAcme, 400, "from", param.Invalid},
		{"malformed as_of", srv, "/v1/movement?" + period + "&as_of=%G0", tokenAcme, 400, "as_of", param.Invalid},
		{"malformed forecast by", srv, "/v1/forecast?by=owner%2", tokenAcme, 400, "by", param.Invalid},
		{"malformed ladder parameter", srv, "/v1/ladder?x=%zz", tokenAcme, 400, "x", param.Invalid},
		{"malformed name", srv, "/v1/stalls?%zz=1", tokenAcme, 400, "%zz", param.Invalid},
		{"semicolon", srv, "/v1/stalls?as_of=2024-07-01;page=2", tokenAcme, 400, "as_of", param.Invalid},
		{"malformed tenant", srv, "/v1/stalls?tenant=%zz", tokenAcme, 400, "tenant", param.Invalid},
		{"malformed tenant, open", openSrv, "/v1/stalls?tenant=acme%", "", 400, "tenant", param.Invalid},
		{"malformed, no token", srv, "/v1/stalls?by=%zz", "", 400, "by", param.Invalid},
	}
	for _, tt := range tests {
		code, h, body, raw := get(t, tt.srv, tt.path, tt.token)
		if code != tt.code {
			t.Errorf("%s: GET %s: %d %s, want %d", tt.name, tt.path, code, raw, tt.code)
			continue
		}
		if body["error"] == nil || body["error"] == "" {
			t.Errorf("%s: no error message: %s", tt.name, raw)
		}
		if tt.param != "" && body["param"] != tt.param {
			t.Errorf("%s: param %v, want %q (%s)", tt.name, body["param"], tt.param, raw)
		}
		if code == http.StatusBadRequest && (tt.pcode == "" || body["code"] != string(tt.pcode)) {
			t.Errorf("%s: code %v, want %q (%s)", tt.name, body["code"], tt.pcode, raw)
		}
		if code != http.StatusBadRequest && body["code"] != nil {
			t.Errorf("%s: %d with a code: %s", tt.name, code, raw)
		}
		if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without WWW-Authenticate", tt.name)
		}
	}

	// The injection attempts changed nothing.
	var n uint64
	if err := f.st.Conn().QueryRow(context.Background(), "SELECT count() FROM derived_events").Scan(&n); err != nil || n == 0 {
		t.Fatalf("derived_events after the injection attempts: %d rows, %v", n, err)
	}
	// The open server serves the tenant it is asked for.
	if code, _, body, raw := get(t, openSrv, "/v1/stalls?as_of=2024-07-01&tenant=globex", ""); code != 200 || body["open"] != 2.0 {
		t.Errorf("open server, tenant=globex: %d %s", code, truncate(raw))
	}
	// A token still binds its tenant on the open server.
	if code, _, _, raw := get(t, openSrv, "/v1/stalls?tenant=globex", tokenAcme); code != 403 {
		t.Errorf("open server, acme token, tenant=globex: %d %s", code, raw)
	}
}

// TestAsOfNow checks the one rule for an absent as_of on the metrics,
// forecast and deal endpoints alike: the answer is as of now.
func TestAsOfNow(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.handler(Config{Deals: deals.New(f.st, nil, 0)}))
	defer srv.Close()
	const noAsOf = "from=2024-01-01&to=2024-07-01"
	for _, path := range []string{
		"/v1/funnel?" + noAsOf, "/v1/stalls", "/v1/missed?" + noAsOf, "/v1/movement?" + noAsOf,
		"/v1/forecast", "/v1/forecast?backtest=2024-07-01", "/v1/cycle-time?" + noAsOf, "/v1/stage-history",
		"/v1/deals", "/v1/warnings",
	} {
		before := time.Now().UTC().Truncate(time.Second)
		code, _, body, raw := get(t, srv, path, tokenAcme)
		after := time.Now().UTC()
		if code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, code, truncate(raw))
			continue
		}
		defs, _ := body["definitions"].(map[string]any)
		s, _ := defs["as_of"].(string)
		asOf, err := time.Parse(time.RFC3339, s)
		if err != nil || asOf.Before(before) || asOf.After(after) {
			t.Errorf("GET %s: as_of %q, want now (%s..%s)", path, s, before.Format(time.RFC3339), after.Format(time.RFC3339))
		}
	}
}

func TestTimeout(t *testing.T) {
	f := newFixture(t)
	srv := httptest.NewServer(f.handler(Config{Timeout: time.Nanosecond}))
	defer srv.Close()
	code, _, body, raw := get(t, srv, "/v1/funnel?"+period, tokenAcme)
	if code != http.StatusGatewayTimeout || body["error"] == nil {
		t.Fatalf("funnel with a 1ns timeout: %d %s, want 504", code, raw)
	}
}

func TestProbesAndDashboard(t *testing.T) {
	notReady := errors.New("clickhouse: migrations not applied")
	reg := prometheus.NewRegistry()
	h := New(Config{Open: true, Registry: reg, Ready: func(context.Context) error { return notReady }}, nil, nil, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()

	if code, _, body, _ := get(t, srv, "/healthz", ""); code != 200 || body["status"] != "ok" {
		t.Errorf("/healthz: %d %v", code, body)
	}
	if code, _, body, _ := get(t, srv, "/readyz", ""); code != 503 || body["reason"] != notReady.Error() {
		t.Errorf("/readyz when not ready: %d %v", code, body)
	}
	ready := httptest.NewServer(New(Config{Open: true, Ready: func(context.Context) error { return nil }}, nil, nil, nil))
	defer ready.Close()
	if code, _, _, _ := get(t, ready, "/readyz", ""); code != 200 {
		t.Errorf("/readyz when ready: %d", code)
	}

	code, h2, _, raw := get(t, srv, "/", "")
	if code != 200 || !strings.HasPrefix(h2.Get("Content-Type"), "text/html") || !strings.Contains(raw, `<script src="app.js"`) {
		t.Errorf("GET /: %d %s %s", code, h2.Get("Content-Type"), truncate(raw))
	}
	if csp := h2.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("GET /: Content-Security-Policy %q", csp)
	}
	for _, p := range []string{"/app.js", "/style.css", "/grafana/operations-prometheus.json"} {
		if code, _, _, raw := get(t, srv, p, ""); code != 200 || len(raw) < 100 {
			t.Errorf("GET %s: %d, %d bytes", p, code, len(raw))
		}
	}
	if code, _, _, _ := get(t, srv, "/nope.js", ""); code != 404 {
		t.Errorf("GET /nope.js: %d, want 404", code)
	}
	if code, _, _, raw := get(t, srv, "/metrics", ""); code != 200 || !strings.Contains(raw, "commitflow_http_request_seconds") {
		t.Errorf("GET /metrics: %d %s", code, truncate(raw))
	}
	// A second handler on the same registry reuses the histogram.
	_ = New(Config{Registry: reg}, nil, nil, nil)
}

// TestDashboardAssetsAreSelfContained checks that the dashboard loads
// nothing from other hosts (the machines have no internet).
func TestDashboardAssetsAreSelfContained(t *testing.T) {
	h := New(Config{Open: true}, nil, nil, nil)
	for _, p := range []string{"/", "/app.js", "/panels.js", "/deal.js", "/style.css"} {
		rec := serve(h, "GET", p, "")
		body := rec.Body.String()
		for _, bad := range []string{"http://", "https://", "//cdn", "innerHTML"} {
			if strings.Contains(strings.ReplaceAll(body, "http://www.w3.org/2000/svg", ""), bad) {
				t.Errorf("%s contains %q", p, bad)
			}
		}
	}
	var g map[string]any
	rec := serve(h, "GET", "/grafana/operations-prometheus.json", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &g); err != nil {
		t.Fatalf("grafana dashboard: %v", err)
	}
	exprs := rec.Body.String()
	for _, m := range []string{"commitflow_ingest_events_consumed_total", "commitflow_ingest_events_dead_lettered_total",
		"commitflow_ingest_insert_seconds_bucket", "commitflow_ingest_consumer_pending", "commitflow_derive_batch_seconds_bucket",
		"commitflow_http_request_seconds_bucket"} {
		if !strings.Contains(exprs, m) {
			t.Errorf("grafana dashboard does not use %s", m)
		}
	}
}

// TestEncodeJSONAsEncodingJSON: every endpoint's answer comes out of
// encodeJSON byte for byte as encoding/json's Encoder (HTML escaping off)
// writes it.
func TestEncodeJSONAsEncodingJSON(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	q, fc := metrics.New(f.st.Conn()), forecast.New(f.st.Conn())
	for _, tt := range []struct{ name, query string }{
		{"funnel", period},
		{"funnel", period + "&window_days=30&by=owner&interval=month"},
		{"stalls", "as_of=2024-07-01&page=1&page_size=10"},
		{"missed", period},
		{"movement", period},
		{"cycle-time", period + "&by=owner&interval=month"},
		{"stage-history", "as_of=2024-07-01&by=owner"},
		{"forecast", "as_of=2024-07-01&draws=200"},
		{"forecast", "as_of=2024-07-01&backtest=2024-03-01&horizon_days=90&draws=200"},
	} {
		v, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Query(ctx, q, fc, f.l, tt.name, "acme", v)
		if err != nil {
			t.Fatalf("%s?%s: %v", tt.name, tt.query, err)
		}
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res); err != nil {
			t.Fatal(err)
		}
		if err := encodeJSON(&got, res); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%s?%s:\n got  %.400s\n want %.400s", tt.name, tt.query, got.String(), want.String())
		}
	}
	// Values encoding/json and the v1 options might tell apart.
	x := 0.1
	for _, v := range []any{
		errorBody{Error: "a <b> & \"c\"\u2028", Param: ""},
		map[string]any{"b": []int(nil), "a": []string{}, "c": &x, "d": nil, "e": 1e21, "f": 1e-7, "g": time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)},
	} {
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		if err := encodeJSON(&got, v); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Errorf("%v:\n got  %s\n want %s", v, got.String(), want.String())
		}
	}
}

func TestMetricsElsewhere(t *testing.T) {
	reg := prometheus.NewRegistry()
	notReady := errors.New("nats: CLOSED")
	cfg := Config{Open: true, Registry: reg, MetricsElsewhere: true, Ready: func(context.Context) error { return notReady }}
	apiSrv := httptest.NewServer(New(cfg, nil, nil, nil))
	defer apiSrv.Close()
	admin := httptest.NewServer(Admin(cfg))
	defer admin.Close()

	get(t, apiSrv, "/healthz", "")
	if code, _, _, _ := get(t, apiSrv, "/metrics", ""); code != 404 {
		t.Errorf("API listener: GET /metrics: %d, want 404", code)
	}
	if code, _, _, raw := get(t, admin, "/metrics", ""); code != 200 || !strings.Contains(raw, "commitflow_http_request_seconds") {
		t.Errorf("admin listener: GET /metrics: %d %s", code, truncate(raw))
	}
	if code, _, body, _ := get(t, admin, "/healthz", ""); code != 200 || body["status"] != "ok" {
		t.Errorf("admin listener: /healthz: %d %v", code, body)
	}
	if code, _, body, _ := get(t, admin, "/readyz", ""); code != 503 || body["reason"] != notReady.Error() {
		t.Errorf("admin listener: /readyz: %d %v", code, body)
	}
	for _, p := range []string{"/", "/v1/funnel?tenant=acme"} {
		if code, _, _, _ := get(t, admin, p, ""); code != 404 {
			t.Errorf("admin listener: GET %s: %d, want 404", p, code)
		}
	}
}

// TestProfiling checks that the runtime profiles are served on the admin
// listener with Config.Profiling alone, and never on the API's.
func TestProfiling(t *testing.T) {
	for _, profiling := range []bool{false, true} {
		cfg := Config{Open: true, MetricsElsewhere: true, Profiling: profiling}
		apiSrv := httptest.NewServer(New(cfg, nil, nil, nil))
		admin := httptest.NewServer(Admin(cfg))
		for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
			if code, _, _, _ := get(t, apiSrv, p, ""); code != 404 {
				t.Errorf("profiling %v: API listener: GET %s: %d, want 404", profiling, p, code)
			}
			want := 404
			if profiling {
				want = 200
			}
			if code, _, _, raw := get(t, admin, p, ""); code != want {
				t.Errorf("profiling %v: admin listener: GET %s: %d, want %d: %s", profiling, p, code, want, truncate(raw))
			}
		}
		apiSrv.Close()
		admin.Close()
	}
}
