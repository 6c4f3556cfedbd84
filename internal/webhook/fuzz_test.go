package webhook

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/event"
)

// checkMapped checks what a parser made of any body: the same result when
// parsed again, and events that carry the tenant, the source and a payload
// of their type, so that event.Validate can only find fault with values.
func checkMapped(t *testing.T, source string, parse func() (Result, error)) {
	res, err := parse()
	again, err2 := parse()
	if (err == nil) != (err2 == nil) || !reflect.DeepEqual(res, again) {
		t.Fatalf("parsed twice, two results: %v / %v", err, err2)
	}
	if err != nil {
		return
	}
	for _, e := range res.Events {
		if e.Tenant != "acme" || e.Source != source || e.ID == "" || e.OpportunityID == "" && e.Type != event.CallCompleted {
			t.Fatalf("event %+v", e)
		}
		if reflect.TypeOf(e.Payload) != reflect.TypeOf(event.NewPayload(e.Type)) {
			t.Fatalf("%s: payload %T for type %s", e.ID, e.Payload, e.Type)
		}
		if err := e.Validate(); err != nil {
			var fe *event.FieldError
			if !errors.As(err, &fe) || strings.HasPrefix(fe.Reason, "missing") && (fe.Field == "tenant" || fe.Field == "source" || fe.Field == "payload") {
				t.Fatalf("%s: %v", e.ID, err)
			}
		}
	}
}

func FuzzHubSpot(f *testing.F) {
	for _, name := range []string{"hubspot_deal_batch.json", "hubspot_object_deal.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`[{"eventId":7,"occurredAt":1717236000000,"subscriptionType":"deal.propertyChange","objectId":9,"propertyName":"closedate","propertyValue":"1719705600000"}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkMapped(t, HubSpotSource, func() (Result, error) { return HubSpot("acme", body, now) })
	})
}

func FuzzPipedrive(f *testing.F) {
	for _, name := range []string{"pipedrive_v2_deal_change.json", "pipedrive_v2_deal_create.json", "pipedrive_v2_deal_lost.json", "pipedrive_v1_deal_updated.json"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkMapped(t, PipedriveSource, func() (Result, error) { return Pipedrive("acme", body, now) })
	})
}
