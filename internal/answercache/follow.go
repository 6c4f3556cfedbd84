package answercache

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commitflow/commitflow/internal/bus"
)

// Normalize returns the parameters of v as a key: sorted by name, empty
// values and the names in drop left out, so that the same question asked
// with its parameters in another order is the same key.
func Normalize(v url.Values, drop ...string) string {
	n := url.Values{}
	for name, vals := range v {
		if contains(drop, name) {
			continue
		}
		for _, val := range vals {
			if val != "" {
				n[name] = append(n[name], val)
			}
		}
	}
	return n.Encode()
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// checkEvery is how often Follow looks at the connection: while it is not
// connected, or after it reconnected, change signals may have been lost.
const checkEvery = time.Second

// Follow subscribes to the derived events' subjects on nc (a core NATS
// subscription on cf.derived.>, beside the CF_DERIVED stream that stores
// them) and calls c.Changed with the tenant of each message, until ctx is
// done. While nc is not connected, and once after it reconnected, it calls
// c.ChangedAll every second: the signals of that time may be lost.
func Follow(ctx context.Context, nc *nats.Conn, c *Cache) error {
	sub, err := nc.Subscribe(bus.DerivedPrefix+">", func(m *nats.Msg) {
		if tenant, ok := subjectTenant(m.Subject); ok {
			c.Changed(tenant)
		}
	})
	if err != nil {
		return fmt.Errorf("answer cache: subscribe to %s>: %w", bus.DerivedPrefix, err)
	}
	// A slow consumer drops messages; the cache must then assume anything
	// changed rather than answer from stale data.
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("answer cache: %w", err)
	}
	go func() {
		defer sub.Unsubscribe()
		tick := time.NewTicker(checkEvery)
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

// subjectTenant returns the tenant of a derived event's subject,
// cf.derived.<tenant>.<type>.
func subjectTenant(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, bus.DerivedPrefix)
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", false
	}
	return rest[:i], true
}
