package event_test

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

var (
	t0  = time.Date(2026, 3, 2, 14, 30, 0, 0, time.UTC)
	due = time.Date(2026, 3, 9, 17, 0, 0, 0, time.UTC)
	// created is when the CRM created the sample opportunity.
	created = time.Date(2026, 2, 20, 9, 0, 0, 0, time.UTC)
)

// sample returns a valid event of type typ with every field set.
func sample(typ event.Type) event.Event {
	ev := event.Event{
		V:             event.EnvelopeVersion,
		ID:            "evt-" + string(typ),
		Tenant:        "acme",
		Source:        "salesforce",
		Type:          typ,
		OccurredAt:    t0,
		ReceivedAt:    t0.Add(2 * time.Second),
		OpportunityID: "006000000000001",
	}
	participants := func() []event.Participant {
		return []event.Participant{
			{Email: "ana.lopez@seller.io", Name: "Ana Lopez", Side: event.Seller, Title: "Account Executive", Role: "Owner"},
			{Email: "dana.kim@buyer.com", Name: "Dana Kim", Side: event.Buyer, Title: "CFO", Role: "Economic Buyer"},
		}
	}
	d := due
	switch typ {
	case event.OpportunityCreated, event.OpportunityUpdated:
		ev.Payload = &event.Opportunity{
			Name: "Buyer Co - Platform", AccountID: "001A", AccountName: "Buyer Co", Amount: 48000.5,
			Currency: "USD", CloseDate: "2026-06-30", Pipeline: "default", Stage: "Prospecting",
			Probability: 0.1, ForecastCategory: "Pipeline", OwnerID: "005A", Team: "Mid-Market East",
			Segment: "mid_market", LeadSource: "Web", Product: "Core Platform",
			CreatedAt: &created, Attributes: map[string]string{"region": "EMEA", "deal_type": "new_business"},
		}
	case event.StageChanged:
		ev.Payload = &event.StageChange{Pipeline: "default", From: "Prospecting", To: "Qualification", Probability: 0.2}
	case event.AmountChanged:
		ev.Payload = &event.AmountChange{From: 48000, To: 52000, Currency: "USD"}
	case event.ProbabilityChanged:
		ev.Payload = &event.ProbabilityChange{From: 0.2, To: 0}
	case event.CloseDateChanged:
		ev.Payload = &event.CloseDateChange{From: "2026-06-30", To: "2026-08-31"}
	case event.OwnerChanged:
		ev.Payload = &event.OwnerChange{From: "005A", To: "005B", Team: "Enterprise West"}
	case event.ForecastCategoryChanged:
		ev.Payload = &event.ForecastCategoryChange{From: "Pipeline", To: "Best Case"}
	case event.ClosedWon:
		ev.Payload = &event.Won{Amount: 52000, Reason: "Best fit"}
	case event.ClosedLost:
		ev.Payload = &event.Lost{Reason: "Lost to Competitor", Competitor: "Rival"}
	case event.ContactAdded:
		ev.Payload = &event.Contact{ContactID: "003A", Name: "Dana Kim", Email: "dana.kim@buyer.com", Title: "CFO", Role: "Economic Buyer", Side: event.Buyer}
	case event.ActivityLogged:
		ev.Payload = &event.Activity{Kind: event.ActivityTask, Subject: "Send security questionnaire", Status: "scheduled",
			OwnerSide: event.Buyer, Participants: participants(), DueAt: &d}
	case event.CallCompleted:
		ev.Source = "gong"
		next := due.Add(24 * time.Hour)
		ev.Payload = &event.Call{
			CallID: "7421", Title: "Buyer Co <> Seller - Discovery", StartedAt: t0.Add(-time.Hour), DurationSeconds: 2700,
			Participants: participants(),
			ActionItems: []event.ActionItem{
				{Text: "Ana to send the deck", OwnerSide: event.Seller, OwnerEmail: "ana.lopez@seller.io", DueAt: &d, Kind: "send_info"},
				{Text: "Dana to share current process data", OwnerSide: event.Buyer, OwnerEmail: "dana.kim@buyer.com", DueAt: &d, Kind: "share_data"},
			},
			NextMeetingBooked: true, NextMeetingAt: &next,
		}
	default:
		panic("sample: unknown type " + string(typ))
	}
	return ev
}

