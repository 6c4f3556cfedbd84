package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/promtest"
)

// TestPartitionsOwnedGauge: commitflow_derive_partitions_owned is the
// number of partitions a deriver holds leases on and derives: all of them
// while it runs alone, half once a second deriver shares them, 0 after it
// stops.
func TestPartitionsOwnedGauge(t *testing.T) {
	const partitions = 4
	e := newEnv(t, partitions)
	owned := func(reg *prometheus.Registry) float64 {
		return promtest.Sum(t, reg, "commitflow_derive_partitions_owned")
	}
	waitOwned := func(reg *prometheus.Registry, want float64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for owned(reg) != want {
			if time.Now().After(deadline) {
				t.Fatalf("partitions owned %v after 20s, want %v", owned(reg), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	start := func(member string) (*prometheus.Registry, context.CancelFunc, chan error) {
		_, js := bustest.Connect(t, e.url)
		reg := prometheus.NewRegistry()
		d, err := NewDeriver(t.Context(), js, e.st, ladder.Default(), Config{LeaseTTL: time.Second, Member: member, Sweep: -1}, reg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		return reg, cancel, done
	}

	regA, stopA, doneA := start("a")
	waitOwned(regA, partitions)
	regB, stopB, doneB := start("b")
	waitOwned(regB, partitions/2)
	waitOwned(regA, partitions/2)
	stopA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	if got := owned(regA); got != 0 {
		t.Errorf("partitions owned after stop: %v, want 0", got)
	}
	waitOwned(regB, partitions)
	stopB()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
}
