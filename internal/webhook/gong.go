package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/jsonpart"
)

// GongSource is the source of the events made of Gong call records.
const GongSource = "gong"

// gongCall is one call of Gong's call data, as GET/POST /v2/calls/extensive
// returns it and an automation rule's webhook sends it (Gong API
// reference, "Retrieve detailed call data by various filters", and Gong
// help, "Payload sent to webhooks": "the call data structure and element
// definitions are identical to the API"). Fields not read are ignored.
type gongCall struct {
	MetaData struct {
		ID       flexString `json:"id"`
		Title    string     `json:"title"`
		Started  string     `json:"started"`  // ISO 8601 with offset
		Duration flexString `json:"duration"` // seconds
		Scope    string     `json:"scope"`    // Internal, External, Unknown
	} `json:"metaData"`
	Parties []struct {
		EmailAddress string     `json:"emailAddress"`
		Name         string     `json:"name"`
		Title        string     `json:"title"`
		SpeakerID    flexString `json:"speakerId"`
		Affiliation  string     `json:"affiliation"` // Internal, External, Unknown
	} `json:"parties"`
	Content struct {
		PointsOfInterest struct {
			ActionItems []struct {
				SpeakerID flexString `json:"speakerID"`
				Snippet   string     `json:"snippet"`
			} `json:"actionItems"`
		} `json:"pointsOfInterest"`
	} `json:"content"`
	Context []struct {
		System  string `json:"system"`
		Objects []struct {
			ObjectType string     `json:"objectType"`
			ObjectID   flexString `json:"objectId"`
		} `json:"objects"`
	} `json:"context"`
}

// GongCall is one call of a Gong payload: its bytes and the line of the
// payload it starts on, from 1.
type GongCall = jsonpart.Part

