package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/dlq"
	"github.com/commitflow/commitflow/internal/webhook"
)

// dlqGateway serves the gateway with refused notifications dead-lettered
// to b's CF_DLQ.
func dlqGateway(t *testing.T, b *testBus) *httptest.Server {
	t.Helper()
	parts, err := bus.Partitions(t.Context(), b.js)
	if err != nil {
		t.Fatal(err)
	}
	return gatewayServer(t, b.pub, func(gw *GatewayConfig) {
		gw.DeadLetters = NewDeadLetters(b.js, parts, bus.PublishOptions{})
	})
}

// letters returns the dead letters of CF_DLQ as "subject | reason | body".
func letters(t *testing.T, b *testBus) []string {
	t.Helper()
	var out []string
	err := dlq.Scan(t.Context(), b.js, dlq.Filter{}, 0, func(l dlq.Letter) error {
		out = append(out, l.Subject+" | "+l.Reason+" | "+string(l.Data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sfHeaders(secret, body string) http.Header {
	return http.Header{webhook.SalesforceSignatureHeader: {webhook.SignSalesforce(secret, []byte(body))}}
}

func readFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../webhook/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSalesforceWebhook(t *testing.T) {
	b := startBus(t)
	srv := dlqGateway(t, b)
	body := readFixture(t, "salesforce_cdc_updates_pubsub.json")
	path := "/v1/webhooks/salesforce"
	tests := []struct {
		name   string
		header http.Header
		status int
		want   string
	}{
		{"no signature", http.Header{}, 401, "X-Commitflow-Signature is missing or does not match"},
		{"wrong secret", sfHeaders("other", body), 401, "does not match"},
		{"signed another body", sfHeaders(sfSecret, body+" "), 401, "does not match"},
		{"valid", sfHeaders(sfSecret, body), 200, `"accepted":9`},
		{"replayed", sfHeaders(sfSecret, body), 200, `"accepted":9`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw json.RawMessage
			code, _ := post(t, srv, path, body, tt.header, &raw)
			if code != tt.status || !strings.Contains(string(raw), tt.want) {
				t.Fatalf("status %d %s, want %d with %s", code, raw, tt.status, tt.want)
			}
			if code == 401 && b.msgs(t) != 0 {
				t.Fatal("a refused request published events")
			}
		})
	}
	if n := b.msgs(t); n != 9 {
		t.Fatalf("CF_EVENTS holds %d messages, want 9", n)
	}
	var res WebhookResult
	post(t, srv, path, body, sfHeaders(sfSecret, body), &res)
	if len(res.Refused) != 1 || res.Refused[0].Index != 4 || !strings.Contains(res.Refused[0].Reason, "GAP_UPDATE") ||
		!reflect.DeepEqual(res.Ignored, map[string]int{"field:ForecastCategory": 1, "field:LastModifiedDate": 3, "change:DELETE": 1, "entity:Account": 1}) {
		t.Fatalf("refused %+v ignored %v", res.Refused, res.Ignored)
	}
	// The gap event is dead-lettered once (the body came three times),
	// with its own bytes.
	got := letters(t, b)
	var msgs []json.RawMessage
	if err := json.Unmarshal([]byte(body), &msgs); err != nil {
		t.Fatal(err)
	}
	want := "cf.events.acme.salesforce.unmapped.0 | " + res.Refused[0].Reason + " | " + string(msgs[4])
	if len(got) != 1 || got[0] != want {
		t.Fatalf("dead letters:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}

// TestWebhookDeadLetters: a notification whose event fails validation is
// dead-lettered on that event's subject with the field at fault, and one
// the mapping refuses on the vendor's unmapped subject; the others of the
// same body are stored.
func TestWebhookDeadLetters(t *testing.T) {
	b := startBus(t)
	srv := dlqGateway(t, b)

	cdc := `{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":["006A"],"changeType":"UPDATE","transactionKey":"tk1","sequenceNumber":1,"commitTimestamp":1717236000000,"changedFields":["Probability","OwnerId"]},"Probability":150,"OwnerId":"005B"}`
	var res WebhookResult
	if code, _ := post(t, srv, "/v1/webhooks/salesforce", cdc, sfHeaders(sfSecret, cdc), &res); code != 200 || res.Accepted != 1 || len(res.Refused) != 1 {
		t.Fatalf("salesforce: %d %+v", code, res)
	}
	probability := bus.EventsPrefix + "acme.salesforce.opportunity_probability_changed."
	hub := `[{"eventId":7,"subscriptionId":1,"portalId":2,"appId":3,"occurredAt":1717236000000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":9,"propertyName":"amount","propertyValue":"12k"},` +
		`{"eventId":8,"subscriptionId":1,"portalId":2,"appId":3,"occurredAt":1717236000000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":9,"propertyName":"dealstage","propertyValue":"contractsent"}]`
	path := "/v1/webhooks/hubspot"
	if code, _ := post(t, srv, path, hub, hubspotHeaders(hubSecret, srv.URL+path, hub, time.Now()), &res); code != 200 || res.Accepted != 1 || len(res.Refused) != 1 || res.Refused[0].Index != 0 {
		t.Fatalf("hubspot: %d %+v", code, res)
	}
	got := letters(t, b)
	if len(got) != 2 {
		t.Fatalf("dead letters:\n%s", strings.Join(got, "\n"))
	}
	if !strings.HasPrefix(got[0], probability) || !strings.Contains(got[0], " | tk1-1-006A-Probability: payload.to: must be between 0 and 1, got 1.5 | "+cdc) {
		t.Errorf("the invalid event's letter: %s", got[0])
	}
	wantHub := `cf.events.acme.hubspot.unmapped.0 | deal 9 property amount: "12k" is not a number | {"eventId":7,`
	if !strings.HasPrefix(got[1], wantHub) || strings.Contains(got[1], "dealstage") {
		t.Errorf("the refused notification's letter: %s, want %s...", got[1], wantHub)
	}
	if n := b.msgs(t); n != 2 {
		t.Fatalf("CF_EVENTS holds %d messages, want 2", n)
	}
	// dlq replay puts both back on CF_EVENTS, on the subjects they name
	// (where the ingest worker refuses them again, as they are not
	// canonical events).
	if n, err := dlq.Replay(t.Context(), b.js, dlq.Filter{}, nil); n != 2 || err != nil {
		t.Fatalf("replayed %d (%v), want 2", n, err)
	}
	if n := b.msgs(t); n != 4 {
		t.Fatalf("after the replay CF_EVENTS holds %d messages, want 4", n)
	}
}

func TestGongWebhook(t *testing.T) {
	b := startBus(t)
	srv := dlqGateway(t, b)
	body := readFixture(t, "gong_webhook.json")
	tests := []struct {
		name, path string
		status     int
		want       string
	}{
		{"no key", "/v1/webhooks/gong", 401, "missing or wrong key"},
		{"wrong key", "/v1/webhooks/gong?key=nope", 401, "missing or wrong key"},
		{"a tenant without a key", "/v1/webhooks/gong?tenant=globex&key=" + gongKey, 401, "no gong webhook secret is configured for this tenant"},
		{"valid", "/v1/webhooks/gong?key=" + gongKey, 200, `"accepted":1`},
		{"valid, the tenant named, again", "/v1/webhooks/gong?tenant=acme&key=" + gongKey, 200, `"accepted":1`},
		{"not call data", "/v1/webhooks/gong?key=" + gongKey, 400, "gong: want a /v2/calls/extensive response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			send := body
			if tt.status == 400 {
				send = `{"records":{}}`
			}
			var raw json.RawMessage
			code, _ := post(t, srv, tt.path, send, http.Header{}, &raw)
			if code != tt.status || !strings.Contains(string(raw), tt.want) {
				t.Fatalf("status %d %s, want %d with %s", code, raw, tt.status, tt.want)
			}
		})
	}
	if n := b.msgs(t); n != 1 {
		t.Fatalf("CF_EVENTS holds %d messages, want 1", n)
	}
}

// TestPostEventsDeadLetters: the rejected lines of POST /v1/events — a
// field out of range, an event type this version does not know — are
// answered and kept in CF_DLQ with the line and the reason, in atomic mode
// too; a line naming another tenant is only answered; the valid lines are
// stored. Before, the rejected lines were answered and gone.
func TestPostEventsDeadLetters(t *testing.T) {
	b := startBus(t)
	srv := dlqGateway(t, b)
	bad := `{"v":1,"id":"x2","source":"api","type":"opportunity.probability_changed","occurred_at":"2024-06-01T10:00:00Z","opportunity_id":"o1","payload":{"to":1.5}}`
	newer := `{"v":1,"id":"x3","source":"api","type":"opportunity.renamed","occurred_at":"2024-06-01T10:00:00Z","opportunity_id":"o1","payload":{}}`
	body := ev("x1", "acme", "o1") + "\n" + bad + "\n" + newer + "\n" + ev("x4", "globex", "o1") + "\n"
	var res EventsResult
	if code, _ := post(t, srv, "/v1/events", body, bearer(acmeToken), &res); code != 202 || res.Accepted != 1 || res.Rejected != 3 {
		t.Fatalf("%d %+v", code, res)
	}
	got := letters(t, b)
	if len(got) != 2 {
		t.Fatalf("dead letters:\n%s", strings.Join(got, "\n"))
	}
	want := []string{
		"cf.events.acme.http.rejected.0 | line 2: payload.to: must be between 0 and 1, got 1.5 | " + bad,
		"cf.events.acme.http.rejected.0 | line 3: type: ",
	}
	if got[0] != want[0] || !strings.HasPrefix(got[1], want[1]) || !strings.Contains(got[1], `"opportunity.renamed"`) {
		t.Errorf("dead letters:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := b.msgs(t); n != 1 {
		t.Fatalf("CF_EVENTS holds %d messages, want 1", n)
	}
	// Atomic: nothing stored, the rejected line still kept; the same
	// line again is dead-lettered once (the letter's id hashes it).
	for range 2 {
		if code, _ := post(t, srv, "/v1/events?atomic=true", ev("x5", "acme", "o1")+"\n"+bad, bearer(acmeToken), &res); code != 400 {
			t.Fatalf("atomic: %d %+v", code, res)
		}
	}
	if got := letters(t, b); len(got) != 2 {
		t.Fatalf("after the atomic requests, dead letters:\n%s", strings.Join(got, "\n"))
	}
}
