package ingest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// openStore opens and migrates the store at dsn.
func openStore(t testing.TB, dsn string) *store.Store {
	t.Helper()
	return storetest.OpenDSN(t, dsn, store.Options{})
}

// genEvents returns n valid, distinct events over two tenants and a few
// sources and types, reproducible from seed.
func genEvents(n int, seed uint64) []event.Event {
	r := rand.New(rand.NewPCG(seed, 1))
	base := time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)
	evs := make([]event.Event, n)
	for i := range evs {
		tenant := []string{"acme", "globex"}[i%2]
		opp := fmt.Sprintf("006%05d", r.IntN(max(n/20, 1)))
		at := base.Add(time.Duration(r.IntN(365*24)) * time.Hour)
		ev := event.Event{
			ID: fmt.Sprintf("e%07d", i), Tenant: tenant, OccurredAt: at,
			ReceivedAt: at.Add(time.Minute), OpportunityID: opp,
		}
		switch i % 5 {
		case 0:
			ev.Source, ev.Type = "salesforce", event.OpportunityCreated
			ev.Payload = &event.Opportunity{Name: "Deal " + opp, Amount: float64(r.IntN(100000)), Stage: "Discovery", OwnerID: "rep-1"}
		case 1:
			ev.Source, ev.Type = "salesforce", event.StageChanged
			ev.Payload = &event.StageChange{From: "Discovery", To: "Proposal", Probability: 0.4}
		case 2:
			ev.Source, ev.Type = "hubspot", event.ContactAdded
			ev.Payload = &event.Contact{ContactID: fmt.Sprint("c", i), Name: "Pat Buyer", Role: "Champion", Side: event.Buyer}
		case 3:
			ev.Source, ev.Type = "gong", event.CallCompleted
			due := at.Add(72 * time.Hour)
			ev.Payload = &event.Call{
				CallID: fmt.Sprint("call-", i), Title: "Discovery", StartedAt: at, DurationSeconds: 1800,
				Participants: []event.Participant{
					{Email: "pat@buyer.example", Side: event.Buyer},
					{Email: "sam@seller.example", Side: event.Seller},
				},
				ActionItems: []event.ActionItem{{Text: "Share usage data", OwnerSide: event.Buyer, DueAt: &due}},
			}
		case 4:
			ev.Source, ev.Type = "salesforce", event.ActivityLogged
			if i%10 == 4 {
				ev.OpportunityID = "" // unlinked activity
			}
			ev.Payload = &event.Activity{Kind: event.ActivityMeeting, Subject: "Intro", Status: "completed"}
		}
		evs[i] = ev
	}
	return evs
}

// currentInfo returns a fresh look at the current ingest generation. A
// worker taking the lease creates the next generation and deletes the old
// one, which can vanish between listing and looking: then it looks again.
func currentInfo(t testing.TB, js jetstream.JetStream) *jetstream.ConsumerInfo {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := bus.CurrentIngest(ctx, js)
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(ctx); err == nil {
				return info
			}
		}
		if !errors.Is(err, jetstream.ErrConsumerNotFound) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// consumerState returns the ingest consumer's pending and ack-pending
// counts.
func consumerState(t testing.TB, js jetstream.JetStream) (pending, ackPending uint64) {
	t.Helper()
	info := currentInfo(t, js)
	return info.NumPending, uint64(info.NumAckPending)
}

// waitDrained waits until the current ingest consumer has acknowledged
// the whole stream: nothing pending or unacknowledged, and its ack floor at
// the stream's last sequence. (Pending counts alone can read zero on a
// generation that has not been given anything yet.)
func waitDrained(t testing.TB, js jetstream.JetStream, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(timeout)
	for {
		s, err := js.Stream(ctx, bus.EventsStream)
		if err != nil {
			t.Fatal(err)
		}
		last := s.CachedInfo().State.LastSeq
		info := currentInfo(t, js)
		if info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= last {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest consumer %s not drained after %v: %d pending, %d ack pending, ack floor %d, delivered up to %d, "+
				"start seq %d; stream last seq %d", info.Name, timeout, info.NumPending, info.NumAckPending,
				info.AckFloor.Stream, info.Delivered.Stream, info.Config.OptStartSeq, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runWorker runs w until the returned stop function is called; stop
// cancels it and returns Run's result.
func runWorker(t testing.TB, w *Worker) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	var result error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(15 * time.Second):
				t.Fatal("worker did not stop within 15s of cancellation")
			}
		}
		return result
	}
	t.Cleanup(func() { stop() })
	return stop
}

// drain runs a worker of cfg on js and st until the stream is drained
// (waitDrained, within timeout) and stops it.
func drain(t testing.TB, js jetstream.JetStream, st *store.Store, cfg Config, reg prometheus.Registerer, timeout time.Duration) {
	t.Helper()
	w, err := New(js, st, cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runWorker(t, w)
	waitDrained(t, js, timeout)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