func TestSamplesValid(t *testing.T) {
	for _, typ := range event.Types {
		ev := sample(typ)
		if err := ev.Validate(); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
	}
}

func TestValidateNamesField(t *testing.T) {
	long := strings.Repeat("x", 257)
	call := func(ev *event.Event) *event.Call { return ev.Payload.(*event.Call) }
	act := func(ev *event.Event) *event.Activity { return ev.Payload.(*event.Activity) }
	opp := func(ev *event.Event) *event.Opportunity { return ev.Payload.(*event.Opportunity) }
	tests := []struct {
		name   string
		typ    event.Type
		mutate func(*event.Event)
		field  string // "" means valid
	}{
		// Envelope.
		{"version 0 reads as current", event.StageChanged, func(e *event.Event) { e.V = 0 }, ""},
		{"unsupported version", event.StageChanged, func(e *event.Event) { e.V = 2 }, "v"},
		{"missing id", event.StageChanged, func(e *event.Event) { e.ID = "" }, "id"},
		{"blank id", event.StageChanged, func(e *event.Event) { e.ID = " \t" }, "id"},
		{"long id", event.StageChanged, func(e *event.Event) { e.ID = long }, "id"},
		{"missing tenant", event.StageChanged, func(e *event.Event) { e.Tenant = "" }, "tenant"},
		{"upper-case tenant", event.StageChanged, func(e *event.Event) { e.Tenant = "Acme" }, "tenant"},
		{"tenant with a dot", event.StageChanged, func(e *event.Event) { e.Tenant = "acme.eu" }, "tenant"},
		{"missing source", event.StageChanged, func(e *event.Event) { e.Source = "" }, "source"},
		{"source with space", event.StageChanged, func(e *event.Event) { e.Source = "sales force" }, "source"},
		{"missing occurred_at", event.StageChanged, func(e *event.Event) { e.OccurredAt = time.Time{} }, "occurred_at"},
		{"occurred_at too early", event.StageChanged, func(e *event.Event) { e.OccurredAt = time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC) }, "occurred_at"},
		{"occurred_at too late", event.StageChanged, func(e *event.Event) { e.OccurredAt = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) }, "occurred_at"},
		{"received_at unknown", event.StageChanged, func(e *event.Event) { e.ReceivedAt = time.Time{} }, ""},
		{"received_at out of range", event.StageChanged, func(e *event.Event) { e.ReceivedAt = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC) }, "received_at"},
		{"long opportunity_id", event.StageChanged, func(e *event.Event) { e.OpportunityID = long }, "opportunity_id"},
		{"unknown type", event.StageChanged, func(e *event.Event) { e.Type = "opportunity.exploded" }, "type"},
		{"missing payload", event.StageChanged, func(e *event.Event) { e.Payload = nil }, "payload"},
		{"payload of another type", event.StageChanged, func(e *event.Event) { e.Payload = &event.Won{} }, "payload"},
		{"opportunity event without opportunity", event.StageChanged, func(e *event.Event) { e.OpportunityID = "" }, "opportunity_id"},
		{"contact without opportunity", event.ContactAdded, func(e *event.Event) { e.OpportunityID = "" }, "opportunity_id"},
		{"call without opportunity", event.CallCompleted, func(e *event.Event) { e.OpportunityID = "" }, ""},
		{"activity without opportunity", event.ActivityLogged, func(e *event.Event) { e.OpportunityID = "" }, ""},

		// Opportunity.
		{"update with nothing set", event.OpportunityUpdated, func(e *event.Event) { e.Payload = &event.Opportunity{} }, ""},
		{"negative amount", event.OpportunityCreated, func(e *event.Event) { opp(e).Amount = -1 }, "payload.amount"},
		{"NaN amount", event.OpportunityCreated, func(e *event.Event) { opp(e).Amount = math.NaN() }, "payload.amount"},
		{"infinite amount", event.OpportunityCreated, func(e *event.Event) { opp(e).Amount = math.Inf(1) }, "payload.amount"},
		{"bad close date", event.OpportunityCreated, func(e *event.Event) { opp(e).CloseDate = "30/06/2026" }, "payload.close_date"},
		{"impossible close date", event.OpportunityCreated, func(e *event.Event) { opp(e).CloseDate = "2026-02-30" }, "payload.close_date"},
		{"probability above 1", event.OpportunityUpdated, func(e *event.Event) { opp(e).Probability = 1.5 }, "payload.probability"},
		{"negative probability", event.OpportunityUpdated, func(e *event.Event) { opp(e).Probability = -0.1 }, "payload.probability"},
		{"NaN probability", event.OpportunityUpdated, func(e *event.Event) { opp(e).Probability = math.NaN() }, "payload.probability"},
		{"created_at out of range", event.OpportunityCreated, func(e *event.Event) { c := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC); opp(e).CreatedAt = &c }, "payload.created_at"},
		{"attribute key upper case", event.OpportunityUpdated, func(e *event.Event) { opp(e).Attributes = map[string]string{"Region": "x"} }, "payload.attributes"},
		{"attribute key empty", event.OpportunityUpdated, func(e *event.Event) { opp(e).Attributes = map[string]string{"": "x"} }, "payload.attributes"},
		{"attribute cleared", event.OpportunityUpdated, func(e *event.Event) { opp(e).Attributes = map[string]string{"region": ""} }, ""},
		{"attribute value too long", event.OpportunityUpdated, func(e *event.Event) { opp(e).Attributes = map[string]string{"region": strings.Repeat("x", 257)} }, "payload.attributes.region"},
		{"too many attributes", event.OpportunityUpdated, func(e *event.Event) {
			m := map[string]string{}
			for i := range 33 {
				m[fmt.Sprintf("a%d", i)] = "x"
			}
			opp(e).Attributes = m
		}, "payload.attributes"},
		{"currency lower case", event.OpportunityCreated, func(e *event.Event) { opp(e).Currency = "eur" }, ""},
		{"currency symbol", event.OpportunityCreated, func(e *event.Event) { opp(e).Currency = "$" }, "payload.currency"},
		{"currency name", event.OpportunityCreated, func(e *event.Event) { opp(e).Currency = "Euro" }, "payload.currency"},

		// Changes.
		{"stage change without to", event.StageChanged, func(e *event.Event) { e.Payload.(*event.StageChange).To = "" }, "payload.to"},
		{"stage change to blank", event.StageChanged, func(e *event.Event) { e.Payload.(*event.StageChange).To = "  " }, "payload.to"},
		{"stage probability", event.StageChanged, func(e *event.Event) { e.Payload.(*event.StageChange).Probability = 2 }, "payload.probability"},
		{"amount from negative", event.AmountChanged, func(e *event.Event) { e.Payload.(*event.AmountChange).From = -5 }, "payload.from"},
		{"amount to NaN", event.AmountChanged, func(e *event.Event) { e.Payload.(*event.AmountChange).To = math.NaN() }, "payload.to"},
		{"amount to zero", event.AmountChanged, func(e *event.Event) { e.Payload.(*event.AmountChange).To = 0 }, ""},
		{"amount cleared", event.AmountChanged, func(e *event.Event) { e.Payload = &event.AmountChange{From: 5, Cleared: true} }, ""},
		{"amount cleared with a to", event.AmountChanged, func(e *event.Event) { e.Payload = &event.AmountChange{From: 5, To: 3, Cleared: true} }, "payload.to"},
		{"probability to zero", event.ProbabilityChanged, func(e *event.Event) { e.Payload = &event.ProbabilityChange{From: 0.5} }, ""},
		{"probability to above 1", event.ProbabilityChanged, func(e *event.Event) { e.Payload = &event.ProbabilityChange{To: 1.2} }, "payload.to"},
		{"probability from NaN", event.ProbabilityChanged, func(e *event.Event) { e.Payload = &event.ProbabilityChange{From: math.NaN()} }, "payload.from"},
		{"amount bad currency", event.AmountChanged, func(e *event.Event) { e.Payload.(*event.AmountChange).Currency = "US" }, "payload.currency"},
		{"close date without to", event.CloseDateChanged, func(e *event.Event) { e.Payload.(*event.CloseDateChange).To = "" }, "payload.to"},
		{"close date bad to", event.CloseDateChanged, func(e *event.Event) { e.Payload.(*event.CloseDateChange).To = "next month" }, "payload.to"},
		{"close date bad from", event.CloseDateChanged, func(e *event.Event) { e.Payload.(*event.CloseDateChange).From = "2026-6-30" }, "payload.from"},
		{"close date without from", event.CloseDateChanged, func(e *event.Event) { e.Payload.(*event.CloseDateChange).From = "" }, ""},
		{"owner change without to", event.OwnerChanged, func(e *event.Event) { e.Payload.(*event.OwnerChange).To = "" }, "payload.to"},
		{"forecast change without to", event.ForecastCategoryChanged, func(e *event.Event) { e.Payload.(*event.ForecastCategoryChange).To = "" }, "payload.to"},
		{"won negative amount", event.ClosedWon, func(e *event.Event) { e.Payload.(*event.Won).Amount = -1 }, "payload.amount"},
		{"won bad currency", event.ClosedWon, func(e *event.Event) { e.Payload.(*event.Won).Currency = "E1R" }, "payload.currency"},
		{"lost without reason", event.ClosedLost, func(e *event.Event) { e.Payload = &event.Lost{} }, ""},

		// Contact.
		{"contact without id", event.ContactAdded, func(e *event.Event) { e.Payload.(*event.Contact).ContactID = "" }, "payload.contact_id"},
		{"contact bad side", event.ContactAdded, func(e *event.Event) { e.Payload.(*event.Contact).Side = "partner" }, "payload.side"},
		{"contact default side", event.ContactAdded, func(e *event.Event) { e.Payload.(*event.Contact).Side = "" }, ""},

		// Activity.
		{"activity without kind", event.ActivityLogged, func(e *event.Event) { act(e).Kind = "" }, "payload.kind"},
		{"activity unknown kind", event.ActivityLogged, func(e *event.Event) { act(e).Kind = "lunch" }, "payload.kind"},
		{"activity bad status", event.ActivityLogged, func(e *event.Event) { act(e).Status = "done" }, "payload.status"},
		{"activity bad owner side", event.ActivityLogged, func(e *event.Event) { act(e).OwnerSide = "both" }, "payload.owner_side"},
		{"activity participant side", event.ActivityLogged, func(e *event.Event) { act(e).Participants[1].Side = "" }, "payload.participants[1].side"},
		{"activity anonymous participant", event.ActivityLogged, func(e *event.Event) { act(e).Participants[0].Email, act(e).Participants[0].Name = "", "" }, "payload.participants[0].email"},
		{"activity participant by name only", event.ActivityLogged, func(e *event.Event) { act(e).Participants[0].Email = "" }, ""},
		{"activity note", event.ActivityLogged, func(e *event.Event) { e.Payload = &event.Activity{Kind: event.ActivityNote} }, ""},

		// Call.
		{"call without id", event.CallCompleted, func(e *event.Event) { call(e).CallID = " " }, "payload.call_id"},
		{"call without start", event.CallCompleted, func(e *event.Event) { call(e).StartedAt = time.Time{} }, "payload.started_at"},
		{"call negative duration", event.CallCompleted, func(e *event.Event) { call(e).DurationSeconds = -1 }, "payload.duration_seconds"},
		{"call without participants", event.CallCompleted, func(e *event.Event) { call(e).Participants = nil }, "payload.participants"},
		{"call participant side", event.CallCompleted, func(e *event.Event) { call(e).Participants[0].Side = "both" }, "payload.participants[0].side"},
		{"call second participant side", event.CallCompleted, func(e *event.Event) { call(e).Participants[1].Side = "Buyer" }, "payload.participants[1].side"},
		{"call anonymous participant", event.CallCompleted, func(e *event.Event) { call(e).Participants[1] = event.Participant{Side: event.Buyer} }, "payload.participants[1].email"},
		{"action item owner side", event.CallCompleted, func(e *event.Event) { call(e).ActionItems[1].OwnerSide = "" }, "payload.action_items[1].owner_side"},
		{"action item text", event.CallCompleted, func(e *event.Event) { call(e).ActionItems[0].Text = "\n" }, "payload.action_items[0].text"},
		{"call without action items", event.CallCompleted, func(e *event.Event) { call(e).ActionItems = nil }, ""},
		{"call with only sellers", event.CallCompleted, func(e *event.Event) { call(e).Participants = call(e).Participants[:1] }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := sample(tc.typ)
			tc.mutate(&ev)
			err := ev.Validate()
			checkFieldErr(t, err, tc.field)
			// The same through JSON, where the event can be encoded and its
			// payload fits its type (JSON does not say which Go type it was).
			sameType := reflect.TypeOf(ev.Payload) == reflect.TypeOf(event.NewPayload(ev.Type))
			if b, merr := event.Marshal(ev); merr == nil && ev.Payload != nil && sameType {
				_, err := event.Parse(b)
				checkFieldErr(t, err, tc.field)
			}
		})
	}
}

