package tenantcache

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/commitflow/commitflow/internal/bus"
)

// checkEvery is how often Follow looks at the connection: while it is not
// connected, or after it reconnected or dropped messages, change signals
// may have been lost.
const checkEvery = time.Second

// Follow subscribes to the derived events' subjects on nc (a core NATS
// subscription on cf.derived.>, beside the CF_DERIVED stream that stores
// them) and calls signal with the tenant, the type token and the body of
// each message, until ctx is done; signal decides what changed and calls
// c.Changed. While nc is not connected, once after it reconnected, and
// after the subscription dropped messages, Follow calls c.ChangedAll every
// second: the signals of that time may be lost.
func (c *Cache[K, V]) Follow(ctx context.Context, nc *nats.Conn, signal func(tenant, typeToken string, body []byte)) error {
	sub, err := nc.Subscribe(bus.DerivedPrefix+">", func(m *nats.Msg) {
		if tenant, token, ok := DerivedSubject(m.Subject); ok {
			signal(tenant, token, m.Data)
		}
	})
	if err != nil {
		return fmt.Errorf("%s: subscribe to %s>: %w", c.opt.Name, bus.DerivedPrefix, err)
	}
	// A slow consumer drops messages; the cache must then assume anything
	// changed rather than answer from stale data.
	if err := sub.SetPendingLimits(1<<20, 256<<20); err != nil {
		sub.Unsubscribe()
		return fmt.Errorf("%s: %w", c.opt.Name, err)
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

// DerivedSubject returns the tenant and the type token (bus.TypeToken) of
// a derived event's subject, cf.derived.<tenant>.<type>.
func DerivedSubject(subject string) (tenant, typeToken string, ok bool) {
	rest, ok := strings.CutPrefix(subject, bus.DerivedPrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}
