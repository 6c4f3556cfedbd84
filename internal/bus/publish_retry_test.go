package bus

import (
	"context"
	"log/slog"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/event"
)

// TestPublishSurvivesServerLoss stops the NATS server during or before a
// publish. When it stays down, the call returns an error within its retry
// bound; when it comes back within it (same port, same store), the call
// succeeds and every event is stored exactly once.
func TestPublishSurvivesServerLoss(t *testing.T) {
	tests := []struct {
		name   string
		events int
		single bool          // Publish one by one, not PublishBatch
		midway bool          // stop the server once part of the batch is stored
		outage time.Duration // 0: the server stays down
	}{
		{name: "batch, down midway, back", events: 20000, midway: true, outage: 2 * time.Second},
		{name: "batch, down before, back", events: 5000, outage: 2 * time.Second},
		{name: "single, down before, back", events: 20, single: true, outage: 2 * time.Second},
		{name: "batch, down midway, stays down", events: 20000, midway: true},
		{name: "batch, down before, stays down", events: 5000},
		{name: "single, down before, stays down", events: 1, single: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			srv, err := StartEmbedded(ctx, dir, "127.0.0.1:-1", nil)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex // guards running, which the restart sets
			running := srv
			t.Cleanup(func() {
				mu.Lock()
				defer mu.Unlock()
				if running != nil {
					running.Shutdown()
				}
			})
			u, err := url.Parse(srv.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			nc, js, err := Connect(ctx, srv.ClientURL(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			if err := Declare(ctx, js, Options{Partitions: 4}); err != nil {
				t.Fatal(err)
			}
			opts := PublishOptions{AttemptTimeout: time.Second, RetryFor: 3 * time.Second, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
			if tt.outage > 0 {
				opts.RetryFor = 30 * time.Second
			}
			pub := NewPublisher(js, 4).WithOptions(opts)
			evs := make([]event.Event, tt.events)
			for i := range evs {
				evs[i] = testEvent(i)
			}

			var stoppedAt time.Time
			stop := func() {
				stoppedAt = time.Now()
				mu.Lock()
				running = nil
				mu.Unlock()
				srv.Shutdown()
				if tt.outage == 0 {
					return
				}
				time.AfterFunc(tt.outage, func() {
					again, err := StartEmbedded(context.Background(), dir, u.Host, nil)
					if err != nil {
						t.Errorf("restart: %v", err)
						return
					}
					mu.Lock()
					running = again
					mu.Unlock()
				})
			}
			if !tt.midway {
				stop()
			}
			done := make(chan error, 1)
			go func() {
				if !tt.single {
					done <- pub.PublishBatch(ctx, evs)
					return
				}
				for _, ev := range evs {
					if err := pub.Publish(ctx, ev); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			if tt.midway {
				for stored(t, srv) < uint64(tt.events/10) {
					select {
					case err := <-done:
						t.Fatalf("publish ended before the server stopped: %v", err)
					case <-time.After(time.Millisecond):
					}
				}
				if n := stored(t, srv); n >= uint64(tt.events) {
					t.Fatalf("all %d events stored before the server stopped", n)
				}
				stop()
			}
			// A stopped server that stays down fails the call within the
			// retry window after the last attempt that got something
			// through, with an attempt under way before and after it, and
			// slack for a loaded machine. One that comes back lets it
			// succeed however long the retries take.
			bound := opts.RetryFor + 2*opts.AttemptTimeout + 5*time.Second
			wait := bound + 10*time.Second
			if tt.outage > 0 {
				wait = 2 * time.Minute
			}
			select {
			case err = <-done:
			case <-time.After(wait):
				t.Fatalf("publish still waiting %s after the server stopped", time.Since(stoppedAt).Round(time.Second))
			}
			elapsed := time.Since(stoppedAt)
			if tt.outage == 0 {
				if err == nil {
					t.Fatal("publish to a stopped server succeeded")
				}
				if elapsed > bound {
					t.Errorf("publish returned %s after the server stopped, bound %s", elapsed.Round(time.Millisecond), bound)
				}
				t.Logf("returned %s after the server stopped: %v", elapsed.Round(time.Millisecond), err)
				return
			}
			if err != nil {
				t.Fatalf("publish across a %s outage: %v", tt.outage, err)
			}
			t.Logf("published %d events, done %s after the server stopped for %s", tt.events, elapsed.Round(time.Millisecond), tt.outage)
			checkStoredOnce(t, js, evs)
		})
	}
}

// stored returns the number of messages srv's JetStream holds.
func stored(t *testing.T, srv *Embedded) uint64 {
	t.Helper()
	jsz, err := srv.srv.Jsz(nil)
	if err != nil {
		t.Fatal(err)
	}
	return jsz.Messages
}

// checkStoredOnce checks that CF_EVENTS holds exactly one message per event
// of evs, and no other.
func checkStoredOnce(t *testing.T, js jetstream.JetStream, evs []event.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != uint64(len(evs)) {
		t.Errorf("CF_EVENTS holds %d messages, want %d", n, len(evs))
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]int, len(evs))
	for len(seen) < len(evs) {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			seen[m.Headers().Get(jetstream.MsgIDHeader)]++
			n++
		}
		if n == 0 {
			break
		}
	}
	for _, ev := range evs {
		if k := seen[MsgID(ev)]; k != 1 {
			t.Errorf("event %s stored %d times", MsgID(ev), k)
		}
	}
}
