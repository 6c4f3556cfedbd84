package event_test

import (
	"bytes"
	"testing"

	"github.com/commitflow/commitflow/internal/event"
)

// FuzzParse: Parse never panics, and whatever it accepts is valid, encodes,
// and parses back to the same event (compared by its canonical encoding,
// since time zones and key spellings may be normalized on the way).
func FuzzParse(f *testing.F) {
	for _, typ := range event.Types {
		b, err := event.Marshal(sample(typ))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `null`, `{}`, `[]`, `{"type":"call.completed"}`,
		`{"id":"e","tenant":"t","source":"s","type":"opportunity.closed_lost","occurred_at":"2026-01-01T00:00:00+05:30","opportunity_id":"o","payload":{}}`,
		`{"ID":"e","Tenant":"t","SOURCE":"s","type":"activity.logged","occurred_at":"2026-01-01T00:00:00.123456789Z","payload":{"kind":"note","due_at":null}}`,
		`{"id":"e","tenant":"t","source":"s","type":"call.completed","occurred_at":"2026-01-01T00:00:00Z","payload":{"call_id":"c","started_at":"0001-01-01T00:00:01Z","participants":[{"name":"\u00e9","side":"buyer"}],"action_items":[{"text":"x","owner_side":"seller","due_at":"9999-12-31T23:59:59Z"}]}}`,
		`{"id":"e","tenant":"t","source":"s","type":"call.completed","occurred_at":"2105-12-31T23:59:59-23:00","payload":{"call_id":"c","started_at":"0000-01-01T00:00:00+01:00","participants":[{"email":"x","side":"seller"}],"next_meeting_at":"9999-12-31T23:59:59-23:59"}}`,
		`{"id":"e","tenant":"t","source":"s","type":"opportunity.amount_changed","occurred_at":"2026-01-01T00:00:00Z","opportunity_id":"o","payload":{"from":-0,"to":1e308}}`,
		`{"id":"e","tenant":"t","source":"s","type":"opportunity.created","occurred_at":"2026-01-01T00:00:00Z","opportunity_id":"o","payload":{"close_date":"1900-01-01"}}`,
		`{"id":"e","tenant":"t","source":"s","type":"opportunity.close_date_changed","occurred_at":"2026-01-01T00:00:00Z","opportunity_id":"o","payload":{"from":"1970-01-01","to":"2106-01-01"}}`,
		`{"id":"e","tenant":"t","source":"s","type":"opportunity.closed_lost","occurred_at":"2026-01-01T00:00:00Z","opportunity_id":"o","payload":{"reason":"<<<&&&>>>\u2028"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := event.Parse(data)
		if err != nil {
			return
		}
		if len(data) > event.MaxEventSize {
			t.Fatalf("Parse accepted %d bytes, over MaxEventSize", len(data))
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("Parse accepted an invalid event: %v", err)
		}
		b, err := event.Marshal(ev)
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		if len(b) > event.MaxEventSize {
			// Marshal escapes <, > and & in six bytes each, so a body near
			// the limit can grow past it; Parse refuses it then, and only
			// the size is checked.
			if _, err := event.Parse(b); err == nil {
				t.Fatalf("Parse accepted its own encoding of %d bytes", len(b))
			}
			return
		}
		ev2, err := event.Parse(b)
		if err != nil {
			t.Fatalf("re-parse of %s: %v", b, err)
		}
		b2, err := event.Marshal(ev2)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip changed the event:\n%s\n%s", b, b2)
		}
		if ev2.ID != ev.ID || ev2.Type != ev.Type || !ev2.OccurredAt.Equal(ev.OccurredAt) || !ev2.ReceivedAt.Equal(ev.ReceivedAt) {
			t.Fatalf("round trip changed the envelope: %+v vs %+v", ev, ev2)
		}
	})
}
