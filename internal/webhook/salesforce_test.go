package webhook

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

func TestSalesforce(t *testing.T) {
	created := time.Date(2024, 6, 1, 9, 59, 58, 0, time.UTC)
	const (
		a = "0065g00000AbCdEAAV"
		b = "0065g00000FgHiJAAV"
	)
	tests := []struct {
		fixture string
		want    []brief
		refused []string
		ignored map[string]int
	}{
		{"salesforce_cdc_create_cometd.json", []brief{
			{"00051d0c-7d2f-8b3e-a7c1-6e3c6a1c9b21-1-" + a + "-created", a, event.OpportunityCreated, "2024-06-01T10:00:00Z", &event.Opportunity{
				Name: "Acme - 200 seats", AccountID: "0015g00000QrStUAAV", Amount: 48000, Currency: "EUR", CloseDate: "2024-09-30",
				Stage: "Prospecting", Probability: 0.1, ForecastCategory: "Pipeline", OwnerID: "0055g00000XyZaBAAV", LeadSource: "Web",
				CreatedAt: &created, Attributes: map[string]string{"deal_type": "New Business"},
			}},
		}, nil, map[string]int{
			"field:IsClosed": 1, "field:IsWon": 1, "field:ForecastCategory": 1, "field:CreatedById": 1,
			"field:LastModifiedDate": 1, "field:LastModifiedById": 1,
		}},
		{"salesforce_cdc_updates_pubsub.json", []brief{
			// One message, two records: the same change for each.
			{"0004a6e1-38f2-4e5c-0b7a-9d2e4f6a8c10-1-" + a + "-StageName", a, event.StageChanged, "2024-06-07T10:00:00Z", &event.StageChange{To: "Negotiation/Review", Probability: 0.9}},
			{"0004a6e1-38f2-4e5c-0b7a-9d2e4f6a8c10-1-" + a + "-ForecastCategoryName", a, event.ForecastCategoryChanged, "2024-06-07T10:00:00Z", &event.ForecastCategoryChange{To: "Commit"}},
			{"0004a6e1-38f2-4e5c-0b7a-9d2e4f6a8c10-1-" + b + "-StageName", b, event.StageChanged, "2024-06-07T10:00:00Z", &event.StageChange{To: "Negotiation/Review", Probability: 0.9}},
			{"0004a6e1-38f2-4e5c-0b7a-9d2e4f6a8c10-1-" + b + "-ForecastCategoryName", b, event.ForecastCategoryChanged, "2024-06-07T10:00:00Z", &event.ForecastCategoryChange{To: "Commit"}},
			// Amount set to null, a close date in Avro days, an owner.
			{"0004a6e1-5510-7b1c-2d3e-4f5a6b7c8d90-1-" + a + "-Amount", a, event.AmountChanged, "2024-06-08T10:00:00Z", &event.AmountChange{Cleared: true}},
			{"0004a6e1-5510-7b1c-2d3e-4f5a6b7c8d90-1-" + a + "-CloseDate", a, event.CloseDateChanged, "2024-06-08T10:00:00Z", &event.CloseDateChange{To: "2024-07-31"}},
			{"0004a6e1-5510-7b1c-2d3e-4f5a6b7c8d90-1-" + a + "-OwnerId", a, event.OwnerChanged, "2024-06-08T10:00:00Z", &event.OwnerChange{To: "0055g00000LmNoPAAV"}},
			// A probability set to 0, an amount with its currency.
			{"0004a6e1-6621-8c2d-3e4f-5a6b7c8d9e01-2-" + b + "-Probability", b, event.ProbabilityChanged, "2024-06-09T10:00:00Z", &event.ProbabilityChange{}},
			{"0004a6e1-6621-8c2d-3e4f-5a6b7c8d9e01-2-" + b + "-Amount", b, event.AmountChanged, "2024-06-09T10:00:00Z", &event.AmountChange{To: 61000.5, Currency: "USD"}},
		}, []string{
			"4: ChangeEventHeader.changeType GAP_UPDATE (Opportunity 0065g00000QqQqQAAV): a gap event has no field values, the changes are unknown; resync these records with commitflow import of an Opportunity or OpportunityHistory (or OpportunityContactRole) export",
		}, map[string]int{
			"field:ForecastCategory": 1, "field:LastModifiedDate": 3, "change:DELETE": 1, "entity:Account": 1,
		}},
		{"salesforce_cdc_contact_roles.json", []brief{
			// The CREATE: the record's id and CreatedDate, as the
			// OpportunityContactRole import gives the same role.
			{"00K5g00000CrOlEAAV", a, event.ContactAdded, "2024-06-02T09:59:59Z", &event.Contact{ContactID: "0035g00000JkLmNAAV", Role: "Economic Buyer", Side: event.Buyer}},
			// A role changed, with the opportunity in the message.
			{"0003c1a2-3d4e-5f60-7182-93a4b5c6d7e8-2-00K5g00000CrOlFAAV-role", b, event.ContactAdded, "2024-06-03T11:00:00Z", &event.Contact{ContactID: "0035g00000OpQrSAAV", Role: "Champion", Side: event.Buyer}},
		}, nil, map[string]int{
			"field:OpportunityContactRole.IsPrimary": 1, "field:OpportunityContactRole.CreatedById": 1,
			"field:OpportunityContactRole.LastModifiedDate": 2, "field:OpportunityContactRole.LastModifiedById": 1,
			"OpportunityContactRole:UPDATE without OpportunityId": 1, "change:DELETE": 1,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			res, err := Salesforce("acme", fixture(t, tt.fixture), now)
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, res, SalesforceSource, tt.want)
			if !reflect.DeepEqual(res.Ignored, tt.ignored) {
				t.Errorf("ignored %v, want %v", res.Ignored, tt.ignored)
			}
			if got := refusals(res); !reflect.DeepEqual(got, tt.refused) {
				t.Errorf("refused:\n%q\nwant:\n%q", got, tt.refused)
			}
		})
	}
}

