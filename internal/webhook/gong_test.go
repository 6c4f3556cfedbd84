package webhook

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

func TestGong(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		fixture string
		want    []brief
		ignored map[string]int
	}{
		{"gong_calls_extensive.json", []brief{
			{"call-7782342274025937895-0065g00000AbCdEAAV", "0065g00000AbCdEAAV", event.CallCompleted, "2024-06-03T14:43:11Z", &event.Call{
				CallID: "7782342274025937895", Title: "Acme <> Initech - discovery", StartedAt: at("2024-06-03T14:02:11.345Z"), DurationSeconds: 2460,
				Participants: []event.Participant{
					{Email: "dana.seller@acme.example", Name: "Dana Seller", Side: event.Seller, Title: "Account Executive"},
					{Email: "bill.lumbergh@initech.example", Name: "Bill Lumbergh", Side: event.Buyer, Title: "VP Operations"},
					{Email: "milton@initech.example", Name: "Milton Waddams", Side: event.Buyer},
				},
				ActionItems: []event.ActionItem{
					{Text: "I'll send you the security questionnaire by Friday.", OwnerSide: event.Buyer, OwnerEmail: "bill.lumbergh@initech.example"},
					{Text: "I will share the pricing proposal tomorrow.", OwnerSide: event.Seller, OwnerEmail: "dana.seller@acme.example"},
				},
			}},
			{"call-7782342274025937896", "", event.CallCompleted, "2024-06-04T09:20:00Z", &event.Call{
				CallID: "7782342274025937896", Title: "Internal pipeline review", StartedAt: at("2024-06-04T09:00:00Z"), DurationSeconds: 1200,
				Participants: []event.Participant{{Email: "dana.seller@acme.example", Name: "Dana Seller", Side: event.Seller}},
			}},
		}, map[string]int{"party:anonymous": 1, "action_item:unknown_speaker": 1, "context:Account": 1}},
		{"gong_webhook.json", []brief{
			{"call-5599332235511222779-0061Q00000mkU1fQAE", "0061Q00000mkU1fQAE", event.CallCompleted, "2024-06-05T21:39:36Z", &event.Call{
				CallID: "5599332235511222779", Title: "Ron/Speedman", StartedAt: at("2024-06-05T21:03:37.041977Z"), DurationSeconds: 2159,
				Participants: []event.Participant{
					{Email: "ron@gong.example", Name: "Ron Seller", Side: event.Seller, Title: "Account Manager"},
					{Email: "speedman@acme.com", Name: "Sam Speedman", Side: event.Buyer, Title: "Head of Sales Ops"},
				},
				ActionItems: []event.ActionItem{{Text: "Let me loop in our procurement team this week.", OwnerSide: event.Buyer, OwnerEmail: "speedman@acme.com"}},
			}},
		}, map[string]int{"context:Account": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			res, err := Gong("acme", fixture(t, tt.fixture), now)
			if err != nil {
				t.Fatal(err)
			}
			checkEvents(t, res, GongSource, tt.want)
			if !reflect.DeepEqual(res.Ignored, tt.ignored) {
				t.Errorf("ignored %v, want %v", res.Ignored, tt.ignored)
			}
			if len(res.Refused) > 0 {
				t.Errorf("refused %v", res.Refused)
			}
		})
	}
}

