package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
)

// Leases gives a process exclusive, expiring ownership of partitions, in
// the bucket bus.DeriveLeaseBucket.
//
// Every process announces itself with a membership key; each partition is
// owned by whoever holds its "partition.<p>" lease. Keys expire after the
// bucket's TTL unless renewed, so the partitions of a process that died are
// claimed by the others, and a process that joins makes the others give up
// their surplus: each aims at ceil(partitions / members).
type Leases struct {
	ls         *bus.Leases
	partitions int
	owned      map[int]*bus.Lease
}

// NewLeases opens (creating if needed) the derive lease bucket; cfg's
// Bucket and Description are set here.
func NewLeases(ctx context.Context, js jetstream.JetStream, partitions int, cfg bus.LeaseConfig) (*Leases, error) {
	cfg.Bucket = bus.DeriveLeaseBucket
	cfg.Description = "commitflow partition leases"
	ls, err := bus.OpenLeases(ctx, js, cfg)
	if err != nil {
		return nil, err
	}
	return &Leases{ls: ls, partitions: partitions, owned: map[int]*bus.Lease{}}, nil
}

func partitionKey(p int) string { return "partition." + strconv.Itoa(p) }

// Owned reports whether this process holds partition p's lease.
func (l *Leases) Owned(p int) bool { _, ok := l.owned[p]; return ok }

// Heartbeat renews this process's leases and announces it. A lease whose
// renewal cannot reach NATS stays owned until its deadline (Heartbeat waits
// and retries until then); it returns the partitions whose lease was lost:
// taken by another process, or not renewed in time.
func (l *Leases) Heartbeat(ctx context.Context) (lost []int, err error) {
	for p, lease := range l.owned {
		if err := lease.Renew(ctx); errors.Is(err, bus.ErrLeaseLost) {
			delete(l.owned, p)
			lost = append(lost, p)
		} else if err != nil {
			return lost, err // ctx is done
		}
	}
	if err := l.ls.Announce(ctx); err != nil {
		return lost, fmt.Errorf("lease heartbeat: %w", err)
	}
	return lost, nil
}

// Share is how many partitions this process should hold: the partition
// count divided by the live members, rounded up.
func (l *Leases) Share(ctx context.Context) (int, error) {
	members, err := l.ls.Members(ctx)
	if err != nil {
		return 0, err
	}
	members = max(members, 1)
	return (l.partitions + members - 1) / members, nil
}

// Claim tries to take free partitions, and partitions whose key is still
// under this process's name, until this process holds want of them, and
// returns the ones it gained.
func (l *Leases) Claim(ctx context.Context, want int) (gained []int, err error) {
	// Start at an offset derived from the member id so that processes
	// starting together do not all race for partition 0 first.
	start := int(fnv32(l.ls.Member()) % uint32(l.partitions))
	for i := 0; i < l.partitions && len(l.owned) < want; i++ {
		p := (start + i) % l.partitions
		if l.Owned(p) {
			continue
		}
		lease := l.ls.Lease(partitionKey(p))
		if _, err := lease.Acquire(ctx); err != nil {
			return gained, fmt.Errorf("claim partition %d: %w", p, err)
		}
		if lease.Held() {
			l.owned[p] = lease
			gained = append(gained, p)
		}
	}
	return gained, nil
}

// Surplus returns partitions to give up so that at most want are held.
func (l *Leases) Surplus(want int) []int {
	var out []int
	for p := range l.owned {
		if len(l.owned)-len(out) <= want {
			break
		}
		out = append(out, p)
	}
	return out
}

// Release gives up partition p. Call it only after p's worker has stopped.
func (l *Leases) Release(ctx context.Context, p int) error {
	lease, ok := l.owned[p]
	if !ok {
		return nil
	}
	delete(l.owned, p)
	return lease.Release(ctx)
}

// Leave releases every lease and the membership.
func (l *Leases) Leave(ctx context.Context) {
	for p := range l.owned {
		_ = l.Release(ctx, p)
	}
	_ = l.ls.Withdraw(ctx)
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
