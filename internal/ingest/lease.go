package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LeaseBucket is the JetStream key-value bucket holding the ingest lease:
// which process fetches from the ingest consumer.
const LeaseBucket = "CF_INGEST_LEASE"

const leaseKey = "holder"

// lease is exclusive, expiring ownership of the ingest consumer. The key
// expires after the bucket's TTL unless renewed, so the lease of a process
// that died passes to a standby process.
type lease struct {
	kv     jetstream.KeyValue
	member string
	rev    uint64 // of our key; 0 when not held
}

// openLease opens (creating if needed) the lease bucket with the given TTL
// and replicas.
func openLease(ctx context.Context, js jetstream.JetStream, member string, ttl time.Duration, replicas int) (*lease, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      LeaseBucket,
		Description: "commitflow ingest lease: the one process that fetches from the ingest consumer",
		TTL:         ttl,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("ingest lease bucket: %w", err)
	}
	return &lease{kv: kv, member: member}, nil
}

// acquire takes the lease if it is free and reports whether it holds it.
func (l *lease) acquire(ctx context.Context) (bool, error) {
	rev, err := l.kv.Create(ctx, leaseKey, []byte(l.member))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ingest lease: %w", err)
	}
	l.rev = rev
	return true, nil
}

// renew extends the lease; an error means it is lost (or unknown, which
// must be treated the same).
func (l *lease) renew(ctx context.Context) error {
	rev, err := l.kv.Update(ctx, leaseKey, []byte(l.member), l.rev)
	if err != nil {
		l.rev = 0
		return fmt.Errorf("ingest lease: %w", err)
	}
	l.rev = rev
	return nil
}

// release gives the lease up if it is held.
func (l *lease) release(ctx context.Context) {
	if l.rev == 0 {
		return
	}
	_ = l.kv.Delete(ctx, leaseKey, jetstream.LastRevision(l.rev))
	l.rev = 0
}
