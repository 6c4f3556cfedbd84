// Package event defines commitflow's canonical input events: a versioned
// envelope around a typed payload, for CRM changes and call records.
//
// The package is free of infrastructure: it parses, validates and encodes
// events, nothing more. Every validation error names the offending field.
package event

import (
	stdjson "encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	json "github.com/goccy/go-json"
)

// EnvelopeVersion is the current version of the envelope format.
const EnvelopeVersion = 1

// Type names the kind of an input event.
type Type string

// Input event types. CRM events describe an opportunity and what happened to
// it; call records describe one buyer interaction.
const (
	OpportunityCreated      Type = "opportunity.created"
	OpportunityUpdated      Type = "opportunity.updated"
	StageChanged            Type = "opportunity.stage_changed"
	AmountChanged           Type = "opportunity.amount_changed"
	ProbabilityChanged      Type = "opportunity.probability_changed"
	CloseDateChanged        Type = "opportunity.close_date_changed"
	OwnerChanged            Type = "opportunity.owner_changed"
	ForecastCategoryChanged Type = "opportunity.forecast_category_changed"
	ClosedWon               Type = "opportunity.closed_won"
	ClosedLost              Type = "opportunity.closed_lost"
	ContactAdded            Type = "contact.added"
	ActivityLogged          Type = "activity.logged"
	CallCompleted           Type = "call.completed"
)

// Types lists every input event type, in a stable order.
var Types = []Type{
	OpportunityCreated, OpportunityUpdated, StageChanged, AmountChanged,
	CloseDateChanged, OwnerChanged, ForecastCategoryChanged, ClosedWon,
	ClosedLost, ContactAdded, ActivityLogged, CallCompleted, ProbabilityChanged,
}

// Side is the side of a deal a person is on.
type Side string

// Sides of a deal.
const (
	Buyer  Side = "buyer"
	Seller Side = "seller"
)

func (s Side) valid() bool { return s == Buyer || s == Seller }

// Event is one input event: the envelope and its typed payload.
type Event struct {
	// V is the envelope version; 0 is read as EnvelopeVersion.
	V int `json:"v"`
	// ID is the id the source gave the event; unique per tenant and source.
	ID string `json:"id"`
	// Tenant owns the event.
	Tenant string `json:"tenant"`
	// Source is the system that sent it: salesforce, hubspot, gong, ...
	Source string `json:"source"`
	// Type says which payload follows.
	Type Type `json:"type"`
	// OccurredAt is when it happened in the source system.
	OccurredAt time.Time `json:"occurred_at"`
	// ReceivedAt is when commitflow (or the sender) received it.
	ReceivedAt time.Time `json:"received_at"`
	// OpportunityID is the source's opportunity id, where known.
	OpportunityID string `json:"opportunity_id,omitempty"`
	// Payload is one of the payload types below, matching Type.
	Payload Payload `json:"payload"`
}

// Payload is the typed body of an event.
type Payload interface {
	// Validate reports the first invalid field, named by its JSON path
	// relative to the payload.
	Validate() error
}

