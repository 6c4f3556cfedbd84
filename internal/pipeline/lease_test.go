package pipeline

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
)

// TestLeasesClaim: two processes share the partitions; a partition whose
// key is still under a process's own name (a NATS restart or leader change
// it survived) is claimed back at once, not after it expires; a partition
// another process holds is not claimed.
func TestLeasesClaim(t *testing.T) {
	ctx := t.Context()
	emb := bustest.Server(t)
	open := func(member string) *Leases {
		_, js := bustest.Connect(t, emb.ClientURL())
		l, err := NewLeases(ctx, js, 4, bus.LeaseConfig{Member: member, TTL: time.Minute, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		return l
	}
	_, js := bustest.Connect(t, emb.ClientURL())
	a := open("a")
	kv, err := js.KeyValue(ctx, bus.DeriveLeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	for p, holder := range map[int]string{0: "a", 1: "b"} {
		if _, err := kv.Create(ctx, partitionKey(p), []byte(holder)); err != nil {
			t.Fatal(err)
		}
	}
	b := open("b")
	share, err := a.Share(ctx)
	if err != nil || share != 2 {
		t.Fatalf("Share = %d, %v; want 2", share, err)
	}
	gained, err := a.Claim(ctx, share)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(gained)
	if !a.Owned(0) || a.Owned(1) || len(gained) != 2 {
		t.Fatalf("a claimed %v; want partition 0 (its own key) and one free one, not 1", gained)
	}
	if gained, err := b.Claim(ctx, share); err != nil || len(gained) != 2 || !b.Owned(1) {
		t.Fatalf("b claimed %v, %v; want partition 1 (its own key) and the last free one", gained, err)
	}
	if lost, err := a.Heartbeat(ctx); err != nil || len(lost) != 0 {
		t.Fatalf("Heartbeat = %v, %v", lost, err)
	}
	// b's key of partition 1 is taken from it: its next heartbeat loses it.
	if err := kv.Delete(ctx, partitionKey(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, partitionKey(1), []byte("c")); err != nil {
		t.Fatal(err)
	}
	if lost, err := b.Heartbeat(ctx); err != nil || !slices.Equal(lost, []int{1}) || b.Owned(1) {
		t.Fatalf("Heartbeat after partition 1 was taken = %v, %v", lost, err)
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	a.Leave(lctx)
	if _, err := kv.Get(ctx, partitionKey(0)); err != jetstream.ErrKeyNotFound {
		t.Fatalf("partition 0 after a left: %v, want not found", err)
	}
	if n, err := b.Share(ctx); err != nil || n != 4 {
		t.Fatalf("b's share after a left = %d, %v; want 4", n, err)
	}
}
