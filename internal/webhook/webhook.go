// Package webhook turns CRM vendors' webhook payloads into canonical
// events: HubSpot webhooks (deal creation and property changes, with the
// v3 request signature) and Pipedrive deal webhooks (v2, and v1).
//
// The package is pure: it verifies signatures and maps payloads, and the
// HTTP handlers in internal/api read requests and publish. Every event's id
// comes from the vendor's identity of the notification, so a notification
// delivered again (a retry) becomes the same events with the same ids, which
// the stream and the store keep once.
package webhook

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// Result is what one webhook request becomes.
type Result struct {
	// Events are the canonical events, in payload order. They are not
	// validated: the caller validates each (event.Validate) and refuses
	// those that fail.
	Events []event.Event
	// Refused are notifications that could not be mapped (an amount that
	// is not a number, say), with the reason.
	Refused []Refusal
	// Ignored counts what the payload held that maps to no event, by what
	// it was: "property:hs_lastmodifieddate", "subscription:contact.creation",
	// "field:title", "entity:person", ... Unknown properties and fields
	// are never errors.
	Ignored map[string]int
}

// Refusal is a notification not mapped, with the reason.
type Refusal struct {
	// Index is the notification's position in the body, from 0.
	Index  int    `json:"index"`
	Reason string `json:"reason"`
}

func (r *Result) ignore(what string) {
	if r.Ignored == nil {
		r.Ignored = map[string]int{}
	}
	r.Ignored[what]++
}

func (r *Result) refuse(index int, format string, args ...any) {
	r.Refused = append(r.Refused, Refusal{Index: index, Reason: fmt.Sprintf(format, args...)})
}

// flexString is a JSON scalar read as text: vendors send ids and amounts
// as numbers in one version and strings in another. null reads as "".
type flexString string

// UnmarshalJSON implements json.Unmarshaler.
func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0:
		return fmt.Errorf("empty JSON value")
	case string(b) == "null":
		*f = ""
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case b[0] == '{' || b[0] == '[':
		return fmt.Errorf("want a string or a number, got %s", kind(b[0]))
	default: // a number or a boolean, as written
		*f = flexString(b)
	}
	return nil
}

func kind(c byte) string {
	if c == '{' {
		return "an object"
	}
	return "an array"
}

// amount parses an amount written as a number or as a string; "" is 0.
func amount(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return v, nil
}

// epoch reads a Unix time in seconds or, from 10^11 on (the year 5138 in
// seconds, March 1973 in milliseconds), in milliseconds.
func epoch(n int64) time.Time {
	if n >= 1e11 || n <= -1e11 {
		return time.UnixMilli(n).UTC()
	}
	return time.Unix(n, 0).UTC()
}

// instant parses a time given as Unix seconds or milliseconds (a number or
// digits) or as RFC 3339, or as "YYYY-MM-DD hh:mm:ss" in UTC (Pipedrive
// v1's times).
func instant(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return epoch(n), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateTime} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want Unix seconds or milliseconds, or RFC 3339)", s)
}

// date parses a calendar date given as YYYY-MM-DD, as RFC 3339 (its UTC
// date) or as Unix milliseconds (HubSpot's date properties: midnight UTC).
func date(s string) (event.Date, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return event.Date(t.Format(time.DateOnly)), nil
	}
	t, err := instant(s)
	if err != nil {
		return "", fmt.Errorf("%q is not a date (want YYYY-MM-DD, RFC 3339 or Unix milliseconds)", s)
	}
	return event.Date(t.Format(time.DateOnly)), nil
}
