// Package event defines commitflow's canonical input events: a versioned
// envelope around a typed payload, for CRM changes and call records.
//
// The package is free of infrastructure: it parses, validates and encodes
// events, nothing more. Every validation error names the offending field.
package event

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	json "github.com/goccy/go-json"
	"reflect"
	"regexp"
	"strings"
	"time"
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
	ClosedLost, ContactAdded, ActivityLogged, CallCompleted,
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

// Tokens used in NATS subjects: tenant and source must be safe there.
var tokenRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// ValidToken reports whether s may be used as a tenant or source name.
func ValidToken(s string) bool { return tokenRE.MatchString(s) }

// NewPayload returns an empty payload for t, or nil if t is unknown.
func NewPayload(t Type) Payload {
	switch t {
	case OpportunityCreated, OpportunityUpdated:
		return &Opportunity{}
	case StageChanged:
		return &StageChange{}
	case AmountChanged:
		return &AmountChange{}
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

// Parse decodes and validates one JSON-encoded event. The error names the
// offending field.
func Parse(data []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(data, &ev); err != nil {
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
	switch {
	case errors.As(err, &se):
		return fieldErr("body", "invalid JSON at byte %d: %v", se.Offset, se)
	case err != nil:
		return fieldErr("body", "invalid JSON: %v", err)
	}
	return nil
}

// UnmarshalJSON decodes the envelope and then the payload its type names.
// Unknown fields are refused so that typos do not pass silently.
func (e *Event) UnmarshalJSON(data []byte) error {
	type envelope Event
	var raw struct {
		envelope
		Payload json.RawMessage `json:"payload"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	*e = Event(raw.envelope)
	p := NewPayload(e.Type)
	if p == nil {
		if e.Type == "" {
			return fieldErr("type", "missing")
		}
		return fieldErr("type", "unknown event type %q", e.Type)
	}
	if len(raw.Payload) == 0 || string(raw.Payload) == "null" {
		return fieldErr("payload", "missing")
	}
	pd := json.NewDecoder(bytes.NewReader(raw.Payload))
	pd.DisallowUnknownFields()
	if err := pd.Decode(p); err != nil {
		return fieldErr("payload", "%v", err)
	}
	e.Payload = p
	return nil
}

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
		return fieldErr("tenant", "%q must match %s", e.Tenant, tokenRE)
	case e.Source == "":
		return fieldErr("source", "missing")
	case !ValidToken(e.Source):
		return fieldErr("source", "%q must match %s", e.Source, tokenRE)
	case e.OccurredAt.IsZero():
		return fieldErr("occurred_at", "missing")
	case !inRange(e.OccurredAt):
		return fieldErr("occurred_at", "%s is out of range (1971..2105)", e.OccurredAt.Format(time.RFC3339))
	case !e.ReceivedAt.IsZero() && !inRange(e.ReceivedAt):
		return fieldErr("received_at", "out of range (1971..2105)")
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

// inRange reports whether t fits ClickHouse's DateTime (1970..2105) with a
// margin.
func inRange(t time.Time) bool { return t.Year() >= 1971 && t.Year() <= 2105 }

// checkTime validates an optional timestamp inside a payload.
func checkTime(field string, t *time.Time) error {
	if t != nil && !inRange(*t) {
		return fieldErr(field, "%s is out of range (1971..2105)", t.Format(time.RFC3339))
	}
	return nil
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
