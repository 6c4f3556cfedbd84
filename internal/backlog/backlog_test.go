package backlog

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/promtest"
)

// start returns JetStream on an embedded server with commitflow's streams
// declared (4 partitions).
func start(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := bustest.Start(t, bus.Options{Partitions: 4})
	return js
}

func deadLetter(t *testing.T, js jetstream.JetStream, subject string, seq uint64) {
	t.Helper()
	if _, err := js.PublishMsg(t.Context(), bus.DeadLetter(subject, seq, []byte("{}"), "test")); err != nil {
		t.Fatal(err)
	}
}

// TestSample: published events raise the ingest and derive gauges by as
// many (nothing consumes them), dead letters raise the DLQ gauge of their
// tenant, and a tenant whose letters are gone loses its series.
func TestSample(t *testing.T) {
	js := start(t)
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	s, err := New(js, Config{}, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// check samples, then wants both pending gauges at pending and a
	// commitflow_dlq_messages series for each tenant of dlq, no other.
	// nats-server counts a consumer's pending messages apart from storing
	// them: on a busy machine the count can lag the publishes it has
	// acknowledged (3 of 10 seen), so it samples again until the gauges
	// say pending, for up to 5 s.
	names := []string{"commitflow_ingest_pending", "commitflow_derive_pending"}
	check := func(step string, pending float64, dlq map[string]float64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if err := s.Sample(ctx); err != nil {
				t.Fatal(err)
			}
			if promtest.Sum(t, reg, names[0]) == pending && promtest.Sum(t, reg, names[1]) == pending || time.Now().After(deadline) {
				break
			}
		}
		for _, name := range names {
			if got := promtest.Sum(t, reg, name); got != pending {
				t.Errorf("%s: %s = %v, want %v", step, name, got, pending)
			}
		}
		if n, err := testutil.GatherAndCount(reg, "commitflow_dlq_messages"); err != nil || n != len(dlq) {
			t.Errorf("%s: %d commitflow_dlq_messages series (%v), want %d", step, n, err, len(dlq))
		}
		for tenant, want := range dlq {
			if got := promtest.Sum(t, reg, "commitflow_dlq_messages", "tenant", tenant); got != want {
				t.Errorf("%s: commitflow_dlq_messages{tenant=%q} = %v, want %v", step, tenant, got, want)
			}
		}
	}
	check("empty", 0, nil)

	// The ingest worker's consumer, as the lease holder creates it.
	if _, err := bus.RotateIngest(ctx, js); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, 4)
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 10 {
		ev := event.Event{ID: fmt.Sprintf("ev-%d", i), Tenant: "acme", Source: "salesforce", Type: event.StageChanged,
			OccurredAt: at, ReceivedAt: at, OpportunityID: fmt.Sprintf("006%04d", i),
			Payload: &event.StageChange{From: "Discovery", To: "Proposal"}}
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	check("10 events", 10, nil)

	deadLetter(t, js, "cf.events.acme.salesforce.stage_changed.1", 1)
	deadLetter(t, js, "cf.events.acme.hubspot.deal_created.2", 2)
	deadLetter(t, js, "cf.events.beta.salesforce.stage_changed.0", 3)
	deadLetter(t, js, "cf.events.", 4)
	check("dead letters", 10, map[string]float64{"acme": 2, "beta": 1, "": 1})

	// Too many subjects to split: one series.
	s.cfg.MaxDLQSubjects = 3
	check("unsplit", 10, map[string]float64{"": 4})
	s.cfg.MaxDLQSubjects = 10000

	// beta's letter replayed (removed from CF_DLQ): its series goes.
	dlq, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := dlq.Purge(ctx, jetstream.WithPurgeSubject("cf.dlq.beta.>")); err != nil {
		t.Fatal(err)
	}
	check("beta replayed", 10, map[string]float64{"acme": 2, "": 1})
}

// TestRun samples at once and stops with its context.
func TestRun(t *testing.T) {
	js := start(t)
	deadLetter(t, js, "cf.events.acme.salesforce.stage_changed.1", 1)
	reg := prometheus.NewRegistry()
	s, err := New(js, Config{Every: time.Hour}, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for promtest.Sum(t, reg, "commitflow_dlq_messages", "tenant", "acme") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("no commitflow_dlq_messages{tenant=acme} 1 after 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
