package webhook

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

var now = time.Date(2024, 6, 1, 10, 0, 5, 0, time.UTC)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// brief is an event as the tests compare it.
type brief struct {
	ID, Opp string
	Type    event.Type
	At      string
	Payload event.Payload
}

func briefs(evs []event.Event) []brief {
	out := make([]brief, len(evs))
	for i, e := range evs {
		out[i] = brief{e.ID, e.OpportunityID, e.Type, e.OccurredAt.Format(time.RFC3339), e.Payload}
	}
	return out
}

// checkEvents compares res's events with want and checks that every one
// is valid with tenant, source and received time set.
func checkEvents(t *testing.T, res Result, source string, want []brief) {
	t.Helper()
	if got := briefs(res.Events); !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", dump(got), dump(want))
	}
	for _, e := range res.Events {
		if e.Tenant != "acme" || e.Source != source || !e.ReceivedAt.Equal(now) {
			t.Errorf("%s: tenant %q source %q received %v", e.ID, e.Tenant, e.Source, e.ReceivedAt)
		}
		if err := e.Validate(); err != nil {
			t.Errorf("%s: %v", e.ID, err)
		}
	}
}

func dump(bs []brief) string {
	var b strings.Builder
	for _, x := range bs {
		data, _ := event.Marshal(event.Event{ID: x.ID, OpportunityID: x.Opp, Type: x.Type, Payload: x.Payload})
		b.WriteString(x.At + " " + string(data) + "\n")
	}
	return b.String()
}

func TestHubSpot(t *testing.T) {
	tests := []struct {
		fixture string
		want    []brief
		ignored map[string]int
	}{
		{"hubspot_deal_batch.json", []brief{
			{"deal-9876543210-1717236000000-1001-created", "9876543210", event.OpportunityCreated, "2024-06-01T10:00:00Z", &event.Opportunity{}},
			{"deal-9876543210-1717236000000-1002-dealstage", "9876543210", event.StageChanged, "2024-06-01T10:00:00Z", &event.StageChange{To: "appointmentscheduled"}},
			{"deal-9876543210-1717236000000-1003-amount", "9876543210", event.AmountChanged, "2024-06-01T10:00:00Z", &event.AmountChange{To: 25000}},
			{"deal-9876543210-1717236000000-1004-deal_currency_code", "9876543210", event.OpportunityUpdated, "2024-06-01T10:00:00Z", &event.Opportunity{Currency: "EUR"}},
			{"deal-9876543210-1717236000000-1005-closedate", "9876543210", event.CloseDateChanged, "2024-06-01T10:00:00Z", &event.CloseDateChange{To: "2024-06-30"}},
			{"deal-9876543210-1717236000000-1006-hubspot_owner_id", "9876543210", event.OwnerChanged, "2024-06-01T10:00:00Z", &event.OwnerChange{To: "512345"}},
			{"deal-9876543210-1718445600000-1009-dealstage", "9876543210", event.StageChanged, "2024-06-15T10:00:00Z", &event.StageChange{To: "closedlost"}},
			{"deal-9876543210-1718445600000-1010-closed_lost_reason", "9876543210", event.ClosedLost, "2024-06-15T10:00:00Z", &event.Lost{Reason: "No decision"}},
		}, map[string]int{"property:hs_lastmodifieddate": 1, "subscription:contact.creation": 1}},
		{"hubspot_object_deal.json", []brief{
			{"deal-555-1717239600000-2001-dealstage", "555", event.StageChanged, "2024-06-01T11:00:00Z", &event.StageChange{To: "qualifiedtobuy"}},
		}, map[string]int{"subscription:object.propertyChange": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			res, err := HubSpot("acme", fixture(t, tt.fixture), now)
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, res, HubSpotSource, tt.want)
			if !reflect.DeepEqual(res.Ignored, tt.ignored) {
				t.Errorf("ignored %v, want %v", res.Ignored, tt.ignored)
			}
			if len(res.Refused) > 0 {
				t.Errorf("refused %v", res.Refused)
			}
		})
	}
}