// GongCalls returns the calls of a Gong payload: the calls of a
// /v2/calls/extensive response ({"requestId", "records", "calls": [...]}),
// the callData of an automation rule's webhook ({"callData": {...},
// "isTest": ...}), the elements of a JSON array of calls, or a call
// ({"metaData": ...}). The error is for anything else.
func GongCalls(body []byte) ([]GongCall, error) {
	dec := jsonpart.NewDecoder(body)
	var calls []GongCall
	fail := func(err error) ([]GongCall, error) {
		return nil, fmt.Errorf("gong: want a /v2/calls/extensive response, a webhook's {\"callData\": ...} or calls: %w", err)
	}
	switch dec.PeekKind() {
	case '[':
		var err error
		if calls, err = dec.ReadArray(); err != nil {
			return fail(err)
		}
	case '{':
		whole, err := dec.ReadValue()
		if err != nil {
			return fail(err)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(whole, &top); err != nil {
			return fail(err)
		}
		if _, ok := top["metaData"]; ok {
			calls = append(calls, GongCall{Line: 1, Data: bytes.Clone(whole)})
			break
		}
		// Read again to find where callData or calls starts.
		dec.Rewind()
		if _, err := dec.ReadToken(); err != nil {
			return fail(err)
		}
		found := false
		for dec.PeekKind() != '}' {
			tok, err := dec.ReadToken()
			if err != nil {
				return fail(err)
			}
			// The name, read before PeekKind: a later decoder call voids
			// the token.
			name := tok.String()
			switch {
			case name == "calls" && dec.PeekKind() == '[' && !found:
				found = true
				if calls, err = dec.ReadArray(); err != nil {
					return fail(err)
				}
			case name == "callData" && dec.PeekKind() == '{' && !found:
				found = true
				c, err := dec.ReadPart()
				if err != nil {
					return fail(err)
				}
				calls = append(calls, c)
			default:
				if err := dec.SkipValue(); err != nil {
					return fail(err)
				}
			}
		}
		if !found {
			return fail(fmt.Errorf("an object with neither calls, callData nor metaData"))
		}
		if _, err := dec.ReadToken(); err != nil {
			return fail(err)
		}
	default:
		return fail(fmt.Errorf("not a JSON object or array"))
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return fail(fmt.Errorf("more after the end of the JSON value"))
	}
	return calls, nil
}

// Gong maps Gong call data (see GongCalls for the shapes) to tenant's
// call.completed events, one per call and CRM opportunity it is linked to
// (an object of type Opportunity or Deal in the call's context; none: one
// event without an opportunity), at the call's end (metaData.started plus
// duration):
//
//   - participants are the parties, Internal as seller and External as
//     buyer; an Unknown party takes the side of the Internal or External
//     parties that share its e-mail domain, else it is left out (counted
//     as "party:unknown_affiliation"), as is a party with neither e-mail
//     nor name ("party:anonymous");
//   - action items are content.pointsOfInterest.actionItems, owned by the
//     side of the party whose speakerId is the item's speakerID; an item
//     whose speaker is not a party with a side is left out
//     ("action_item:unknown_speaker").
//
// An event's id is "call-" and the call id, and "-" and the opportunity id
// when linked, which a webhook delivered again or an import of the same
// calls repeats. A call without an id or a start is refused. The error is
// for a body none of the shapes.
func Gong(tenant string, body []byte, now time.Time) (Result, error) {
	calls, err := GongCalls(body)
	if err != nil {
		return Result{}, err
	}
	var res Result
	for i, c := range calls {
		gongMap(tenant, c.Data, now, i, &res)
	}
	return res, nil
}

// gongMap maps the call data at index i of a payload into res.
func gongMap(tenant string, data []byte, now time.Time, i int, res *Result) {
	var c gongCall
	if err := json.Unmarshal(data, &c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			res.refuse(i, "call field %s: unexpected %s", te.Field, te.Value)
		} else {
			res.refuse(i, "call: %v", err)
		}
		return
	}
	id := strings.TrimSpace(string(c.MetaData.ID))
	if id == "" {
		res.refuse(i, "call metaData.id: missing")
		return
	}
	started, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(c.MetaData.Started))
	if err != nil {
		res.refuse(i, "call %s metaData.started: %q is not an ISO 8601 time", id, c.MetaData.Started)
		return
	}
	dur := 0.0
	if s := strings.TrimSpace(string(c.MetaData.Duration)); s != "" {
		if dur, err = strconv.ParseFloat(s, 64); err != nil || dur < 0 || dur > 1e7 || math.IsNaN(dur) {
			res.refuse(i, "call %s metaData.duration: %q is not a number of seconds", id, s)
			return
		}
	}
	seconds := int(math.Round(dur))

	// Sides: by affiliation, then an Unknown party by e-mail domain.
	domains := map[string]event.Side{}
	for _, p := range c.Parties {
		if s := gongSide(p.Affiliation); s != "" && domain(p.EmailAddress) != "" {
			if prev, ok := domains[domain(p.EmailAddress)]; ok && prev != s {
				domains[domain(p.EmailAddress)] = "-" // both sides: undecided
			} else {
				domains[domain(p.EmailAddress)] = s
			}
		}
	}
	call := &event.Call{CallID: id, Title: c.MetaData.Title, StartedAt: started.UTC(), DurationSeconds: seconds}
	speakers := map[string]event.Participant{}
	for _, p := range c.Parties {
		side := gongSide(p.Affiliation)
		if side == "" {
			if s := domains[domain(p.EmailAddress)]; s == event.Buyer || s == event.Seller {
				side = s
			}
		}
		email, name := strings.TrimSpace(p.EmailAddress), strings.TrimSpace(p.Name)
		switch {
		case email == "" && name == "":
			res.ignore("party:anonymous")
			continue
		case side == "":
			res.ignore("party:unknown_affiliation")
			continue
		}
		part := event.Participant{Email: email, Name: name, Side: side, Title: strings.TrimSpace(p.Title)}
		call.Participants = append(call.Participants, part)
		if sp := strings.TrimSpace(string(p.SpeakerID)); sp != "" {
			speakers[sp] = part
		}
	}
	for _, a := range c.Content.PointsOfInterest.ActionItems {
		text := strings.TrimSpace(a.Snippet)
		p, ok := speakers[strings.TrimSpace(string(a.SpeakerID))]
		switch {
		case text == "":
			res.ignore("action_item:empty")
		case !ok:
			res.ignore("action_item:unknown_speaker")
		default:
			call.ActionItems = append(call.ActionItems, event.ActionItem{Text: text, OwnerSide: p.Side, OwnerEmail: p.Email})
		}
	}

	var opps []string
	for _, ctx := range c.Context {
		for _, o := range ctx.Objects {
			oid := strings.TrimSpace(string(o.ObjectID))
			switch t := strings.ToLower(o.ObjectType); {
			case t != "opportunity" && t != "deal":
				res.ignore("context:" + o.ObjectType)
			case oid != "" && !slices.Contains(opps, oid):
				opps = append(opps, oid)
			}
		}
	}
	base := event.Event{
		ID: "call-" + id, Tenant: tenant, Source: GongSource, Type: event.CallCompleted,
		OccurredAt: started.UTC().Add(time.Duration(seconds) * time.Second), ReceivedAt: now.UTC(), Payload: call,
	}
	if len(opps) == 0 {
		res.Events = append(res.Events, base)
		return
	}
	for _, o := range opps {
		ev := base
		ev.ID, ev.OpportunityID = base.ID+"-"+o, o
		res.Events = append(res.Events, ev)
	}
}

// gongSide is the side of a Gong affiliation; "" for Unknown.
func gongSide(affiliation string) event.Side {
	switch strings.ToLower(strings.TrimSpace(affiliation)) {
	case "internal":
		return event.Seller
	case "external":
		return event.Buyer
	}
	return ""
}

// domain is the lower-cased domain of an e-mail address, "" if none.
func domain(email string) string {
	_, d, ok := strings.Cut(strings.TrimSpace(email), "@")
	if !ok {
		return ""
	}
	return strings.ToLower(d)
}
