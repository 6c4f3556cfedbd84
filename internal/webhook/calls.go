package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/jsonpart"
)

// CallsSource is the source of the events made of generic call records
// that name no recorder.
const CallsSource = "calls"

// callRecord is one record of commitflow's generic call-record JSON, for
// recorders and dialers Gong does not cover (Zoom, Twilio, Chorus, ...):
// schemas/calls/call_record.schema.json describes it, and a test keeps the
// two alike. Unknown fields are refused, so that a misspelt field is an
// error rather than a silent loss.
type callRecord struct {
	ID                scalar            `json:"id"`
	Recorder          string            `json:"recorder"`
	Title             string            `json:"title"`
	StartedAt         scalar            `json:"started_at"`
	DurationS         scalar            `json:"duration_s"`
	OpportunityID     scalar            `json:"opportunity_id"`
	Participants      []callParticipant `json:"participants"`
	NextSteps         []callNextStep    `json:"next_steps"`
	NextMeetingBooked bool              `json:"next_meeting_booked"`
	NextMeetingAt     scalar            `json:"next_meeting_at"`
}

type callParticipant struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	Title string `json:"title"`
	Role  string `json:"role"`
	Side  string `json:"side"`
}

type callNextStep struct {
	Text       string `json:"text"`
	OwnerEmail string `json:"owner_email"`
	OwnerSide  string `json:"owner_side"`
	DueAt      scalar `json:"due_at"`
	Kind       string `json:"kind"`
}

// scalar is a flexString whose type error names its field: a
// *json.UnmarshalTypeError, which encoding/json completes with the path.
type scalar string

// UnmarshalJSON implements json.Unmarshaler.
func (s *scalar) UnmarshalJSON(b []byte) error {
	var f flexString
	if err := f.UnmarshalJSON(b); err != nil {
		got := "array"
		if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
			got = "object"
		}
		return &json.UnmarshalTypeError{Value: got, Type: reflect.TypeFor[string]()}
	}
	*s = scalar(f)
	return nil
}

// CallPart is one call record of a body: its bytes and the line of the
// body it starts on, from 1.
type CallPart = jsonpart.Part

// CallParts returns the call records of a body: a record (a JSON object),
// a JSON array of records, or several of either one after the other
// (NDJSON, one record a line). The error is for a body that is not JSON,
// holds no record, or holds a value that is neither an object nor an
// array at the top.
func CallParts(body []byte) ([]CallPart, error) {
	dec := jsonpart.NewDecoder(body)
	fail := func(err error) ([]CallPart, error) {
		var se *jsontext.SyntacticError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("calls: line %d: not valid JSON: %w", dec.Line(se.ByteOffset), err)
		}
		return nil, fmt.Errorf("calls: %w", err)
	}
	var parts []CallPart
	for {
		switch dec.PeekKind() {
		case '{':
			p, err := dec.ReadPart()
			if err != nil {
				return fail(err)
			}
			parts = append(parts, p)
		case '[':
			ps, err := dec.ReadArray()
			if err != nil {
				return fail(err)
			}
			parts = append(parts, ps...)
		default:
			if _, err := dec.ReadToken(); err != io.EOF {
				if err == nil {
					err = errors.New("want call records: JSON objects, or arrays of them")
				}
				return fail(err)
			}
			if len(parts) == 0 {
				return fail(errors.New("no call records in the body"))
			}
			return parts, nil
		}
	}
}

// CallRecords maps commitflow's generic call-record JSON to call.completed
// events.
type CallRecords struct {
	// SellerDomains are the e-mail domains of the seller's people, lower
	// case (see ParseSellerDomains). A participant whose record gives no
	// side is a seller when the domain of its e-mail is one of them or a
	// subdomain of one, else a buyer. Without them, such a participant
	// refuses its record.
	SellerDomains []string
}

// Map maps the call records of body (see CallParts) to tenant's
// call.completed events, one per record, at the call's end (started_at
// plus duration_s). Its id is "call-" and the record's id, and "-" and
// the opportunity id when it has one, which the same record sent again
// repeats; its source is the record's recorder, else CallsSource.
//
// A participant's side is the record's ("buyer" or "seller"; "external"
// and "internal", as recorders say, are the same), else decided by its
// e-mail domain (SellerDomains). A next step is owned by its owner_side,
// else by the side of the participant whose e-mail is its owner_email,
// else by the domain of owner_email. A record that cannot be mapped (a
// field missing or of the wrong type, an unknown field, a side that
// cannot be decided) is refused with the field it names. The error is for
// a body CallParts refuses.
func (c CallRecords) Map(tenant string, body []byte, now time.Time) (Result, error) {
	parts, err := CallParts(body)
	if err != nil {
		return Result{}, err
	}
	var res Result
	for i, p := range parts {
		ev, err := c.mapRecord(tenant, p.Data, now)
		if err != nil {
			res.refuse(i, "%v", err)
			continue
		}
		res.Events = append(res.Events, ev)
	}
	return res, nil
}