func TestHubSpotProperties(t *testing.T) {
	note := func(prop, value string) []byte {
		return []byte(`[{"eventId":7,"subscriptionId":1,"portalId":2,"appId":3,"occurredAt":1717236000000,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":9,"propertyName":"` + prop + `","propertyValue":` + value + `,"changeSource":"CRM_UI"}]`)
	}
	tests := []struct {
		prop, value string
		typ         event.Type
		payload     event.Payload
		ignored     string
		refused     string
	}{
		{"amount", `"1500.50"`, event.AmountChanged, &event.AmountChange{To: 1500.5}, "", ""},
		{"amount", `""`, event.AmountChanged, &event.AmountChange{}, "", ""},
		{"amount", `"12k"`, "", nil, "", `deal 9 property amount: "12k" is not a number`},
		{"closedate", `"2024-07-01T00:00:00.000Z"`, event.CloseDateChanged, &event.CloseDateChange{To: "2024-07-01"}, "", ""},
		{"closedate", `"2024-07-01"`, event.CloseDateChanged, &event.CloseDateChange{To: "2024-07-01"}, "", ""},
		{"closedate", `""`, "", nil, "cleared:closedate", ""},
		{"closedate", `"soon"`, "", nil, "", `deal 9 property closedate: "soon" is not a date (want YYYY-MM-DD, RFC 3339 or Unix milliseconds)`},
		{"hubspot_owner_id", `null`, "", nil, "cleared:hubspot_owner_id", ""},
		{"pipeline", `"default"`, event.OpportunityUpdated, &event.Opportunity{Pipeline: "default"}, "", ""},
		{"dealname", `"Acme renewal"`, event.OpportunityUpdated, &event.Opportunity{Name: "Acme renewal"}, "", ""},
		{"deal_currency_code", `"usd"`, event.OpportunityUpdated, &event.Opportunity{Currency: "USD"}, "", ""},
		{"hs_manual_forecast_category", `"COMMIT"`, event.ForecastCategoryChanged, &event.ForecastCategoryChange{To: "COMMIT"}, "", ""},
		{"closed_won_reason", `"Best fit"`, event.ClosedWon, &event.Won{Reason: "Best fit"}, "", ""},
		{"closed_lost_reason", `""`, "", nil, "cleared:closed_lost_reason", ""},
		{"dealstage", `"contractsent"`, event.StageChanged, &event.StageChange{To: "contractsent"}, "", ""},
		{"hs_deal_stage_probability", `"0.4"`, "", nil, "property:hs_deal_stage_probability", ""},
		{"my_custom", `""`, "", nil, "property:my_custom", ""},
	}
	for _, tt := range tests {
		t.Run(tt.prop+"="+tt.value, func(t *testing.T) {
			res, err := HubSpot("acme", note(tt.prop, tt.value), now)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.refused != "":
				if len(res.Refused) != 1 || res.Refused[0].Reason != tt.refused || len(res.Events) > 0 {
					t.Fatalf("refused %v, events %d; want %q", res.Refused, len(res.Events), tt.refused)
				}
			case tt.ignored != "":
				if res.Ignored[tt.ignored] != 1 || len(res.Events) > 0 {
					t.Fatalf("ignored %v, events %d; want %s", res.Ignored, len(res.Events), tt.ignored)
				}
			default:
				if len(res.Events) != 1 || res.Events[0].Type != tt.typ || !reflect.DeepEqual(res.Events[0].Payload, tt.payload) {
					t.Fatalf("events %s, want %s %+v", dump(briefs(res.Events)), tt.typ, tt.payload)
				}
			}
		})
	}
}

func TestHubSpotMalformed(t *testing.T) {
	for _, body := range []string{``, `{}`, `{"eventId":1}`, `[{"eventId":"x"}]`, `[1]`, `[{"propertyValue":{}}]`} {
		if _, err := HubSpot("acme", []byte(body), now); err == nil {
			t.Errorf("%s: no error", body)
		}
	}
}