func checkFieldErr(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("want valid, got %v", err)
		}
		return
	}
	var fe *event.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("want a FieldError naming %q, got %v", field, err)
	}
	if fe.Field != field {
		t.Fatalf("error names %q, want %q (%v)", fe.Field, field, err)
	}
	if !strings.HasPrefix(err.Error(), field+": ") || fe.Reason == "" {
		t.Fatalf("error %q should start with the field and give a reason", err)
	}
}

func TestParseRejects(t *testing.T) {
	valid := `{"v":1,"id":"e1","tenant":"acme","source":"gong","type":"call.completed","occurred_at":"2026-03-02T14:30:00Z",` +
		`"payload":{"call_id":"c1","started_at":"2026-03-02T14:00:00Z","duration_seconds":60,"participants":[{"email":"a@b.com","side":"buyer"}]}}`
	if _, err := event.Parse([]byte(valid)); err != nil {
		t.Fatalf("valid input refused: %v", err)
	}
	tests := []struct {
		name  string
		in    string
		field string // FieldError.Field, or "" for a plain error
		msg   string // substring of the error
	}{
		{"not json", `{"v":1,`, "body", "invalid JSON at byte"},
		{"array", `[]`, "envelope", "cannot unmarshal JSON array into an event object"},
		{"unknown envelope field", strings.Replace(valid, `"v":1,`, `"v":1,"colour":"red",`, 1), "envelope", `unknown field "colour"`},
		{"unknown payload field", strings.Replace(valid, `"call_id":"c1",`, `"call_id":"c1","mood":"good",`, 1), "payload", `unknown field "mood"`},
		{"missing type", strings.Replace(valid, `"type":"call.completed",`, ``, 1), "type", "missing"},
		{"unknown type", strings.Replace(valid, `"call.completed"`, `"call.dropped"`, 1), "type", "unknown event type"},
		{"missing payload", valid[:strings.Index(valid, `,"payload"`)] + `}`, "payload", "missing"},
		{"null payload", valid[:strings.Index(valid, `,"payload"`)] + `,"payload":null}`, "payload", "missing"},
		{"payload of wrong shape", valid[:strings.Index(valid, `,"payload"`)] + `,"payload":[1]}`, "payload", "cannot unmarshal JSON array into event.Call"},
		{"payload field of wrong type", strings.Replace(valid, `"duration_seconds":60`, `"duration_seconds":"60"`, 1), "payload.duration_seconds", "cannot unmarshal JSON string into int"},
		{"fractional duration", strings.Replace(valid, `"duration_seconds":60`, `"duration_seconds":1.5`, 1), "payload.duration_seconds", "cannot unmarshal JSON number into int"},
		{"duration out of range", strings.Replace(valid, `"duration_seconds":60`, `"duration_seconds":1e400`, 1), "payload.duration_seconds", "cannot unmarshal JSON number into int"},
		{"amount out of range", `{"id":"e1","tenant":"acme","source":"s","type":"opportunity.closed_won","occurred_at":"2026-03-02T14:30:00Z","opportunity_id":"o","payload":{"amount":-1e400}}`, "payload.amount", "value out of range"},
		{"bad time", strings.Replace(valid, `"2026-03-02T14:30:00Z"`, `"2026-03-02 14:30"`, 1), "occurred_at", "cannot parse"},
		{"participant side", strings.Replace(valid, `"side":"buyer"`, `"side":"customer"`, 1), "payload.participants[0].side", "must be"},
		{"version", strings.Replace(valid, `"v":1`, `"v":7`, 1), "v", "unsupported"},
		{"missing id", strings.Replace(valid, `"id":"e1",`, ``, 1), "id", "missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := event.Parse([]byte(tc.in))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
			var fe *event.FieldError
			switch {
			case tc.field == "" && errors.As(err, &fe):
				t.Errorf("want a plain decoding error, got a FieldError for %q", fe.Field)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Errorf("want a FieldError for %q, got %v", tc.field, err)
			}
		})
	}
}