// mapRecord maps one call record.
func (c CallRecords) mapRecord(tenant string, data []byte, now time.Time) (event.Event, error) {
	var r callRecord
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field == "":
			return event.Event{}, fmt.Errorf("call record: want an object, got %s", te.Value)
		case errors.As(err, &te):
			return event.Event{}, fmt.Errorf("call record field %s: unexpected %s", te.Field, te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return event.Event{}, fmt.Errorf("call record: %s (see schemas/calls/call_record.schema.json)", strings.TrimPrefix(err.Error(), "json: "))
		}
		return event.Event{}, fmt.Errorf("call record: %w", err)
	}
	id := strings.TrimSpace(string(r.ID))
	if id == "" {
		return event.Event{}, errors.New("call record id: missing")
	}
	fail := func(field, format string, args ...any) (event.Event, error) {
		return event.Event{}, fmt.Errorf("call %s %s: %s", id, field, fmt.Sprintf(format, args...))
	}
	source := CallsSource
	if rec := strings.TrimSpace(r.Recorder); rec != "" {
		if !event.ValidToken(rec) {
			return fail("recorder", "%q: want lower-case letters, digits, - and _ (e.g. zoom)", rec)
		}
		source = rec
	}
	if strings.TrimSpace(string(r.StartedAt)) == "" {
		return fail("started_at", "missing")
	}
	started, err := instant(string(r.StartedAt))
	if err != nil {
		return fail("started_at", "%v", err)
	}
	dur := 0.0
	if s := strings.TrimSpace(string(r.DurationS)); s != "" {
		if dur, err = strconv.ParseFloat(s, 64); err != nil || dur < 0 || dur > 1e7 || math.IsNaN(dur) {
			return fail("duration_s", "%q is not a number of seconds", s)
		}
	}
	seconds := int(math.Round(dur))
	call := &event.Call{
		CallID: id, Title: strings.TrimSpace(r.Title), StartedAt: started, DurationSeconds: seconds,
		NextMeetingBooked: r.NextMeetingBooked,
	}
	if s := strings.TrimSpace(string(r.NextMeetingAt)); s != "" {
		at, err := instant(s)
		if err != nil {
			return fail("next_meeting_at", "%v", err)
		}
		call.NextMeetingAt, call.NextMeetingBooked = &at, true
	}
	if len(r.Participants) == 0 {
		return fail("participants", "missing: a call needs at least one participant")
	}
	sides := map[string]event.Side{} // by lower-cased e-mail
	for i, p := range r.Participants {
		email, name := strings.TrimSpace(p.Email), strings.TrimSpace(p.Name)
		if email == "" && name == "" {
			return fail(fmt.Sprintf("participants[%d]", i), "needs an email or a name")
		}
		side, err := c.side(p.Side, email)
		if err != nil {
			return fail(fmt.Sprintf("participants[%d].side", i), "%v", err)
		}
		call.Participants = append(call.Participants, event.Participant{
			Email: email, Name: name, Side: side, Title: strings.TrimSpace(p.Title), Role: strings.TrimSpace(p.Role),
		})
		if email != "" {
			sides[strings.ToLower(email)] = side
		}
	}
	for i, n := range r.NextSteps {
		text := strings.TrimSpace(n.Text)
		if text == "" {
			return fail(fmt.Sprintf("next_steps[%d].text", i), "missing")
		}
		owner := strings.TrimSpace(n.OwnerEmail)
		side, ok := sides[strings.ToLower(owner)]
		if strings.TrimSpace(n.OwnerSide) != "" || !ok {
			if side, err = c.side(n.OwnerSide, owner); err != nil {
				field := "owner_side"
				if owner != "" {
					field = "owner_email"
				}
				return fail(fmt.Sprintf("next_steps[%d].%s", i, field), "%v", err)
			}
		}
		item := event.ActionItem{Text: text, OwnerSide: side, OwnerEmail: owner, Kind: strings.TrimSpace(n.Kind)}
		if s := strings.TrimSpace(string(n.DueAt)); s != "" {
			due, err := instant(s)
			if err != nil {
				return fail(fmt.Sprintf("next_steps[%d].due_at", i), "%v", err)
			}
			item.DueAt = &due
		}
		call.ActionItems = append(call.ActionItems, item)
	}
	ev := event.Event{
		ID: "call-" + id, Tenant: tenant, Source: source, Type: event.CallCompleted,
		OccurredAt: started.Add(time.Duration(seconds) * time.Second), ReceivedAt: now.UTC(), Payload: call,
	}
	if opp := strings.TrimSpace(string(r.OpportunityID)); opp != "" {
		ev.ID, ev.OpportunityID = ev.ID+"-"+opp, opp
	}
	return ev, nil
}

// side is the side a record gives ("" for none), else the side of the
// e-mail's domain.
func (c CallRecords) side(given, email string) (event.Side, error) {
	switch strings.ToLower(strings.TrimSpace(given)) {
	case "buyer", "external":
		return event.Buyer, nil
	case "seller", "internal":
		return event.Seller, nil
	case "":
	default:
		return "", fmt.Errorf("%q: want buyer, seller, external or internal", given)
	}
	d := domain(email)
	switch {
	case d == "":
		return "", errors.New("missing, and no e-mail to decide it by")
	case len(c.SellerDomains) == 0:
		return "", errors.New("missing, and no seller domains are configured to decide it by e-mail domain (--seller-domains, or seller_domains= on the webhook URL)")
	}
	for _, s := range c.SellerDomains {
		if d == s || strings.HasSuffix(d, "."+s) {
			return event.Seller, nil
		}
	}
	return event.Buyer, nil
}

// ParseSellerDomains parses a comma-separated list of e-mail domains
// ("acme.com, @acme.io"), lower-casing them and dropping a leading '@'.
// Blank entries are ignored; a domain needs a dot and only letters,
// digits, '-' and '.'.
func ParseSellerDomains(s string) ([]string, error) {
	var out []string
	for _, d := range strings.Split(s, ",") {
		d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
		if d == "" {
			continue
		}
		ok := strings.Contains(d, ".") && !strings.HasPrefix(d, ".") && !strings.HasSuffix(d, ".")
		for i := 0; i < len(d) && ok; i++ {
			c := d[i]
			ok = 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.'
		}
		if !ok {
			return nil, fmt.Errorf("seller domain %q: want a domain such as acme.com", d)
		}
		out = append(out, d)
	}
	return out, nil
}