func refusals(res Result) []string {
	var out []string
	for _, r := range res.Refused {
		out = append(out, strconv.Itoa(r.Index)+": "+r.Reason)
	}
	return out
}

// TestSalesforceFields: one UPDATE message per case, CometD style (only
// the changed fields, no changedFields) unless changedFields is given.
func TestSalesforceFields(t *testing.T) {
	msg := func(changed, fields string) []byte {
		return []byte(`{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":["006A"],"changeType":"UPDATE","transactionKey":"tk","sequenceNumber":3,"commitTimestamp":1717236000000,"commitUser":"005U","changedFields":[` + changed + `]},` + fields + `}`)
	}
	tests := []struct {
		name, changed, fields string
		want                  []brief
		ignored               map[string]int
		refused               string
	}{
		{"stage with probability, CometD", ``, `"StageName":"Closed Won","Probability":100,"IsClosed":true,"IsWon":true`, []brief{
			{"tk-3-006A-StageName", "006A", event.StageChanged, "2024-06-01T10:00:00Z", &event.StageChange{To: "Closed Won", Probability: 1}},
		}, map[string]int{"field:IsClosed": 1, "field:IsWon": 1}, ""},
		{"stage to a probability of 0", `"StageName","Probability"`, `"StageName":"Closed Lost","Probability":0`, []brief{
			{"tk-3-006A-StageName", "006A", event.StageChanged, "2024-06-01T10:00:00Z", &event.StageChange{To: "Closed Lost"}},
			{"tk-3-006A-Probability", "006A", event.ProbabilityChanged, "2024-06-01T10:00:00Z", &event.ProbabilityChange{}},
		}, nil, ""},
		{"probability alone", ``, `"Probability":"35"`, []brief{
			{"tk-3-006A-Probability", "006A", event.ProbabilityChanged, "2024-06-01T10:00:00Z", &event.ProbabilityChange{To: 0.35}},
		}, nil, ""},
		{"currency alone", ``, `"CurrencyIsoCode":"gbp"`, []brief{
			{"tk-3-006A-CurrencyIsoCode", "006A", event.OpportunityUpdated, "2024-06-01T10:00:00Z", &event.Opportunity{Currency: "GBP"}},
		}, nil, ""},
		{"Avro unions", ``, `"Amount":{"double":1200.5},"Name":{"string":"Renewal"}`, []brief{
			{"tk-3-006A-Amount", "006A", event.AmountChanged, "2024-06-01T10:00:00Z", &event.AmountChange{To: 1200.5}},
			{"tk-3-006A-Name", "006A", event.OpportunityUpdated, "2024-06-01T10:00:00Z", &event.Opportunity{Name: "Renewal"}},
		}, nil, ""},
		{"type, lead source, account", ``, `"Type":"Renewal","LeadSource":"Partner","AccountId":"001X"`, []brief{
			{"tk-3-006A-AccountId", "006A", event.OpportunityUpdated, "2024-06-01T10:00:00Z", &event.Opportunity{AccountID: "001X"}},
			{"tk-3-006A-LeadSource", "006A", event.OpportunityUpdated, "2024-06-01T10:00:00Z", &event.Opportunity{LeadSource: "Partner"}},
			{"tk-3-006A-Type", "006A", event.OpportunityUpdated, "2024-06-01T10:00:00Z", &event.Opportunity{Attributes: map[string]string{"deal_type": "Renewal"}}},
		}, nil, ""},
		{"type and close date cleared", `"Type","CloseDate","OwnerId"`, `"Type":null`, []brief{
			{"tk-3-006A-Type", "006A", event.OpportunityUpdated, "2024-06-01T10:00:00Z", &event.Opportunity{Attributes: map[string]string{"deal_type": ""}}},
		}, map[string]int{"cleared:CloseDate": 1, "cleared:OwnerId": 1}, ""},
		{"close date in milliseconds", ``, `"CloseDate":1722384000000`, []brief{
			{"tk-3-006A-CloseDate", "006A", event.CloseDateChanged, "2024-06-01T10:00:00Z", &event.CloseDateChange{To: "2024-07-31"}},
		}, nil, ""},
		{"a bitmap changedFields falls back on the values", `"0x650004E0"`, `"OwnerId":"005B","LastModifiedDate":1717236000000`, []brief{
			{"tk-3-006A-OwnerId", "006A", event.OwnerChanged, "2024-06-01T10:00:00Z", &event.OwnerChange{To: "005B"}},
		}, map[string]int{"field:LastModifiedDate": 1}, ""},
		{"amount not a number", ``, `"Amount":"lots"`, []brief{}, nil, `Opportunity 006A field Amount: "lots" is not a number`},
		{"close date not a date", ``, `"CloseDate":"soon"`, []brief{}, nil, `Opportunity 006A field CloseDate: "soon" is not a date (want YYYY-MM-DD, RFC 3339 or Unix milliseconds)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Salesforce("acme", msg(tt.changed, tt.fields), now)
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, res, SalesforceSource, tt.want)
			if !reflect.DeepEqual(res.Ignored, tt.ignored) {
				t.Errorf("ignored %v, want %v", res.Ignored, tt.ignored)
			}
			var refused string
			if len(res.Refused) > 0 {
				refused = res.Refused[0].Reason
			}
			if refused != tt.refused {
				t.Errorf("refused %v, want %q", res.Refused, tt.refused)
			}
		})
	}
}

// TestSalesforceRefused: messages refused whole, with the field at fault.
func TestSalesforceRefused(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{"StageName":"x"}`, "no ChangeEventHeader: not a change event message"},
		{`{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":["006A"],"changeType":"GAP_OVERFLOW","transactionKey":"t","commitTimestamp":1}}`, "ChangeEventHeader.changeType GAP_OVERFLOW"},
		{`{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":["006A"],"changeType":"MERGE","transactionKey":"t","commitTimestamp":1}}`, `ChangeEventHeader.changeType: "MERGE" is not`},
		{`{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":["006A"],"changeType":"UPDATE","transactionKey":"t"}}`, "ChangeEventHeader.commitTimestamp"},
		{`{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":["006A"],"changeType":"UPDATE","commitTimestamp":1717236000000}}`, "ChangeEventHeader.transactionKey: missing"},
		{`{"ChangeEventHeader":{"entityName":"Opportunity","changeType":"UPDATE","transactionKey":"t","commitTimestamp":1717236000000}}`, "ChangeEventHeader.recordIds: missing"},
		{`{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":["006*"],"changeType":"UPDATE","transactionKey":"t","commitTimestamp":1717236000000}}`, `ChangeEventHeader.recordIds: "006*"`},
		{`{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":"006A"}}`, "ChangeEventHeader: json: cannot unmarshal"},
	}
	for _, tt := range tests {
		res, err := Salesforce("acme", []byte(tt.body), now)
		if err != nil {
			t.Fatalf("%s: %v", tt.body, err)
		}
		if len(res.Refused) != 1 || !strings.HasPrefix(res.Refused[0].Reason, tt.want) || len(res.Events) > 0 {
			t.Errorf("%s: refused %v, events %d; want one starting %q", tt.body, res.Refused, len(res.Events), tt.want)
		}
	}
	for _, body := range []string{``, `nope`, `[1]`, `["x"]`, `[{"ChangeEventHeader":{}},`, `null`} {
		if _, err := Salesforce("acme", []byte(body), now); err == nil {
			t.Errorf("%q: no error", body)
		}
	}
}

