package webhook

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

var acmeDomains = CallRecords{SellerDomains: []string{"acme.example"}}

func TestCallRecords(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v.UTC()
	}
	ptr := func(s string) *time.Time { v := at(s); return &v }
	res, err := acmeDomains.Map("acme", fixture(t, "calls_records.json"), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Refused) > 0 || len(res.Ignored) > 0 {
		t.Fatalf("refused %v ignored %v", res.Refused, res.Ignored)
	}
	want := []brief{
		{"call-4444AAAiAAAAAiAiAiiAii==-0065g00000AbCdEAAV", "0065g00000AbCdEAAV", event.CallCompleted, "2024-06-10T15:30:12Z", &event.Call{
			CallID: "4444AAAiAAAAAiAiAiiAii==", Title: "Initech discovery", StartedAt: at("2024-06-10T15:00:12Z"), DurationSeconds: 1800,
			Participants: []event.Participant{
				{Email: "dana.seller@acme.example", Name: "Dana Seller", Side: event.Seller, Title: "Account Executive"},
				{Email: "bill.lumbergh@Initech.example", Name: "Bill Lumbergh", Side: event.Buyer, Role: "economic_buyer"},
				{Email: "sam@eu.acme.example", Name: "Sam Engineer", Side: event.Seller},
				{Name: "Dial-in caller", Side: event.Buyer},
			},
			ActionItems: []event.ActionItem{
				{Text: "Share the current ticket volumes", OwnerSide: event.Buyer, OwnerEmail: "bill.lumbergh@initech.example", DueAt: ptr("2024-06-14T17:00:00Z"), Kind: "share_data"},
				{Text: "Send the security whitepaper", OwnerSide: event.Seller},
			},
		}},
		{"call-CA5f2a9c3e1b7d4f6a8c0e2b4d6f8a1c3e", "", event.CallCompleted, "2024-06-10T16:01:03Z", &event.Call{
			CallID: "CA5f2a9c3e1b7d4f6a8c0e2b4d6f8a1c3e", StartedAt: at("2024-06-10T16:00:00Z"), DurationSeconds: 63,
			Participants: []event.Participant{
				{Email: "dana.seller@acme.example", Side: event.Seller},
				{Name: "+1 415 555 0100", Side: event.Buyer},
			},
			NextMeetingBooked: true, NextMeetingAt: ptr("2024-06-17T14:00:00Z"),
		}},
		{"call-991234-4711", "4711", event.CallCompleted, "2024-06-11T13:30:00Z", &event.Call{
			CallID: "991234", StartedAt: at("2024-06-11T13:30:00Z"),
			Participants: []event.Participant{
				{Email: "dana.seller@acme.example", Side: event.Seller},
				{Email: "peter@initech.example", Side: event.Buyer},
			},
			NextMeetingBooked: true,
		}},
	}
	if got := briefs(res.Events); !reflect.DeepEqual(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", dump(got), dump(want))
	}
	for i, source := range []string{"zoom", "twilio", CallsSource} {
		e := res.Events[i]
		if e.Tenant != "acme" || e.Source != source || !e.ReceivedAt.Equal(now) {
			t.Errorf("%s: tenant %q source %q received %v", e.ID, e.Tenant, e.Source, e.ReceivedAt)
		}
		if err := e.Validate(); err != nil {
			t.Errorf("%s: %v", e.ID, err)
		}
	}
}

