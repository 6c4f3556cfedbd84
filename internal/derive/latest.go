package derive

import (
	"cmp"
	"encoding/json"
	"slices"

	"github.com/commitflow/commitflow/internal/event"
)

// Copy is one stored or delivered copy of an input event: the event and the
// JetStream stream sequence of the message that carried it.
type Copy struct {
	Event event.Event
	Seq   uint64
}

// Conflict is a conflicting duplicate: two copies of one event (the same
// source and id) whose content differs. Winner is the copy with the higher
// stream sequence; Fields names what differs, sorted: "type",
// "occurred_at", "opportunity_id" and the payload's JSON field names
// (received_at and the envelope version are not content).
type Conflict struct {
	Winner, Loser Copy
	Fields        []string
}

// Latest returns one copy per (source, id) of copies, ordered by (source,
// id): the one with the highest stream sequence. This is the rule of the
// events table (a ReplacingMergeTree on stream_seq), of every reader of it,
// and of derivation: a later copy under the same source id is a correction,
// as a CRM upsert is. It also returns the conflicts: every other copy whose
// content differs from the winner's. Copies with the same sequence are one
// message (a redelivery) and identical copies (a republish) are no
// conflict. Latest reorders copies and returns a prefix of it.
func Latest(copies []Copy) ([]Copy, []Conflict) {
	slices.SortFunc(copies, func(a, b Copy) int {
		if c := cmp.Compare(a.Event.Source, b.Event.Source); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Event.ID, b.Event.ID); c != 0 {
			return c
		}
		return cmp.Compare(b.Seq, a.Seq) // highest first
	})
	var (
		out       = copies[:0]
		conflicts []Conflict
	)
	var prev uint64 // the sequence of the copy before c
	for _, c := range copies {
		if n := len(out); n > 0 && out[n-1].Event.Source == c.Event.Source && out[n-1].Event.ID == c.Event.ID {
			w := out[n-1]
			if c.Seq != prev {
				if fields := Differences(w.Event, c.Event); len(fields) > 0 {
					conflicts = append(conflicts, Conflict{Winner: w, Loser: c, Fields: fields})
				}
			}
			prev = c.Seq
			continue
		}
		out = append(out, c)
		prev = c.Seq
	}
	return out, conflicts
}

// Differences names the content fields in which a and b, two copies of one
// event, differ (see Conflict.Fields); none if they are the same event.
func Differences(a, b event.Event) []string {
	var out []string
	if a.Type != b.Type {
		out = append(out, "type")
	}
	if !a.OccurredAt.Equal(b.OccurredAt) {
		out = append(out, "occurred_at")
	}
	if a.OpportunityID != b.OpportunityID {
		out = append(out, "opportunity_id")
	}
	pa, pb := payloadFields(a.Payload), payloadFields(b.Payload)
	for k, va := range pa {
		if vb, ok := pb[k]; !ok || string(va) != string(vb) {
			out = append(out, k)
		}
	}
	for k := range pb {
		if _, ok := pa[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// payloadFields returns the top-level JSON fields of p as encoded, or a
// single field "payload" holding the whole encoding if that is not an
// object.
func payloadFields(p event.Payload) map[string]json.RawMessage {
	b, err := json.Marshal(p)
	if err != nil {
		return map[string]json.RawMessage{"payload": json.RawMessage(err.Error())}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return map[string]json.RawMessage{"payload": b}
	}
	return fields
}
