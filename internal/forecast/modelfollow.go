package forecast

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
)

// Follow subscribes to the derived events' subjects on nc (a core NATS
// subscription on cf.derived.>, beside the CF_DERIVED stream that stores
// them) and calls c.Changed with each message's tenant, kind and dates,
// until ctx is done. While nc is not connected, once after it reconnected,
// and after the subscription dropped messages, it calls c.ChangedAll every
// second: the signals of that time may be lost.
func (c *ModelCache) Follow(ctx context.Context, nc *nats.Conn) error {
	return c.models.Follow(ctx, nc, func(tenant, typeToken string, body []byte) {
		kind := derivedKinds[typeToken]
		occurred, created, ok := derivedDates(kind, body)
		if !ok {
			kind = derive.DealClosed // unreadable: assume the worst
		}
		c.Changed(tenant, kind, occurred, created)
	})
}

// derivedKinds maps the subject tokens of the derived kinds that matter
// by kind (see ModelCache.Changed) to their kinds; other kinds matter only
// by date (kind "").
var derivedKinds = map[string]derive.Kind{
	bus.TypeToken(event.Type(derive.DealClosed)):   derive.DealClosed,
	bus.TypeToken(event.Type(derive.DealReopened)): derive.DealReopened,
	bus.TypeToken(event.Type(derive.DealCreated)):  derive.DealCreated,
}

// occurredField starts the date in a derived event's JSON body
// (pipeline.derivedMessage), found without decoding the rest: every
// derived event passes through here.
var occurredField = []byte(`"occurred_at":"`)

// derivedDates returns a derived event's date and, for a deal.created,
// the CRM's creation time its detail names (zero if none).
func derivedDates(kind derive.Kind, body []byte) (occurred, created time.Time, ok bool) {
	switch kind {
	case derive.DealClosed, derive.DealReopened:
		return time.Time{}, time.Time{}, true // the kind says enough
	case derive.DealCreated:
		var m struct {
			OccurredAt time.Time `json:"occurred_at"`
			Detail     string    `json:"detail"`
		}
		if err := json.Unmarshal(body, &m); err != nil {
			return time.Time{}, time.Time{}, false
		}
		var d struct {
			CreatedAt time.Time `json:"created_at"`
		}
		if m.Detail != "" {
			if err := json.Unmarshal([]byte(m.Detail), &d); err != nil {
				return time.Time{}, time.Time{}, false
			}
		}
		return m.OccurredAt, d.CreatedAt, true
	}
	i := bytes.Index(body, occurredField)
	if i < 0 {
		return time.Time{}, time.Time{}, false
	}
	s := body[i+len(occurredField):]
	j := bytes.IndexByte(s, '"')
	if j < 0 {
		return time.Time{}, time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(s[:j]))
	if err != nil {
		return time.Time{}, time.Time{}, false
	}
	return t, time.Time{}, true
}
