package webhook

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/event"
)

// FuzzCallRecords: whatever the body, mapping it twice gives the same
// result; every record is an event or a refusal; and every event carries
// the tenant, a valid source and a call payload, so that event.Validate
// can only find fault with values.
func FuzzCallRecords(f *testing.F) {
	f.Add(fixture(f, "calls_records.json"))
	f.Add([]byte(`{"id":"1","started_at":"2024-06-01T10:00:00Z","participants":[{"email":"a@acme.example"},{"email":"b@x.example"}],"next_steps":[{"text":"x","owner_email":"b@x.example"}]}`))
	f.Add([]byte("{\"id\":1,\"started_at\":1717236000000,\"participants\":[{\"name\":\"A\",\"side\":\"internal\"}]}\n[{\"id\":\"2\"}]"))
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := acmeDomains.Map("acme", body, now)
		again, err2 := acmeDomains.Map("acme", body, now)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(res, again) {
			t.Fatalf("mapped twice, two results: %v / %v", err, err2)
		}
		if err != nil {
			return
		}
		parts, err := CallParts(body)
		if err != nil || len(parts) != len(res.Events)+len(res.Refused) {
			t.Fatalf("%d records, %d events and %d refused (%v)", len(parts), len(res.Events), len(res.Refused), err)
		}
		for _, e := range res.Events {
			if e.Tenant != "acme" || !event.ValidToken(e.Source) || !strings.HasPrefix(e.ID, "call-") || e.Type != event.CallCompleted {
				t.Fatalf("event %+v", e)
			}
			if _, ok := e.Payload.(*event.Call); !ok {
				t.Fatalf("%s: payload %T", e.ID, e.Payload)
			}
			if err := e.Validate(); err != nil {
				var fe *event.FieldError
				if !errors.As(err, &fe) || strings.HasPrefix(fe.Reason, "missing") && (fe.Field == "tenant" || fe.Field == "source" || fe.Field == "payload") {
					t.Fatalf("%s: %v", e.ID, err)
				}
			}
		}
	})
}