// TestGongShapes: the shapes a Gong payload comes in, the line each call
// starts on, and the calls refused.
func TestGongShapes(t *testing.T) {
	call := func(id string) string {
		return `{"metaData":{"id":"` + id + `","started":"2024-06-01T10:00:00Z","duration":60},"parties":[{"name":"A","affiliation":"Internal"}]}`
	}
	tests := []struct {
		name, body string
		lines      []int
		refused    []string
	}{
		{"a call", call("1"), []int{1}, nil},
		{"an array", "[\n" + call("1") + ",\n" + call("2") + "\n]", []int{2, 3}, nil},
		{"a response", "{\"requestId\": \"x\",\n\"records\": {},\n\"calls\": [\n" + call("1") + ",\n" + call("2") + "]}", []int{4, 5}, nil},
		{"a webhook", "{\"isTest\": true,\n\"callData\":\n" + call("1") + "}", []int{3}, nil},
		{"refused", `[{"metaData":{"started":"2024-06-01T10:00:00Z"}},{"metaData":{"id":"3","started":"yesterday"}},{"metaData":{"id":4,"started":"2024-06-01T10:00:00Z","duration":"long"}},{"metaData":[]}]`,
			[]int{1, 1, 1, 1}, []string{
				"call metaData.id: missing",
				`call 3 metaData.started: "yesterday" is not an ISO 8601 time`,
				`call 4 metaData.duration: "long" is not a number of seconds`,
				"call field metaData: unexpected array",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, err := GongCalls([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			var lines []int
			for _, c := range calls {
				lines = append(lines, c.Line)
			}
			if !reflect.DeepEqual(lines, tt.lines) {
				t.Errorf("lines %v, want %v", lines, tt.lines)
			}
			res, err := Gong("acme", []byte(tt.body), now)
			if err != nil {
				t.Fatal(err)
			}
			var refused []string
			for _, r := range res.Refused {
				refused = append(refused, r.Reason)
			}
			if !reflect.DeepEqual(refused, tt.refused) {
				t.Errorf("refused %q, want %q", refused, tt.refused)
			}
			if len(res.Events)+len(res.Refused) != len(calls) {
				t.Errorf("%d events and %d refused of %d calls", len(res.Events), len(res.Refused), len(calls))
			}
		})
	}
	for _, body := range []string{``, `"x"`, `{}`, `{"records":{}}`, `{"calls":[1,`, `[1] x`} {
		if _, err := GongCalls([]byte(body)); err == nil {
			t.Errorf("%q: no error", body)
		}
	}
}

// TestGongSides: an Unknown party takes the side of its e-mail domain,
// unless both sides share the domain.
func TestGongSides(t *testing.T) {
	body := `{"metaData":{"id":"9","started":"2024-06-01T10:00:00Z"},"parties":[
		{"emailAddress":"a@seller.example","affiliation":"Internal"},
		{"emailAddress":"b@Buyer.example","affiliation":"External"},
		{"emailAddress":"c@buyer.example","affiliation":"Unknown"},
		{"emailAddress":"d@seller.example","affiliation":"Unknown"},
		{"emailAddress":"e@both.example","affiliation":"Internal"},
		{"emailAddress":"f@both.example","affiliation":"External"},
		{"emailAddress":"g@both.example","affiliation":"Unknown"},
		{"name":"Phone caller","affiliation":"Unknown"}]}`
	res, err := Gong("acme", []byte(body), now)
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("%v %+v", err, res)
	}
	var got []string
	for _, p := range res.Events[0].Payload.(*event.Call).Participants {
		got = append(got, p.Email+"="+string(p.Side))
	}
	want := "a@seller.example=seller b@Buyer.example=buyer c@buyer.example=buyer d@seller.example=seller e@both.example=seller f@both.example=buyer"
	if strings.Join(got, " ") != want || res.Ignored["party:unknown_affiliation"] != 2 {
		t.Fatalf("participants %s, ignored %v; want %s and 2 unknown", got, res.Ignored, want)
	}
}

func FuzzGong(f *testing.F) {
	for _, name := range []string{"gong_calls_extensive.json", "gong_webhook.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`[{"metaData":{"id":"1","started":"2024-06-01T10:00:00Z"},"parties":[{"emailAddress":"x@y.z","affiliation":"Unknown"}],"content":{"pointsOfInterest":{"actionItems":[{"speakerID":"","snippet":"x"}]}}}]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		checkMapped(t, GongSource, func() (Result, error) { return Gong("acme", body, now) })
	})
}
