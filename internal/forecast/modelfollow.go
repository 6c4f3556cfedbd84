package forecast

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
)

// followCheckEvery is how often Follow looks at the connection: while it
// is not connected, or after it reconnected or dropped messages, change
// signals may have been lost.
const followCheckEvery = time.Second

// Follow subscribes to the derived events' subjects on nc (a core NATS
// subscription on cf.derived.>, beside the CF_DERIVED stream that stores
// them) and calls c.Changed with each message's tenant, kind and dates,
// until ctx is done. While nc is not connected, once after it reconnected,
// and after the subscription dropped messages, it calls c.ChangedAll every
// second: the signals of that time may be lost.
func (c *ModelCache) Follow(ctx context.Context, nc *nats.Conn) error {
	sub, err := nc.Subscribe(bus.DerivedPrefix+">", func(m *nats.Msg) {
		tenant, kind, ok := derivedSubject(m.Subject)
		if !ok {
			return
		}
		occurred, created, ok := derivedDates(kind, m.Data)
		if !ok {
			c.Changed(tenant, derive.DealClosed, occurred, created) // unreadable: assume the worst
			return
		}
		c.Changed(tenant, kind, occurred, created)
	})
	if err != nil {
		return fmt.Errorf("forecast models: subscribe to %s>: %w", bus.DerivedPrefix, err)
	}
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("forecast models: %w", err)
	}
	go func() {
		defer sub.Unsubscribe()
		tick := time.NewTicker(followCheckEvery)
		defer tick.Stop()
		reconnects := nc.Stats().Reconnects
		var dropped int
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			r := nc.Stats().Reconnects
			d, _ := sub.Dropped()
			if !nc.IsConnected() || r != reconnects || d != dropped {
				c.ChangedAll()
			}
			reconnects, dropped = r, d
		}
	}()
	return nil
}

// derivedKinds maps the subject tokens of the derived kinds that matter
// by kind (see ModelCache.Changed) to their kinds; other kinds matter only
// by date.
var derivedKinds = map[string]derive.Kind{
	bus.TypeToken(event.Type(derive.DealClosed)):   derive.DealClosed,
	bus.TypeToken(event.Type(derive.DealReopened)): derive.DealReopened,
	bus.TypeToken(event.Type(derive.DealCreated)):  derive.DealCreated,
}

// derivedSubject returns the tenant and the kind (when it matters, else
// "") of a derived event's subject, cf.derived.<tenant>.<type>.
func derivedSubject(subject string) (tenant string, kind derive.Kind, ok bool) {
	rest, ok := strings.CutPrefix(subject, bus.DerivedPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], derivedKinds[rest[i+1:]], true
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
