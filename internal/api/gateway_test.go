package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/webhook"
)

const (
	acmeToken   = "acme-token-0123456789"
	globexToken = "globex-token-0123456789"
	hubSecret   = "5f0d9a4e-6c1b-4b7e-9d52-0e1f2a3b4c5d"
	sfSecret    = "sf-relay-secret-1"
	gongKey     = "Zk3q9LrT0wXv"
)

// testBus is an embedded NATS server with commitflow's streams.
type testBus struct {
	srv *bus.Embedded
	js  jetstream.JetStream
	pub *bus.Publisher
}

// startBus starts a testBus with the streams declared with the default
// options.
func startBus(t *testing.T) *testBus {
	t.Helper()
	return startBusWith(t, bus.Options{})
}

// startBusWith is startBus with the streams declared with o.
func startBusWith(t *testing.T, o bus.Options) *testBus {
	t.Helper()
	srv, js := bustest.Start(t, o)
	parts, err := bus.Partitions(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	return &testBus{srv: srv, js: js, pub: bus.NewPublisher(js, parts)}
}

// msgs returns the number of messages CF_EVENTS holds.
func (b *testBus) msgs(t *testing.T) uint64 {
	t.Helper()
	s, err := b.js.Stream(t.Context(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// gatewayServer serves the API with the gateway publishing through pub.
func gatewayServer(t *testing.T, pub Publisher, tweak func(*GatewayConfig)) *httptest.Server {
	t.Helper()
	gw := GatewayConfig{
		Publisher:         pub,
		HubSpotSecrets:    map[string]string{"acme": hubSecret},
		PipedriveAuth:     map[string]string{"acme": "commitflow:pd-pass-1"},
		SalesforceSecrets: map[string]string{"acme": sfSecret},
		GongKeys:          map[string]string{"acme": gongKey},
	}
	if tweak != nil {
		tweak(&gw)
	}
	h := New(Config{Tokens: map[string]string{acmeToken: "acme", globexToken: "globex"}, Gateway: gw}, nil, nil, nil)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// post sends body to path and decodes the JSON answer into out.
func post(t *testing.T, srv *httptest.Server, path, body string, header http.Header, out any) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("POST %s: %d %s: %v", path, resp.StatusCode, data, err)
		}
	}
	return resp.StatusCode, resp.Header
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// ev is an NDJSON line: a stage change of opportunity opp with id id.
func ev(id, tenant, opp string) string {
	t := ""
	if tenant != "" {
		t = `"tenant":"` + tenant + `",`
	}
	return `{"v":1,"id":"` + id + `",` + t + `"source":"api","type":"opportunity.stage_changed","occurred_at":"2024-06-01T10:00:00Z","opportunity_id":"` + opp + `","payload":{"to":"Qualification"}}`
}

// lineSummary is a LineResult as the tests compare it.
func lineSummary(ls []LineResult) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = strconv.Itoa(l.Line) + " " + l.Status
		if l.Field != "" || l.Error != "" {
			out[i] += " " + l.Field + ": " + l.Error
		}
	}
	return out
}

func TestPostEvents(t *testing.T) {
	b := startBus(t)
	srv := gatewayServer(t, b.pub, nil)

	ndjson := strings.Join([]string{
		ev("e1", "acme", "o1"),
		"",
		`{"v":1,"id":"e2","tenant":"acme","source":"api","type":"opportunity.stage_changed","occurred_at":"2024-06-01T10:00:00Z","opportunity_id":"o1","payload":{}}`,
		ev("e3", "globex", "o1"),
		`{"v":1,"id":"e4","source":"api","type":"deal.moved","occurred_at":"2024-06-01T10:00:00Z","opportunity_id":"o1","payload":{}}`,
		ev("e1", "acme", "o1"),
		ev("e5", "", "o2"),
		`{"v":1,"id":"e6",`,
	}, "\n") + "\n"
	var res EventsResult
	code, _ := post(t, srv, "/v1/events", ndjson, bearer(acmeToken), &res)
	want := []string{
		"1 accepted",
		"3 rejected payload.to: missing",
		`4 rejected tenant: "globex" is not the tenant of the token ("acme")`,
		`5 rejected type: unknown event type "deal.moved"`,
		"6 duplicate",
		"7 accepted",
		"8 rejected body: invalid JSON at byte 17: unexpected end of JSON input",
	}
	if code != http.StatusAccepted || res.Accepted != 2 || res.Duplicated != 1 || res.Rejected != 4 || !reflect.DeepEqual(lineSummary(res.Lines), want) {
		t.Fatalf("status %d, %d accepted, %d duplicated, %d rejected, lines:\n%s\nwant 202, 2, 1, 4:\n%s",
			code, res.Accepted, res.Duplicated, res.Rejected, strings.Join(lineSummary(res.Lines), "\n"), strings.Join(want, "\n"))
	}
	if n := b.msgs(t); n != 2 {
		t.Fatalf("CF_EVENTS holds %d messages, want 2", n)
	}
	// The same request again: accepted again, stored once.
	if code, _ := post(t, srv, "/v1/events", ndjson, bearer(acmeToken), &res); code != http.StatusAccepted || res.Accepted != 2 {
		t.Fatalf("retry: status %d, %d accepted", code, res.Accepted)
	}
	if n := b.msgs(t); n != 2 {
		t.Fatalf("after a retry CF_EVENTS holds %d messages, want 2", n)
	}

	// A JSON array: lines are where each element starts.
	array := "[\n  " + ev("a1", "acme", "o3") + ",\n  {\"v\":1,\"id\":\"a2\",\"tenant\":\"acme\",\"source\":\"api\",\n   \"type\":\"opportunity.amount_changed\",\"occurred_at\":\"2024-06-01T10:00:00Z\",\"opportunity_id\":\"o3\",\n   \"payload\":{\"to\":-5}},\n  " + ev("a3", "acme", "o3") + "\n]\n"
	res = EventsResult{}
	code, _ = post(t, srv, "/v1/events", array, bearer(acmeToken), &res)
	want = []string{"2 accepted", "3 rejected payload.to: must be a finite amount >= 0, got -5", "6 accepted"}
	if code != http.StatusAccepted || !reflect.DeepEqual(lineSummary(res.Lines), want) {
		t.Fatalf("array: status %d, lines %q, want 202 %q", code, lineSummary(res.Lines), want)
	}
	if n := b.msgs(t); n != 4 {
		t.Fatalf("CF_EVENTS holds %d messages, want 4", n)
	}
}

// TestPostEventsRefused: requests that store nothing, and their status.
func TestPostEventsRefused(t *testing.T) {
	b := startBus(t)
	srv := gatewayServer(t, b.pub, func(gw *GatewayConfig) { gw.MaxBody = 4096 })
	tests := []struct {
		name, path, body, token string
		status                  int
		want                    string // in the answer
	}{
		{"atomic with a bad line", "/v1/events?atomic=true", ev("x1", "acme", "o1") + "\n" + `{"id":"x2"}` + "\n", acmeToken, 400, `"status":"not_published"`},
		{"every line another tenant's", "/v1/events", ev("x1", "globex", "o1") + "\n" + ev("x2", "globex", "o1"), acmeToken, 403, `"field":"tenant"`},
		{"every line an unknown type", "/v1/events", `{"id":"x1","type":"nope"}`, acmeToken, 422, `unknown event type \"nope\"`},
		{"a malformed array", "/v1/events", "[\n" + ev("x1", "acme", "o1") + ",\n{\"id\": }\n]", acmeToken, 400, `"error":"line 3: the JSON array is not valid JSON`},
		{"an array and more", "/v1/events", "[" + ev("x1", "acme", "o1") + "] {}", acmeToken, 400, `the JSON array is not valid JSON`},
		{"empty", "/v1/events", "\n\n", acmeToken, 400, `no events in the body`},
		{"too large", "/v1/events", strings.Repeat(ev("x1", "acme", "o1")+"\n", 30), acmeToken, 413, `over the limit of 4096 bytes`},
		{"no token", "/v1/events", ev("x1", "acme", "o1"), "", 401, `missing bearer token`},
		{"the tenant parameter of another tenant", "/v1/events?tenant=acme", ev("x1", "globex", "o1"), globexToken, 403, `does not grant this tenant`},
		{"an unknown parameter", "/v1/events?atomc=true", ev("x1", "acme", "o1"), acmeToken, 400, `"param":"atomc"`},
		{"atomic not a boolean", "/v1/events?atomic=yes", ev("x1", "acme", "o1"), acmeToken, 400, `"param":"atomic"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.token != "" {
				h = bearer(tt.token)
			}
			var raw json.RawMessage
			code, _ := post(t, srv, tt.path, tt.body, h, &raw)
			if code != tt.status || !strings.Contains(string(raw), tt.want) {
				t.Fatalf("status %d %s, want %d with %s", code, raw, tt.status, tt.want)
			}
		})
	}
	if n := b.msgs(t); n != 0 {
		t.Fatalf("CF_EVENTS holds %d messages, want none", n)
	}
}

// TestPostEventsNotStored: without a stream, or when it does not
// acknowledge, the answer is 503 with Retry-After.
func TestPostEventsNotStored(t *testing.T) {
	srv := gatewayServer(t, nil, nil)
	var e errorBody
	if code, h := post(t, srv, "/v1/events", ev("x1", "acme", "o1"), bearer(acmeToken), &e); code != 503 || h.Get("Retry-After") == "" {
		t.Fatalf("no publisher: %d %+v", code, e)
	}
	b := startBus(t)
	pub := b.pub.WithOptions(bus.PublishOptions{AttemptTimeout: 200 * time.Millisecond, RetryFor: 500 * time.Millisecond})
	srv = gatewayServer(t, pub, nil)
	b.srv.Shutdown()
	code, h := post(t, srv, "/v1/events", ev("x1", "acme", "o1"), bearer(acmeToken), &e)
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(e.Error, "retry the same request") {
		t.Fatalf("NATS down: %d %+v", code, e)
	}
}

// hubspotHeaders signs body as HubSpot does for a POST to uri at ts.
func hubspotHeaders(secret, uri, body string, ts time.Time) http.Header {
	stamp := strconv.FormatInt(ts.UnixMilli(), 10)
	sig := base64.StdEncoding.EncodeToString(webhook.SignHubSpot(secret, "POST", uri, []byte(body), stamp))
	return http.Header{
		webhook.HubSpotSignatureHeader: {sig},
		webhook.HubSpotTimestampHeader: {stamp},
		"Content-Type":                 {"application/json"},
	}
}

func TestHubSpotWebhook(t *testing.T) {
	b := startBus(t)
	srv := gatewayServer(t, b.pub, nil)
	body, err := os.ReadFile("../webhook/testdata/hubspot_deal_batch.json")
	if err != nil {
		t.Fatal(err)
	}
	path := "/v1/webhooks/hubspot"
	now := time.Now()
	tests := []struct {
		name   string
		path   string
		header http.Header
		status int
		want   string
	}{
		{"no signature", path, http.Header{}, 401, "X-HubSpot-Request-Timestamp is missing"},
		{"wrong secret", path, hubspotHeaders("other-secret", srv.URL+path, string(body), now), 401, "X-HubSpot-Signature-v3 is missing or does not match"},
		{"signed for another URL", path, hubspotHeaders(hubSecret, srv.URL+path+"?tenant=globex", string(body), now), 401, "does not match"},
		{"stale", path, hubspotHeaders(hubSecret, srv.URL+path, string(body), now.Add(-6*time.Minute)), 401, "more than 5 minutes from now"},
		{"a tenant without a secret", path + "?tenant=globex", hubspotHeaders(hubSecret, srv.URL+path+"?tenant=globex", string(body), now), 401, "no hubspot webhook secret is configured for this tenant"},
		{"valid", path, hubspotHeaders(hubSecret, srv.URL+path, string(body), now), 200, `"accepted":8`},
		{"valid, with the tenant named", path + "?tenant=acme", hubspotHeaders(hubSecret, srv.URL+path+"?tenant=acme", string(body), now), 200, `"accepted":8`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw json.RawMessage
			code, _ := post(t, srv, tt.path, string(body), tt.header, &raw)
			if code != tt.status || !strings.Contains(string(raw), tt.want) {
				t.Fatalf("status %d %s, want %d with %s", code, raw, tt.status, tt.want)
			}
		})
	}
	// The batch was accepted twice and is stored once.
	if n := b.msgs(t); n != 8 {
		t.Fatalf("CF_EVENTS holds %d messages, want 8", n)
	}
	var res WebhookResult
	post(t, srv, path, string(body), hubspotHeaders(hubSecret, srv.URL+path, string(body), now), &res)
	want := map[string]int{"property:hs_lastmodifieddate": 1, "subscription:contact.creation": 1}
	if !reflect.DeepEqual(res.Ignored, want) || len(res.Refused) != 0 {
		t.Fatalf("ignored %v refused %v, want %v and none", res.Ignored, res.Refused, want)
	}
}

// TestHubSpotWebhookPublicURL: behind a proxy HubSpot signs the public URL.
func TestHubSpotWebhookPublicURL(t *testing.T) {
	b := startBus(t)
	srv := gatewayServer(t, b.pub, func(gw *GatewayConfig) {
		gw.PublicURL = "https://commitflow.example.com/"
		gw.HubSpotSecrets["globex"] = "globex-secret"
	})
	body := `[{"eventId":1,"subscriptionId":2,"portalId":3,"appId":4,"occurredAt":1717236000000,"subscriptionType":"deal.creation","attemptNumber":0,"objectId":5,"changeSource":"CRM_UI"}]`
	path := "/v1/webhooks/hubspot?tenant=globex"
	var e errorBody
	if code, _ := post(t, srv, path, body, hubspotHeaders("globex-secret", srv.URL+path, body, time.Now()), &e); code != 401 {
		t.Fatalf("signed for the listener's URL: %d %+v, want 401", code, e)
	}
	var res WebhookResult
	if code, _ := post(t, srv, path, body, hubspotHeaders("globex-secret", "https://commitflow.example.com"+path, body, time.Now()), &res); code != 200 || res.Accepted != 1 {
		t.Fatalf("signed for the public URL: %d %+v", code, res)
	}
	if code, _ := post(t, srv, "/v1/webhooks/hubspot", body, hubspotHeaders("globex-secret", "https://commitflow.example.com/v1/webhooks/hubspot", body, time.Now()), &e); code != 400 || e.Param != "tenant" {
		t.Fatalf("two tenants with secrets, none named: %d %+v", code, e)
	}
}

func TestPipedriveWebhook(t *testing.T) {
	b := startBus(t)
	srv := gatewayServer(t, b.pub, nil)
	body, err := os.ReadFile("../webhook/testdata/pipedrive_v2_deal_change.json")
	if err != nil {
		t.Fatal(err)
	}
	basic := func(user, pass string) http.Header {
		req := httptest.NewRequest("POST", "/", nil)
		req.SetBasicAuth(user, pass)
		return req.Header
	}
	tests := []struct {
		name   string
		body   string
		header http.Header
		status int
		want   string
	}{
		{"no authentication", string(body), http.Header{}, 401, "missing or wrong basic authentication"},
		{"wrong password", string(body), basic("commitflow", "pd-pass-2"), 401, "missing or wrong basic authentication"},
		{"not a webhook", `[1,2]`, basic("commitflow", "pd-pass-1"), 400, "pipedrive: not a webhook body"},
		{"valid", string(body), basic("commitflow", "pd-pass-1"), 200, `"accepted":3`},
		{"retried", strings.Replace(string(body), `"attempt": 1`, `"attempt": 2`, 1), basic("commitflow", "pd-pass-1"), 200, `"accepted":3`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw json.RawMessage
			code, h := post(t, srv, "/v1/webhooks/pipedrive", tt.body, tt.header, &raw)
			if code != tt.status || !strings.Contains(string(raw), tt.want) {
				t.Fatalf("status %d %s, want %d with %s", code, raw, tt.status, tt.want)
			}
			if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic") {
				t.Fatalf("WWW-Authenticate %q", h.Get("WWW-Authenticate"))
			}
		})
	}
	if n := b.msgs(t); n != 3 {
		t.Fatalf("CF_EVENTS holds %d messages, want 3", n)
	}
}

func TestParseTenantSecrets(t *testing.T) {
	tests := []struct {
		in, err string
		want    map[string]string
		basic   bool
	}{
		{in: "", want: map[string]string{}},
		{in: " acme = s3cr=t , globex=x,", want: map[string]string{"acme": "s3cr=t", "globex": "x"}},
		{in: "acme", err: "entry 1: want tenant=secret"},
		{in: "acme=", err: "entry 1: want tenant=secret"},
		{in: "Acme=x", err: `entry 1: invalid tenant "Acme"`},
		{in: "acme=a b", err: "entry 1 (tenant acme): the secret has a space"},
		{in: "acme=x,acme=y", err: "entry 2: tenant acme given twice"},
		{in: "acme=user:pass", want: map[string]string{"acme": "user:pass"}, basic: true},
		{in: "acme=userpass", err: "tenant acme: want user:password", basic: true},
		{in: "acme=:pass", err: "tenant acme: want user:password", basic: true},
	}
	for _, tt := range tests {
		parse := ParseTenantSecrets
		if tt.basic {
			parse = ParsePipedriveAuth
		}
		got, err := parse(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%q: err %v, want %s", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%q: %v %v, want %v", tt.in, got, err, tt.want)
		}
	}
}

// TestOpenAPIGatewayResults: the documented answers of the gateway are its
// JSON.
func TestOpenAPIGatewayResults(t *testing.T) {
	doc := openAPIDoc(t)
	schema := mapAt(doc, "paths", "/v1/events", "post", "responses", "202", "content", "application/json", "schema")
	compareSchema(t, doc, "events", reflect.TypeFor[EventsResult](), schema)
	props := mapAt(resolve(t, doc, mapAt(doc, "components", "schemas", "WebhookResult")), "properties")
	var got []string
	for name := range props {
		got = append(got, name)
	}
	want := jsonFields(reflect.TypeFor[WebhookResult]())
	if len(got) != len(want) {
		t.Fatalf("WebhookResult schema properties %v, JSON fields %v", got, want)
	}
	for _, name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("WebhookResult schema property %q is not in the JSON", name)
		}
	}
	if !bytes.Contains([]byte(mapAt(doc, "paths", "/v1/webhooks/hubspot", "post")["description"].(string)), []byte("X-HubSpot-Signature-v3")) {
		t.Error("the HubSpot webhook's description does not name its signature")
	}
}

// FuzzEventsBody: any body of POST /v1/events splits into events on
// increasing lines, or is refused with a 400 naming the body; every line
// gets a result, and only valid events of the tenant are kept, each once.
func FuzzEventsBody(f *testing.F) {
	f.Add([]byte(ev("e1", "acme", "o1") + "\n\n" + ev("e1", "", "o1") + "\n{\"id\":1}\n"))
	f.Add([]byte("[\n" + ev("a1", "acme", "o1") + ",\n" + ev("a2", "globex", "o1") + "\n]"))
	f.Add([]byte("[1, {\"type\": \"nope\"}] x"))
	g := &gateway{}
	now := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := splitEvents(body)
		if err != nil {
			var ge *gatewayError
			if !errors.As(err, &ge) || ge.status != http.StatusBadRequest || ge.param != "body" {
				t.Fatalf("error %v", err)
			}
			return
		}
		for i := 1; i < len(items); i++ {
			if items[i].line < items[i-1].line {
				t.Fatalf("item %d on line %d after line %d", i, items[i].line, items[i-1].line)
			}
		}
		res, evs := g.check("acme", items, now)
		if len(res.Lines) != len(items) || res.Accepted+res.Duplicated+res.Rejected != len(items) || len(evs) != res.Accepted {
			t.Fatalf("%d items: %+v, %d events", len(items), res, len(evs))
		}
		seen := map[string]bool{}
		for _, e := range evs {
			if e.Tenant != "acme" || seen[bus.MsgID(e)] || e.Validate() != nil {
				t.Fatalf("kept %+v", e)
			}
			seen[bus.MsgID(e)] = true
		}
	})
}
