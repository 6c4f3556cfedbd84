package answercache

import (
	"context"
	"net/url"

	"github.com/nats-io/nats.go"
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

// Follow subscribes to the derived events' subjects on nc (a core NATS
// subscription on cf.derived.>, beside the CF_DERIVED stream that stores
// them) and calls c.Changed with the tenant of each message, until ctx is
// done. While nc is not connected, once after it reconnected, and after
// the subscription dropped messages, it calls c.ChangedAll every second:
// the signals of that time may be lost.
func Follow(ctx context.Context, nc *nats.Conn, c *Cache) error {
	return c.answers.Follow(ctx, nc, func(tenant, _ string, _ []byte) { c.Changed(tenant) })
}
