package backlog

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/event"
)

// start returns JetStream on an embedded server with commitflow's streams
// declared (4 partitions).
func start(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := bustest.Start(t, bus.Options{Partitions: 4})
	return js
}

// gauges returns every sample reg exports, by name and labels, e.g.
// commitflow_dlq_messages{tenant=acme}.
func gauges(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf("{%s=%s}", l.GetName(), l.GetValue())
			}
			out[key] = m.GetGauge().GetValue()
		}
	}
	return out
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
	check := func(step string, want map[string]float64) {
		t.Helper()
		if err := s.Sample(ctx); err != nil {
			t.Fatal(err)
		}
		if got := gauges(t, reg); !maps.Equal(got, want) {
			t.Errorf("%s: %v, want %v", step, got, want)
		}
	}
	check("empty", map[string]float64{"commitflow_ingest_pending": 0, "commitflow_derive_pending": 0})

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
	check("10 events", map[string]float64{"commitflow_ingest_pending": 10, "commitflow_derive_pending": 10})

	deadLetter(t, js, "cf.events.acme.salesforce.stage_changed.1", 1)
	deadLetter(t, js, "cf.events.acme.hubspot.deal_created.2", 2)
	deadLetter(t, js, "cf.events.beta.salesforce.stage_changed.0", 3)
	deadLetter(t, js, "cf.events.", 4)
	check("dead letters", map[string]float64{"commitflow_ingest_pending": 10, "commitflow_derive_pending": 10,
		"commitflow_dlq_messages{tenant=acme}": 2, "commitflow_dlq_messages{tenant=beta}": 1, "commitflow_dlq_messages{tenant=}": 1})

	// Too many subjects to split: one series.
	s.cfg.MaxDLQSubjects = 3
	check("unsplit", map[string]float64{"commitflow_ingest_pending": 10, "commitflow_derive_pending": 10,
		"commitflow_dlq_messages{tenant=}": 4})
	s.cfg.MaxDLQSubjects = 10000

	// beta's letter replayed (removed from CF_DLQ): its series goes.
	dlq, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := dlq.Purge(ctx, jetstream.WithPurgeSubject("cf.dlq.beta.>")); err != nil {
		t.Fatal(err)
	}
	check("beta replayed", map[string]float64{"commitflow_ingest_pending": 10, "commitflow_derive_pending": 10,
		"commitflow_dlq_messages{tenant=acme}": 2, "commitflow_dlq_messages{tenant=}": 1})
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
	for gauges(t, reg)["commitflow_dlq_messages{tenant=acme}"] != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("no sample after 5s: %v", gauges(t, reg))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
