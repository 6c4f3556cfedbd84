package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseBucket is the JetStream key-value bucket that divides the event
// stream's partitions among live commitflow processes.
const LeaseBucket = "CF_LEASES"

// Leases gives a process exclusive, expiring ownership of partitions.
//
// Every process heartbeats a "member.<id>" key; each partition is owned by
// whoever holds its "partition.<p>" key. Keys expire after the bucket's TTL
// unless renewed, so the partitions of a process that died are claimed by
// the others, and a process that joins makes the others give up their
// surplus: each aims at ceil(partitions / members).
type Leases struct {
	kv         jetstream.KeyValue
	member     string
	partitions int
	owned      map[int]uint64 // partition -> revision of our lease
}

// NewLeases opens (creating if needed) the lease bucket with the given TTL
// and replicas.
func NewLeases(ctx context.Context, js jetstream.JetStream, member string, partitions int, ttl time.Duration, replicas int) (*Leases, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "commitflow partition leases",
		TTL:         ttl,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket: %w", err)
	}
	return &Leases{kv: kv, member: member, partitions: partitions, owned: map[int]uint64{}}, nil
}

func partitionKey(p int) string { return "partition." + strconv.Itoa(p) }

// Owned reports whether this process holds partition p's lease.
func (l *Leases) Owned(p int) bool { _, ok := l.owned[p]; return ok }

// Heartbeat announces this process and renews its leases. It returns the
// partitions whose lease was lost (taken over after expiry).
func (l *Leases) Heartbeat(ctx context.Context) (lost []int, err error) {
	if _, err := l.kv.Put(ctx, "member."+l.member, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return nil, fmt.Errorf("lease heartbeat: %w", err)
	}
	for p, rev := range l.owned {
		next, err := l.kv.Update(ctx, partitionKey(p), []byte(l.member), rev)
		if err != nil {
			delete(l.owned, p)
			lost = append(lost, p)
			continue
		}
		l.owned[p] = next
	}
	return lost, nil
}

// Share is how many partitions this process should hold: the partition
// count divided by the live members, rounded up.
func (l *Leases) Share(ctx context.Context) (int, error) {
	keys, err := l.kv.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("lease members: %w", err)
	}
	members := 0
	for k := range keys.Keys() {
		if strings.HasPrefix(k, "member.") {
			members++
		}
	}
	if members == 0 {
		members = 1
	}
	return (l.partitions + members - 1) / members, nil
}

// Claim tries to take free partitions until this process holds want of them,
// and returns the ones it gained.
func (l *Leases) Claim(ctx context.Context, want int) (gained []int, err error) {
	// Start at an offset derived from the member id so that processes
	// starting together do not all race for partition 0 first.
	start := int(fnv32(l.member) % uint32(l.partitions))
	for i := 0; i < l.partitions && len(l.owned) < want; i++ {
		p := (start + i) % l.partitions
		if l.Owned(p) {
			continue
		}
		rev, err := l.kv.Create(ctx, partitionKey(p), []byte(l.member))
		if errors.Is(err, jetstream.ErrKeyExists) {
			continue
		}
		if err != nil {
			return gained, fmt.Errorf("claim partition %d: %w", p, err)
		}
		l.owned[p] = rev
		gained = append(gained, p)
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
	rev, ok := l.owned[p]
	if !ok {
		return nil
	}
	delete(l.owned, p)
	if err := l.kv.Delete(ctx, partitionKey(p), jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("release partition %d: %w", p, err)
	}
	return nil
}

// Leave releases every lease and the membership.
func (l *Leases) Leave(ctx context.Context) {
	for p := range l.owned {
		_ = l.Release(ctx, p)
	}
	_ = l.kv.Delete(ctx, "member."+l.member)
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