func TestMarshalParseRoundTrip(t *testing.T) {
	for _, typ := range event.Types {
		t.Run(string(typ), func(t *testing.T) {
			want := sample(typ)
			b, err := event.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := event.Parse(b)
			if err != nil {
				t.Fatalf("parse %s: %v", b, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the event:\n got %#v\nwant %#v", got, want)
			}
			b2, err := event.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs:\n%s\n%s", b, b2)
			}
		})
	}
}

func TestMarshalSetsVersion(t *testing.T) {
	ev := sample(event.ClosedLost)
	ev.V = 0
	b, err := event.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte(`{"v":1,`)) {
		t.Fatalf("got %s", b)
	}
	got, err := event.Parse(b)
	if err != nil || got.V != event.EnvelopeVersion {
		t.Fatalf("got v=%d, %v", got.V, err)
	}
}

func TestParseKeepsOffsetInstant(t *testing.T) {
	in := `{"id":"e1","tenant":"acme","source":"hubspot","type":"opportunity.closed_lost","occurred_at":"2026-03-02T16:30:00+02:00","opportunity_id":"42","payload":{"reason":"No Decision / Status Quo"}}`
	ev, err := event.Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if !ev.OccurredAt.Equal(t0) {
		t.Fatalf("occurred_at %v, want %v", ev.OccurredAt, t0)
	}
	if !ev.ReceivedAt.IsZero() {
		t.Fatalf("received_at %v, want zero", ev.ReceivedAt)
	}
}