// FieldError is a validation error that names the offending field.
type FieldError struct {
	Field  string // JSON path, e.g. "payload.action_items[1].owner_side"
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// prefix puts parent in front of the field a FieldError names.
func prefix(parent string, err error) error {
	if fe, ok := err.(*FieldError); ok {
		return &FieldError{Field: parent + "." + fe.Field, Reason: fe.Reason}
	}
	return err
}

// TokenPattern is what ValidToken accepts, as a regular expression.
const TokenPattern = `^[a-z0-9][a-z0-9_-]{0,63}$`

// ValidToken reports whether s may be used as a tenant or source name, a
// token of NATS subjects: it matches TokenPattern. (A loop, not a regular
// expression: it runs twice for every ingested event.)
func ValidToken(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '_' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

// NewPayload returns an empty payload for t, or nil if t is unknown.
func NewPayload(t Type) Payload {
	switch t {
	case OpportunityCreated, OpportunityUpdated:
		return &Opportunity{}
	case StageChanged:
		return &StageChange{}
	case AmountChanged:
		return &AmountChange{}
	case ProbabilityChanged:
		return &ProbabilityChange{}
	case CloseDateChanged:
		return &CloseDateChange{}
	case OwnerChanged:
		return &OwnerChange{}
	case ForecastCategoryChanged:
		return &ForecastCategoryChange{}
	case ClosedWon:
		return &Won{}
	case ClosedLost:
		return &Lost{}
	case ContactAdded:
		return &Contact{}
	case ActivityLogged:
		return &Activity{}
	case CallCompleted:
		return &Call{}
	}
	return nil
}

// MaxEventSize is the largest JSON-encoded event Parse accepts, in bytes:
// 256 KiB. A typical call record is about 1 KiB and a very large one (20
// participants, 50 action items of a few sentences each) about 18 KiB, so
// the limit leaves more than ten times the largest real event while bounding
// what one message can cost each stage that holds it whole: the ingest batch,
// the raw_events row, and every history load of its opportunity in derive.
// It is far below the NATS payload limit (1 MiB by default, 8 MiB embedded),
// so an oversized event reaches ingest and is dead-lettered with a reason
// rather than refused at publish time.
const MaxEventSize = 256 << 10

// Parse decodes and validates one JSON-encoded event. The error names the
// offending field; a body over MaxEventSize is refused before decoding, with
// an error on "body" that gives its size and the limit.
func Parse(data []byte) (Event, error) {
	if len(data) > MaxEventSize {
		return Event{}, fieldErr("body", "%d bytes is over the event size limit of %d bytes", len(data), MaxEventSize)
	}
	var ev Event
	if err := ev.UnmarshalJSON(data); err != nil {
		if serr := syntaxError(data); serr != nil {
			return Event{}, serr
		}
		return Event{}, err
	}
	if err := ev.Validate(); err != nil {
		return Event{}, err
	}
	return ev, nil
}

// syntaxError returns a FieldError for the body if data is not valid JSON.
// It runs on the error path only; the standard library's scanner gives the
// byte offset.
func syntaxError(data []byte) error {
	var v any
	err := stdjson.Unmarshal(data, &v)
	var se *stdjson.SyntaxError
	if errors.As(err, &se) {
		return fieldErr("body", "invalid JSON at byte %d: %v", se.Offset, se)
	}
	// Any other error (a number out of range, say) is about a value of
	// valid JSON, which the decoder's error names.
	return nil
}

// UnmarshalJSON decodes the envelope and then the payload its type names.
// Unknown fields, duplicate names and invalid UTF-8 are refused so that
// typos do not pass silently.
func (e *Event) UnmarshalJSON(data []byte) error {
	if decodeFast(data, e) {
		return nil
	}
	err := jsonv2.Unmarshal(data, e, strict)
	// Every error of UnmarshalJSONFrom is a FieldError; return it as is
	// rather than wrapped.
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe
	}
	return err
}

// UnmarshalJSONFrom decodes an event in one pass: the payload is decoded
// into the type's struct as it is read when "type" comes before it, as it
// does in everything Marshal writes, and kept raw until the end otherwise.
func (e *Event) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	*e = Event{}
	if dec.PeekKind() != '{' {
		v, err := dec.ReadValue()
		if err != nil {
			return decodeError("", err)
		}
		return fieldErr("envelope", "cannot unmarshal JSON %s into an event object", kindName(v.Kind()))
	}
	if _, err := dec.ReadToken(); err != nil {
		return decodeError("", err)
	}
	var (
		payload Payload
		raw     jsontext.Value
		seen    bool
	)
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return decodeError("", err)
		}
		name := tok.String()
		var target any
		switch name {
		case "v":
			target = &e.V
		case "id":
			target = &e.ID
		case "tenant":
			target = &e.Tenant
		case "source":
			target = &e.Source
		case "type":
			target = &e.Type
		case "occurred_at":
			target = &e.OccurredAt
		case "received_at":
			target = &e.ReceivedAt
		case "opportunity_id":
			target = &e.OpportunityID
		case "payload":
			seen = true
			if p := NewPayload(e.Type); p != nil && dec.PeekKind() != 'n' {
				payload, target = p, p
				break
			}
			v, err := dec.ReadValue()
			if err != nil {
				return decodeError("", err)
			}
			raw = v.Clone()
			continue
		default:
			return fieldErr("envelope", "unknown field %q", name)
		}
		if err := jsonv2.UnmarshalDecode(dec, target, strict); err != nil {
			return decodeError("", err)
		}
	}
	if _, err := dec.ReadToken(); err != nil {
		return decodeError("", err)
	}
	p := NewPayload(e.Type)
	if p == nil {
		if e.Type == "" {
			return fieldErr("type", "missing")
		}
		return fieldErr("type", "unknown event type %q", e.Type)
	}
	switch {
	case payload != nil:
		e.Payload = payload
		return nil
	case !seen || len(raw) == 0 || string(raw) == "null":
		return fieldErr("payload", "missing")
	}
	if err := jsonv2.Unmarshal(raw, p, strict); err != nil {
		return decodeError("payload", err)
	}
	e.Payload = p
	return nil
}

// decodeError turns a decoding error into a FieldError naming the field
// it is about, under base ("" for the envelope, "payload").
func decodeError(base string, err error) error {
	var se *jsonv2.SemanticError
	if errors.As(err, &se) {
		if errors.Is(se.Err, jsonv2.ErrUnknownName) {
			parent := fieldPath(base, se.JSONPointer.Parent())
			if parent == "" {
				parent = "envelope"
			}
			return fieldErr(parent, "unknown field %q", se.JSONPointer.LastToken())
		}
		field := fieldPath(base, se.JSONPointer)
		if field == "" {
			field = "envelope"
		}
		var reason string
		if se.GoType != nil && se.JSONKind != 0 {
			into := se.GoType.String()
			if se.GoType.Kind() == reflect.Struct && se.GoType.Name() == "" {
				into = "an event object"
			}
			reason = fmt.Sprintf("cannot unmarshal JSON %s into %s", kindName(se.JSONKind), into)
		}
		if se.Err != nil {
			reason = strings.TrimPrefix(reason+": "+se.Err.Error(), ": ")
		}
		if reason == "" {
			reason = se.Error()
		}
		return fieldErr(field, "%s", reason)
	}
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) {
		field := fieldPath(base, syn.JSONPointer)
		if field == "" {
			field = "body"
		}
		return fieldErr(field, "invalid JSON at byte %d: %v", syn.ByteOffset, syn.Err)
	}
	if base == "" {
		base = "body"
	}
	return fieldErr(base, "%v", err)
}