func TestVerifySalesforce(t *testing.T) {
	const secret = "sf-relay-secret-1"
	body := []byte(`{"ChangeEventHeader":{"entityName":"Opportunity"}}`)
	// HMAC-SHA256 computed apart from this package: printf %s "$body" |
	// openssl dgst -sha256 -hmac sf-relay-secret-1
	const sig = "sha256=901d6a2c6e984153d92248a95940a6f57da850c9bae0a991dd099f7f25cc7bf5"
	if got := SignSalesforce(secret, body); got != sig {
		t.Fatalf("SignSalesforce: %s, want %s", got, sig)
	}
	for _, tt := range []struct {
		secret, sig string
		body        []byte
		ok          bool
	}{
		{secret, sig, body, true},
		{secret, " " + sig + " ", body, true},
		{"other", sig, body, false},
		{secret, sig, append(body, ' '), false},
		{secret, strings.TrimPrefix(sig, "sha256="), body, false},
		{secret, "sha256=zz", body, false},
		{secret, "", body, false},
		{"", SignSalesforce("", body), body, false},
	} {
		err := VerifySalesforce(tt.secret, tt.body, tt.sig)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrSignature)) {
			t.Errorf("secret %q sig %q: %v, want ok=%v", tt.secret, tt.sig, err, tt.ok)
		}
	}
}

func FuzzSalesforceCDC(f *testing.F) {
	for _, name := range []string{"salesforce_cdc_create_cometd.json", "salesforce_cdc_updates_pubsub.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"ChangeEventHeader":{"entityName":"Opportunity","recordIds":["006A","006B"],"changeType":"UPDATE","transactionKey":"tk","sequenceNumber":1,"commitTimestamp":1717236000000,"changedFields":["Amount","Type"],"nulledFields":["Amount"]},"Type":{"string":"New"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkMapped(t, SalesforceSource, func() (Result, error) { return Salesforce("acme", body, now) })
	})
}