// TestHubSpotRetry: a notification delivered again (attemptNumber 1) maps
// to the same event ids.
func TestHubSpotRetry(t *testing.T) {
	body := fixture(t, "hubspot_deal_batch.json")
	first, err := HubSpot("acme", body, now)
	if err != nil {
		t.Fatal(err)
	}
	again, err := HubSpot("acme", bytes.ReplaceAll(body, []byte(`"attemptNumber": 0`), []byte(`"attemptNumber": 1`)), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(briefs(first.Events), briefs(again.Events)) {
		t.Fatalf("a retry maps to other events:\n%s\n%s", dump(briefs(first.Events)), dump(briefs(again.Events)))
	}
}

func TestVerifyHubSpot(t *testing.T) {
	const (
		secret = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
		uri    = "https://commitflow.example.com/v1/webhooks/hubspot?tenant=acme"
		ts     = "1717236000000" // 2024-06-01T10:00:00Z
		// HMAC-SHA256 computed apart from this package (Python's hmac
		// module) over "POST" + uri + body + ts.
		sig = "Yjdyin3OTU4W+5beHYF6gGIQcSDe3NrGoSfbaO0Y39U="
	)
	body := []byte(`[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]`)
	at := time.UnixMilli(1717236000000)
	tests := []struct {
		name                    string
		secret, method, uri, ts string
		sig                     string
		body                    []byte
		now                     time.Time
		want                    error
	}{
		{"valid", secret, "POST", uri, ts, sig, body, at, nil},
		{"valid 4m59s later", secret, "POST", uri, ts, sig, body, at.Add(4*time.Minute + 59*time.Second), nil},
		{"encoded characters compared decoded", secret, "POST", "https%3A%2F%2Fcommitflow.example.com/v1/webhooks/hubspot%3Ftenant=acme", ts, sig, body, at, nil},
		{"wrong secret", "zzzz", "POST", uri, ts, sig, body, at, ErrSignature},
		{"body changed", secret, "POST", uri, ts, sig, append(bytes.Clone(body), ' '), at, ErrSignature},
		{"other tenant in the URI", secret, "POST", strings.Replace(uri, "acme", "globex", 1), ts, sig, body, at, ErrSignature},
		{"other method", secret, "PUT", uri, ts, sig, body, at, ErrSignature},
		{"no signature", secret, "POST", uri, ts, "", body, at, ErrSignature},
		{"signature not base64", secret, "POST", uri, ts, "%%%", body, at, ErrSignature},
		{"no secret", "", "POST", uri, ts, sig, body, at, ErrSignature},
		{"timestamp 6 minutes old", secret, "POST", uri, ts, sig, body, at.Add(6 * time.Minute), ErrStale},
		{"timestamp 6 minutes ahead", secret, "POST", uri, ts, sig, body, at.Add(-6 * time.Minute), ErrStale},
		{"no timestamp", secret, "POST", uri, "", sig, body, at, ErrStale},
		{"timestamp in seconds", secret, "POST", uri, "1717236000", sig, body, at, ErrStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyHubSpot(tt.secret, tt.method, tt.uri, tt.body, tt.ts, tt.sig, tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if got := base64.StdEncoding.EncodeToString(SignHubSpot(secret, "POST", uri, body, ts)); got != sig {
		t.Fatalf("SignHubSpot = %s, want %s", got, sig)
	}
}

func TestPipedrive(t *testing.T) {
	const v2 = "8c2f1d3e-5b6a-4c7d-8e9f-0a1b2c3d4e5f"
	tests := []struct {
		fixture string
		want    []brief
		ignored map[string]int
	}{
		{"pipedrive_v2_deal_change.json", []brief{
			{v2 + ":close_date", "42", event.CloseDateChanged, "2024-06-03T09:15:00Z", &event.CloseDateChange{From: "2024-06-30", To: "2024-07-31"}},
			{v2 + ":stage", "42", event.StageChanged, "2024-06-03T09:15:00Z", &event.StageChange{Pipeline: "1", From: "2", To: "3"}},
			{v2 + ":amount", "42", event.AmountChanged, "2024-06-03T09:15:00Z", &event.AmountChange{From: 40000, To: 48000, Currency: "EUR"}},
		}, map[string]int{"field:stage_change_time": 1, "field:update_time": 1}},
		{"pipedrive_v2_deal_create.json", []brief{
			{"1:created", "1", event.OpportunityCreated, "2024-09-27T14:25:28Z", &event.Opportunity{
				Name: "test deal", Amount: 2, Currency: "USD", Pipeline: "1", Stage: "1", OwnerID: "18487521"}},
		}, nil},
		{"pipedrive_v2_deal_lost.json", []brief{
			{"1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed:lost", "42", event.ClosedLost, "2024-06-20T16:00:00Z", &event.Lost{Reason: "Went with a competitor"}},
		}, map[string]int{"cleared:expected_close_date": 1, "field:custom_fields": 1, "field:lost_time": 1}},
		{"pipedrive_v1_deal_updated.json", []brief{
			{"77@1718200000384700:close_date", "77", event.CloseDateChanged, "2024-06-12T13:46:40Z", &event.CloseDateChange{From: "2024-06-30", To: "2024-06-12"}},
			{"77@1718200000384700:stage", "77", event.StageChanged, "2024-06-12T13:46:40Z", &event.StageChange{Pipeline: "1", From: "4", To: "5"}},
			{"77@1718200000384700:won", "77", event.ClosedWon, "2024-06-12T13:46:40Z", &event.Won{Amount: 15000}},
			{"77@1718200000384700:owner", "77", event.OwnerChanged, "2024-06-12T13:46:40Z", &event.OwnerChange{From: "7654321", To: "7654322"}},
			{"77@1718200000384700:amount", "77", event.AmountChanged, "2024-06-12T13:46:40Z", &event.AmountChange{From: 12000, To: 15000, Currency: "USD"}},
		}, map[string]int{"field:update_time": 1, "field:won_time": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			res, err := Pipedrive("acme", fixture(t, tt.fixture), now)
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, res, PipedriveSource, tt.want)
			if !reflect.DeepEqual(res.Ignored, tt.ignored) {
				t.Errorf("ignored %v, want %v", res.Ignored, tt.ignored)
			}
			if len(res.Refused) > 0 {
				t.Errorf("refused %v", res.Refused)
			}
		})
	}
}

func TestPipedriveShapes(t *testing.T) {
	tests := []struct {
		name, body string
		types      []event.Type
		ignored    string
		err        string
	}{
		{"person entity", `{"meta":{"action":"change","entity":"person","id":"a","timestamp":"2024-06-01T00:00:00Z"},"data":{"id":1},"previous":{"name":"x"}}`, nil, "entity:person", ""},
		{"deal deleted", `{"meta":{"action":"delete","entity":"deal","id":"a","timestamp":"2024-06-01T00:00:00Z"},"data":null,"previous":{"id":1}}`, nil, "action:delete", ""},
		{"v1 merged", `{"v":1,"meta":{"action":"merged","object":"deal","id":1,"timestamp":1718200000},"current":{"id":1},"previous":{"id":2}}`, nil, "action:merged", ""},
		{"reopened", `{"meta":{"action":"change","entity":"deal","id":"a","timestamp":"2024-06-01T00:00:00Z"},"data":{"id":1,"status":"open"},"previous":{"status":"lost"}}`, nil, "status:open", ""},
		{"value and currency: one change", `{"meta":{"action":"change","entity":"deal","id":"a","timestamp":"2024-06-01T00:00:00Z"},"data":{"id":1,"value":"10","currency":"GBP"},"previous":{"value":"8","currency":"EUR"}}`, []event.Type{event.AmountChanged}, "", ""},
		{"currency alone", `{"meta":{"action":"change","entity":"deal","id":"a","timestamp":"2024-06-01T00:00:00Z"},"data":{"id":1,"value":10,"currency":"GBP"},"previous":{"currency":"EUR"}}`, []event.Type{event.AmountChanged}, "", ""},
		{"lost reason filled in later", `{"meta":{"action":"change","entity":"deal","id":"a","timestamp":"2024-06-01T00:00:00Z"},"data":{"id":1,"status":"lost","lost_reason":"Price"},"previous":{"lost_reason":null}}`, []event.Type{event.ClosedLost}, "", ""},
		{"title", `{"meta":{"action":"change","entity":"deal","id":"a","timestamp":"2024-06-01T00:00:00Z"},"data":{"id":1,"title":"New"},"previous":{"title":"Old"}}`, []event.Type{event.OpportunityUpdated}, "", ""},
		{"created won", `{"meta":{"action":"create","entity":"deal","id":"a","timestamp":"2024-06-01T00:00:00Z"},"data":{"id":1,"value":5,"status":"won","expected_close_date":"2024-06-01"}}`, []event.Type{event.OpportunityCreated, event.ClosedWon}, "", ""},
		{"timestamp from update_time", `{"meta":{"action":"change","entity":"deal","id":"a"},"data":{"id":1,"stage_id":2,"update_time":"2024-06-01T00:00:00Z"},"previous":{"stage_id":1}}`, []event.Type{event.StageChanged}, "", ""},
		{"no entity", `{"meta":{"action":"change"},"data":{"id":1}}`, nil, "", "pipedrive: meta has neither entity (v2) nor object (v1)"},
		{"no deal", `{"meta":{"action":"change","entity":"deal","id":"a","timestamp":"2024-06-01T00:00:00Z"}}`, nil, "", "pipedrive: the deal (data, or v1 current) is missing"},
		{"no deal id", `{"meta":{"action":"change","entity":"deal","id":"a","timestamp":"2024-06-01T00:00:00Z"},"data":{"title":"x"}}`, nil, "", "pipedrive: the deal has no id"},
		{"bad timestamp", `{"meta":{"action":"change","entity":"deal","id":"a","timestamp":"yesterday"},"data":{"id":1}}`, nil, "", `pipedrive: meta.timestamp: "yesterday" is not a time (want Unix seconds or milliseconds, or RFC 3339)`},
		{"not JSON", `meta=1`, nil, "", "pipedrive: not a webhook body: invalid character 'm' looking for beginning of value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Pipedrive("acme", []byte(tt.body), now)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var types []event.Type
			for _, e := range res.Events {
				types = append(types, e.Type)
				if err := e.Validate(); err != nil {
					t.Errorf("%s: %v", e.ID, err)
				}
			}
			if !reflect.DeepEqual(types, tt.types) {
				t.Errorf("types %v, want %v", types, tt.types)
			}
			if tt.ignored != "" && res.Ignored[tt.ignored] != 1 {
				t.Errorf("ignored %v, want %s", res.Ignored, tt.ignored)
			}
		})
	}
}