// TestCallParts: the shapes a body comes in and the line each record
// starts on.
func TestCallParts(t *testing.T) {
	rec := func(id string) string {
		return `{"id":"` + id + `","started_at":"2024-06-01T10:00:00Z","participants":[{"name":"A","side":"seller"}]}`
	}
	tests := []struct {
		name, body string
		lines      []int
	}{
		{"a record", rec("1"), []int{1}},
		{"an array", "[\n" + rec("1") + ",\n" + rec("2") + "\n]", []int{2, 3}},
		{"NDJSON", rec("1") + "\n\n" + rec("2") + "\n", []int{1, 3}},
		{"arrays one after the other", "[" + rec("1") + "]\n[" + rec("2") + "]", []int{1, 2}},
		{"an array element not an object", "[\n1,\n" + rec("2") + "]", []int{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts, err := CallParts([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			var lines []int
			for _, p := range parts {
				lines = append(lines, p.Line)
			}
			if !reflect.DeepEqual(lines, tt.lines) {
				t.Errorf("lines %v, want %v", lines, tt.lines)
			}
		})
	}
	for body, want := range map[string]string{
		``:                  "no call records",
		"  \n":              "no call records",
		`[]`:                "no call records",
		`"x"`:               "want call records",
		rec("1") + "\n7":    "want call records",
		"{\"id\":\n\"1\"\n": "line 3: not valid JSON",
		`[{"id":1},`:        "not valid JSON",
	} {
		if _, err := CallParts([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", body, err, want)
		}
	}
}

// TestCallRecordErrors: a record refused names the field at fault.
func TestCallRecordErrors(t *testing.T) {
	const ok = `"started_at":"2024-06-01T10:00:00Z","participants":[{"email":"a@acme.example"}]`
	tests := []struct {
		domains []string
		body    string
		want    string
	}{
		{nil, `{` + ok + `}`, "call record id: missing"},
		{nil, `{"id":" ",` + ok + `}`, "call record id: missing"},
		{nil, `{"id":{},` + ok + `}`, "call record field id: unexpected object"},
		{nil, `{"id":"1","duration":60,` + ok + `}`, `call record: unknown field "duration" (see schemas/calls/call_record.schema.json)`},
		{nil, `{"id":"1","participants":[{"email":"a@acme.example","side":"seller"}]}`, "call 1 started_at: missing"},
		{nil, `{"id":"1","started_at":"yesterday","participants":[{"name":"A","side":"seller"}]}`, `call 1 started_at: "yesterday" is not a time`},
		{nil, `{"id":"1","started_at":true,"participants":[{"name":"A","side":"seller"}]}`, `call 1 started_at: "true" is not a time`},
		{nil, `{"id":"1","duration_s":-5,` + ok + `}`, `call 1 duration_s: "-5" is not a number of seconds`},
		{nil, `{"id":"1","recorder":"Zoom Phone",` + ok + `}`, `call 1 recorder: "Zoom Phone": want lower-case letters`},
		{nil, `{"id":"1","started_at":"2024-06-01T10:00:00Z"}`, "call 1 participants: missing: a call needs at least one participant"},
		{nil, `{"id":"1","started_at":"2024-06-01T10:00:00Z","participants":[{"side":"buyer"}]}`, "call 1 participants[0]: needs an email or a name"},
		{nil, `{"id":"1","started_at":"2024-06-01T10:00:00Z","participants":[{"name":"A","side":"prospect"}]}`, `call 1 participants[0].side: "prospect": want buyer, seller, external or internal`},
		{nil, `{"id":"1","started_at":"2024-06-01T10:00:00Z","participants":[{"name":"A"}]}`, "call 1 participants[0].side: missing, and no e-mail to decide it by"},
		{nil, `{"id":"1",` + ok + `}`, "call 1 participants[0].side: missing, and no seller domains are configured"},
		{[]string{"acme.example"}, `{"id":"1",` + ok + `,"next_steps":[{"text":" "}]}`, "call 1 next_steps[0].text: missing"},
		{[]string{"acme.example"}, `{"id":"1",` + ok + `,"next_steps":[{"text":"x"}]}`, "call 1 next_steps[0].owner_side: missing, and no e-mail to decide it by"},
		{nil, `{"id":"1","started_at":"2024-06-01T10:00:00Z","participants":[{"name":"A","side":"seller"}],"next_steps":[{"text":"x","owner_email":"b@initech.example"}]}`, "call 1 next_steps[0].owner_email: missing, and no seller domains"},
		{[]string{"acme.example"}, `{"id":"1",` + ok + `,"next_steps":[{"text":"x","owner_side":"seller","due_at":"soon"}]}`, `call 1 next_steps[0].due_at: "soon" is not a time`},
		{[]string{"acme.example"}, `{"id":"1",` + ok + `,"next_meeting_at":"monday"}`, `call 1 next_meeting_at: "monday" is not a time`},
		{nil, `[7]`, "call record: want an object, got number"},
	}
	for _, tt := range tests {
		res, err := CallRecords{SellerDomains: tt.domains}.Map("acme", []byte(tt.body), now)
		if err != nil {
			t.Errorf("%s: %v", tt.body, err)
			continue
		}
		if len(res.Refused) != 1 || len(res.Events) != 0 || !strings.HasPrefix(res.Refused[0].Reason, tt.want) {
			t.Errorf("%s:\nrefused %+v\nwant %q", tt.body, res.Refused, tt.want)
		}
	}
	// One record refused does not refuse the others; indexes count records.
	body := `{"id":"1",` + ok + "}\n{" + ok + "}\n" + `{"id":"3",` + ok + "}"
	res, err := acmeDomains.Map("acme", []byte(body), now)
	if err != nil || len(res.Events) != 2 || len(res.Refused) != 1 || res.Refused[0].Index != 1 {
		t.Fatalf("%v %+v", err, res)
	}
}

// TestCallSides: a next step's owner is the side the record gives it,
// else the side of the participant with its e-mail (whatever the domain
// says), else the side of its e-mail's domain.
func TestCallSides(t *testing.T) {
	body := `{"id":"9","started_at":"2024-06-01T10:00:00Z","participants":[
		{"email":"consultant@partner.example","side":"seller"},
		{"email":"ann@ACME.example"},
		{"email":"bob@sub.acme.example"},
		{"email":"eve@notacme.example"}],
		"next_steps":[
		{"text":"a","owner_email":"Consultant@partner.example"},
		{"text":"b","owner_email":"zed@initech.example"},
		{"text":"c","owner_email":"ann@acme.example","owner_side":"external"}]}`
	res, err := acmeDomains.Map("acme", []byte(body), now)
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	call := res.Events[0].Payload.(*event.Call)
	var got []string
	for _, p := range call.Participants {
		got = append(got, p.Email+"="+string(p.Side))
	}
	for _, a := range call.ActionItems {
		got = append(got, a.Text+"="+string(a.OwnerSide))
	}
	want := "consultant@partner.example=seller ann@ACME.example=seller bob@sub.acme.example=seller eve@notacme.example=buyer a=seller b=buyer c=buyer"
	if strings.Join(got, " ") != want {
		t.Fatalf("sides %s\nwant  %s", strings.Join(got, " "), want)
	}
}

func TestParseSellerDomains(t *testing.T) {
	got, err := ParseSellerDomains(" Acme.com, @acme.io,,")
	if err != nil || !reflect.DeepEqual(got, []string{"acme.com", "acme.io"}) {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"acme", "acme.com,x y.com", ".com", "acme.com.", "a@b.com"} {
		if _, err := ParseSellerDomains(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