// kindName names a JSON kind in words.
func kindName(k jsontext.Kind) string {
	switch k {
	case '"':
		return "string"
	case '0':
		return "number"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return k.String()
}

// fieldPath renders a JSON pointer below base the way FieldError names
// fields: payload.action_items[1].owner_side.
func fieldPath(base string, p jsontext.Pointer) string {
	var b strings.Builder
	b.WriteString(base)
	for tok := range p.Tokens() {
		if tok != "" && strings.Trim(tok, "0123456789") == "" {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(tok)
	}
	return b.String()
}

// strict are the decoding options of events: unknown members are errors.
var strict = jsonv2.RejectUnknownMembers(true)

// Validate checks the envelope and the payload.
func (e *Event) Validate() error {
	switch {
	case e.V != 0 && e.V != EnvelopeVersion:
		return fieldErr("v", "unsupported envelope version %d (want %d)", e.V, EnvelopeVersion)
	case strings.TrimSpace(e.ID) == "":
		return fieldErr("id", "missing")
	case len(e.ID) > 256:
		return fieldErr("id", "longer than 256 bytes")
	case e.Tenant == "":
		return fieldErr("tenant", "missing")
	case !ValidToken(e.Tenant):
		return fieldErr("tenant", "%q must match %s", e.Tenant, TokenPattern)
	case e.Source == "":
		return fieldErr("source", "missing")
	case !ValidToken(e.Source):
		return fieldErr("source", "%q must match %s", e.Source, TokenPattern)
	case e.OccurredAt.IsZero():
		return fieldErr("occurred_at", "missing")
	case !inRange(e.OccurredAt):
		return outOfRange("occurred_at", e.OccurredAt.Format(time.RFC3339))
	case !e.ReceivedAt.IsZero() && !inRange(e.ReceivedAt):
		return outOfRange("received_at", e.ReceivedAt.Format(time.RFC3339))
	case len(e.OpportunityID) > 256:
		return fieldErr("opportunity_id", "longer than 256 bytes")
	}
	p := NewPayload(e.Type)
	if p == nil {
		return fieldErr("type", "unknown event type %q", e.Type)
	}
	if e.Payload == nil || reflect.ValueOf(e.Payload).IsNil() {
		return fieldErr("payload", "missing")
	}
	if reflect.TypeOf(p) != reflect.TypeOf(e.Payload) {
		return fieldErr("payload", "%T does not match type %q", e.Payload, e.Type)
	}
	if needsOpportunity(e.Type) && e.OpportunityID == "" {
		return fieldErr("opportunity_id", "required for %s", e.Type)
	}
	if err := e.Payload.Validate(); err != nil {
		return prefix("payload", err)
	}
	return nil
}

// The years every timestamp and date of an event must fall in, both
// included: the years ClickHouse's DateTime (1970-01-01T00:00:00Z to
// 2106-02-07T06:28:15Z) holds whole, less 1970. Its first instant is the
// zero that Date and DateTime columns fill in for "unset" (ClickHouse 18.16
// shows it as 0000-00-00, and the store reads it back as no date), so a
// value in 1970 could not be told from a missing one; excluding the whole
// year also keeps a local time in 1971 with any offset after it. A local
// time in 2105 with any offset is before the end of 2106-01-01 UTC.
const (
	minYear = 1971
	maxYear = 2105
)

// inRange reports whether t's year, as written (in its own offset, not
// UTC), is within minYear..maxYear.
func inRange(t time.Time) bool { return t.Year() >= minYear && t.Year() <= maxYear }

// checkTime checks that an optional timestamp inside a payload is in
// range; nil passes.
func checkTime(field string, t *time.Time) error {
	if t != nil && !inRange(*t) {
		return outOfRange(field, t.Format(time.RFC3339))
	}
	return nil
}

// outOfRange is the error for a timestamp or date, as written, whose year
// is outside minYear..maxYear.
func outOfRange(field, value string) error {
	return fieldErr(field, "%s is out of range (years %d..%d)", value, minYear, maxYear)
}

// needsOpportunity reports whether events of type t must name their
// opportunity. Calls and activities may arrive unlinked.
func needsOpportunity(t Type) bool {
	return strings.HasPrefix(string(t), "opportunity.") || t == ContactAdded
}

// Marshal encodes e as JSON, with envelope version set.
func Marshal(e Event) ([]byte, error) {
	if e.V == 0 {
		e.V = EnvelopeVersion
	}
	type envelope Event
	return json.Marshal(envelope(e))
}