func TestNewPayloadCoversTypes(t *testing.T) {
	seen := map[event.Type]bool{}
	for _, typ := range event.Types {
		if seen[typ] {
			t.Errorf("%s listed twice in Types", typ)
		}
		seen[typ] = true
		if event.NewPayload(typ) == nil {
			t.Errorf("NewPayload(%s) = nil", typ)
		}
	}
	if event.NewPayload("nope") != nil {
		t.Error("NewPayload of an unknown type is not nil")
	}
}

func TestValidToken(t *testing.T) {
	for s, want := range map[string]bool{
		"acme": true, "a": true, "acme-eu_2": true, "0day": true, strings.Repeat("a", 64): true,
		"": false, "-acme": false, "_x": false, "Acme": false, "acme.eu": false, "ac me": false, "acme*": false,
		strings.Repeat("a", 65): false,
	} {
		if got := event.ValidToken(s); got != want {
			t.Errorf("ValidToken(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzValidToken checks ValidToken against TokenPattern.
func FuzzValidToken(f *testing.F) {
	for _, s := range []string{"acme", "", "-a", "a-", "A", "a.b", strings.Repeat("z", 64), strings.Repeat("z", 65), "é"} {
		f.Add(s)
	}
	re := regexp.MustCompile(event.TokenPattern)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := event.ValidToken(s), re.MatchString(s); got != want {
			t.Errorf("ValidToken(%q) = %v, TokenPattern says %v", s, got, want)
		}
	})
}

func TestParticipantKey(t *testing.T) {
	for _, tc := range []struct {
		p    event.Participant
		want string
	}{
		{event.Participant{Email: "Dana.Kim@Buyer.com", Name: "Dana"}, "dana.kim@buyer.com"},
		{event.Participant{Name: "Dana Kim"}, "dana kim"},
	} {
		if got := tc.p.Key(); got != tc.want {
			t.Errorf("Key(%+v) = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestDateTime(t *testing.T) {
	if got := event.Date("2026-06-30").Time(); !got.Equal(time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("got %v", got)
	}
	for _, d := range []event.Date{"", "2026-6-30", "tomorrow"} {
		if got := d.Time(); !got.IsZero() {
			t.Errorf("Date(%q).Time() = %v, want zero", d, got)
		}
	}
}

func TestValidateTypedNilPayload(t *testing.T) {
	ev := event.Event{ID: "1", Tenant: "acme", Source: "gong", Type: event.CallCompleted, OccurredAt: time.Now(), Payload: (*event.Call)(nil)}
	err := ev.Validate()
	var fe *event.FieldError
	if !errors.As(err, &fe) || fe.Field != "payload" {
		t.Fatalf("typed nil payload: err = %v, want a payload field error", err)
	}
}

func TestValidatePayloadTimesInRange(t *testing.T) {
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	ev := event.Event{ID: "1", Tenant: "acme", Source: "gong", Type: event.CallCompleted, OccurredAt: time.Now(), Payload: &event.Call{
		CallID: "c", StartedAt: time.Now(), Participants: []event.Participant{{Email: "a@b", Side: event.Buyer}},
		ActionItems: []event.ActionItem{{Text: "x", OwnerSide: event.Buyer, DueAt: &far}},
	}}
	var fe *event.FieldError
	if err := ev.Validate(); !errors.As(err, &fe) || fe.Field != "payload.action_items[0].due_at" {
		t.Fatalf("err = %v, want payload.action_items[0].due_at", err)
	}
}

// TestParseAnyMemberOrder checks that the envelope's members may come in
// any order: the payload is decoded in the same pass when "type" precedes
// it and kept raw until the end otherwise, with the same result and the
// same errors.
func TestParseAnyMemberOrder(t *testing.T) {
	reorder := func(t *testing.T, b []byte, first ...string) []byte {
		t.Helper()
		var members map[string]stdjson.RawMessage
		if err := stdjson.Unmarshal(b, &members); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, name := range first {
			if _, ok := members[name]; ok {
				names = append(names, name)
			}
		}
		for name := range members {
			if !slices.Contains(first, name) {
				names = append(names, name)
			}
		}
		var out bytes.Buffer
		out.WriteByte('{')
		for i, name := range names {
			if i > 0 {
				out.WriteByte(',')
			}
			fmt.Fprintf(&out, "%q:%s", name, members[name])
		}
		out.WriteByte('}')
		return out.Bytes()
	}
	for _, typ := range event.Types {
		t.Run(string(typ), func(t *testing.T) {
			want := sample(typ)
			b, err := event.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			for _, first := range [][]string{{"payload"}, {"payload", "type"}, {"type", "payload"}, {"opportunity_id", "payload", "v"}} {
				in := reorder(t, b, first...)
				got, err := event.Parse(in)
				if err != nil {
					t.Fatalf("parse %s: %v", in, err)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s:\n got %#v\nwant %#v", in, got, want)
				}
			}
		})
	}
	bad := []byte(`{"payload":{"duration_seconds":"60"},"v":1,"id":"e1","tenant":"acme","source":"gong","type":"call.completed","occurred_at":"2026-03-02T14:30:00Z","opportunity_id":"o1"}`)
	_, err := event.Parse(bad)
	var fe *event.FieldError
	if !errors.As(err, &fe) || fe.Field != "payload.duration_seconds" {
		t.Fatalf("payload before type with a bad field: got %v, want a FieldError for payload.duration_seconds", err)
	}
}

// dateField is one timestamp or date of an event's JSON, by its path.
type dateField struct {
	typ  event.Type
	path string // as FieldError names it
	keys []any  // path into the JSON document
	date bool   // a Date (YYYY-MM-DD), else an RFC 3339 timestamp
}

// dateFields lists every timestamp and date of every event type;
// TestDateFieldsComplete checks that none is missing.
var dateFields = []dateField{
	{event.StageChanged, "occurred_at", []any{"occurred_at"}, false},
	{event.StageChanged, "received_at", []any{"received_at"}, false},
	{event.OpportunityCreated, "payload.close_date", []any{"payload", "close_date"}, true},
	{event.OpportunityUpdated, "payload.close_date", []any{"payload", "close_date"}, true},
	{event.OpportunityCreated, "payload.created_at", []any{"payload", "created_at"}, false},
	{event.OpportunityUpdated, "payload.created_at", []any{"payload", "created_at"}, false},
	{event.CloseDateChanged, "payload.from", []any{"payload", "from"}, true},
	{event.CloseDateChanged, "payload.to", []any{"payload", "to"}, true},
	{event.ActivityLogged, "payload.due_at", []any{"payload", "due_at"}, false},
	{event.CallCompleted, "payload.started_at", []any{"payload", "started_at"}, false},
	{event.CallCompleted, "payload.next_meeting_at", []any{"payload", "next_meeting_at"}, false},
	{event.CallCompleted, "payload.action_items[0].due_at", []any{"payload", "action_items", 0, "due_at"}, false},
	{event.CallCompleted, "payload.action_items[1].due_at", []any{"payload", "action_items", 1, "due_at"}, false},
}

// TestDatesInRange checks every timestamp and date, envelope and payload,
// at the edges of the range ClickHouse stores (years 1971..2105): a payload
// date of 1900-01-01 used to be stored and read back as 0000-00-00.
func TestDatesInRange(t *testing.T) {
	edges := []struct {
		date, time string
		ok         bool
	}{
		{"1900-01-01", "1900-01-01T00:00:00Z", false},
		{"1969-12-31", "1969-12-31T23:59:59Z", false},
		{"1970-01-01", "1970-01-01T00:00:00Z", false}, // ClickHouse's zero: "unset"
		{"1970-12-31", "1970-12-31T23:59:59Z", false},
		{"1971-01-01", "1971-01-01T00:00:00Z", true},
		{"1971-01-01", "1971-01-01T00:00:00+14:00", true}, // 1970-12-31T10:00Z, still after the zero
		{"2026-06-30", "2026-06-30T12:00:00+02:00", true},
		{"2105-12-31", "2105-12-31T23:59:59Z", true},
		{"2105-12-31", "2105-12-31T23:59:59-12:00", true}, // 2106-01-01T11:59:59Z, before DateTime's end
		{"2106-01-01", "2106-01-01T00:00:00Z", false},
		{"2106-02-07", "2106-02-07T06:28:15Z", false}, // DateTime's last instant
		{"9999-12-31", "9999-12-31T23:59:59Z", false},
	}
	for _, f := range dateFields {
		doc := sampleDoc(t, f.typ)
		for _, e := range edges {
			v := e.time
			if f.date {
				v = e.date
			}
			t.Run(string(f.typ)+"/"+f.path+"="+v, func(t *testing.T) {
				err := parseDoc(t, edit(doc, f.keys, v, false))
				if e.ok {
					checkFieldErr(t, err, "")
					return
				}
				checkFieldErr(t, err, f.path)
				if !strings.Contains(err.Error(), v+" is out of range (years 1971..2105)") {
					t.Errorf("error %q does not give the value and the range", err)
				}
			})
		}
	}
}

// TestDateFieldsComplete checks that dateFields lists every time.Time,
// *time.Time and Date field of every event type, so a field added later
// cannot skip TestDatesInRange.
func TestDateFieldsComplete(t *testing.T) {
	listed := map[string]bool{}
	for _, f := range dateFields {
		listed[string(f.typ)+" "+regexp.MustCompile(`\[\d+\]`).ReplaceAllString(f.path, "[]")] = true
	}
	var walk func(typ event.Type, path string, rt reflect.Type)
	walk = func(typ event.Type, path string, rt reflect.Type) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			p := path + name
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft == reflect.TypeFor[time.Time]() || ft == reflect.TypeFor[event.Date]():
				if !listed[string(typ)+" "+p] {
					t.Errorf("%s: %s (%s.%s) is not in dateFields", typ, p, rt.Name(), f.Name)
				}
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(typ, p+"[].", ft.Elem())
			case ft.Kind() == reflect.Struct:
				walk(typ, p+".", ft)
			}
		}
	}
	for _, typ := range event.Types {
		walk(typ, "payload.", reflect.TypeOf(event.NewPayload(typ)).Elem())
	}
	walk(event.StageChanged, "", reflect.TypeFor[event.Event]())
}

// TestParseSizeLimit checks that Parse takes an event of exactly
// MaxEventSize bytes and refuses one byte more, before decoding it.
func TestParseSizeLimit(t *testing.T) {
	sized := func(n int) []byte {
		ev := sample(event.ClosedLost)
		b, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ev.Payload.(*event.Lost).Reason += strings.Repeat("x", n-len(b))
		if b, err = event.Marshal(ev); err != nil || len(b) != n {
			t.Fatalf("sized event of %d bytes, want %d (%v)", len(b), n, err)
		}
		return b
	}
	if _, err := event.Parse(sized(event.MaxEventSize)); err != nil {
		t.Fatalf("event of MaxEventSize bytes refused: %v", err)
	}
	for _, in := range [][]byte{
		sized(event.MaxEventSize + 1),
		sized(1 << 20),
		bytes.Repeat([]byte("{"), event.MaxEventSize+1), // not JSON either: the size is what is reported
	} {
		_, err := event.Parse(in)
		checkFieldErr(t, err, "body")
		want := fmt.Sprintf("body: %d bytes is over the event size limit of %d bytes", len(in), event.MaxEventSize)
		if err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
	}
}
