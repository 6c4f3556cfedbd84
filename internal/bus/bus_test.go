package bus

import (
	"bytes"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/event"
)

func startServer(t *testing.T) (*Embedded, jetstream.JetStream) {
	t.Helper()
	ctx := t.Context()
	srv, err := StartEmbedded(ctx, t.TempDir(), "127.0.0.1:-1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js, err := Connect(ctx, srv.ClientURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return srv, js
}

func testEvent(i int) event.Event {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Minute)
	return event.Event{
		ID: fmt.Sprintf("ev-%d", i), Tenant: "acme", Source: "salesforce",
		Type: event.StageChanged, OccurredAt: at, ReceivedAt: at,
		OpportunityID: fmt.Sprintf("006%04d", i%50),
		Payload:       &event.StageChange{From: "Discovery", To: "Proposal"},
	}
}

func TestDeclareIdempotent(t *testing.T) {
	_, js := startServer(t)
	ctx := t.Context()
	for range 2 {
		if err := Declare(ctx, js, Options{Partitions: 4}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := Partitions(ctx, js)
	if err != nil || n != 4 {
		t.Fatalf("Partitions = %d, %v; want 4", n, err)
	}
	// Another count does not change an existing stream.
	if err := Declare(ctx, js, Options{Partitions: 16}); err != nil {
		t.Fatal(err)
	}
	if n, _ := Partitions(ctx, js); n != 4 {
		t.Fatalf("after redeclare with 16, Partitions = %d, want 4", n)
	}
	if _, err := js.Consumer(ctx, EventsStream, DeriveConsumer(4)); err == nil {
		t.Errorf("consumer %s exists for a 4-partition stream", DeriveConsumer(4))
	}
	for p := range 4 {
		c, err := js.Consumer(ctx, EventsStream, DeriveConsumer(p))
		if err != nil {
			t.Fatalf("consumer %s: %v", DeriveConsumer(p), err)
		}
		cfg := c.CachedInfo().Config
		if cfg.FilterSubject != PartitionFilter(p) || cfg.AckPolicy != jetstream.AckExplicitPolicy {
			t.Errorf("consumer %s: filter %q ack %v", DeriveConsumer(p), cfg.FilterSubject, cfg.AckPolicy)
		}
	}
	c, err := js.Consumer(ctx, EventsStream, IngestConsumer)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	if cfg.AckWait != time.Minute || cfg.MaxDeliver != -1 || cfg.MaxAckPending != 100_000 || cfg.FilterSubject != "" {
		t.Errorf("ingest consumer config: %+v", cfg)
	}
	for _, name := range []string{EventsStream, DLQStream, DerivedStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		sc := s.CachedInfo().Config
		if sc.Storage != jetstream.FileStorage || sc.Duplicates != 10*time.Minute {
			t.Errorf("stream %s: storage %v duplicates %v", name, sc.Storage, sc.Duplicates)
		}
	}
}

func TestPublish(t *testing.T) {
	_, js := startServer(t)
	ctx := t.Context()
	if err := Declare(ctx, js, Options{}); err != nil {
		t.Fatal(err)
	}
	n, err := Partitions(ctx, js)
	if err != nil || n != DefaultPartitions {
		t.Fatalf("Partitions = %d, %v", n, err)
	}
	pub := NewPublisher(js, n)

	evs := make([]event.Event, 5000)
	for i := range evs {
		evs[i] = testEvent(i)
	}
	if err := pub.PublishBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// Republishing, one by one and as a batch, is dropped by the server.
	for _, ev := range evs[:10] {
		if err := pub.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.PublishBatch(ctx, evs[:3000]); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, testEvent(5000)); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 5001 {
		t.Fatalf("stream holds %d messages, want 5001", info.State.Msgs)
	}

	// The first message is the first event, on its subject, with its id.
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != Subject(evs[0], n) || m.Header.Get(jetstream.MsgIDHeader) != "acme:salesforce:ev-0" {
		t.Errorf("message 1: subject %q, id %q", m.Subject, m.Header.Get(jetstream.MsgIDHeader))
	}
	got, err := event.Parse(m.Data)
	if err != nil || got.ID != "ev-0" {
		t.Errorf("message 1 parses to %+v, %v", got, err)
	}

	// Each derive consumer sees exactly its partition's events.
	total := uint64(0)
	for p := range n {
		c, err := js.Consumer(ctx, EventsStream, DeriveConsumer(p))
		if err != nil {
			t.Fatal(err)
		}
		ci, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += ci.NumPending
	}
	if total != 5001 {
		t.Errorf("derive consumers hold %d messages in all, want 5001", total)
	}

	raw := []byte(`{"not": "an event"`)
	if err := pub.PublishRaw(ctx, "cf.events.acme.x.y.0", "raw-1", raw); err != nil {
		t.Fatal(err)
	}
	m, err = s.GetMsg(ctx, 5002)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Data, raw) {
		t.Errorf("raw message = %q, want %q", m.Data, raw)
	}
}

func TestEmbeddedKeepsStreams(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for round := range 2 {
		srv, err := StartEmbedded(ctx, dir, "127.0.0.1:-1", nil)
		if err != nil {
			t.Fatal(err)
		}
		nc, js, err := Connect(ctx, srv.ClientURL(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			if err := Declare(ctx, js, Options{Partitions: 3}); err != nil {
				t.Fatal(err)
			}
			if err := NewPublisher(js, 3).Publish(ctx, testEvent(1)); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := Declare(ctx, js, Options{}); err != nil {
				t.Fatal(err)
			}
			if n, err := Partitions(ctx, js); n != 3 || err != nil {
				t.Errorf("after restart: Partitions = %d, %v; want 3", n, err)
			}
			s, err := js.Stream(ctx, EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().State.Msgs; got != 1 {
				t.Errorf("after restart: %d messages, want 1", got)
			}
		}
		nc.Close()
		srv.Shutdown()
	}
}

func TestStartEmbeddedBadListen(t *testing.T) {
	for _, listen := range []string{"nonsense", "127.0.0.1:port"} {
		if _, err := StartEmbedded(t.Context(), t.TempDir(), listen, nil); err == nil {
			t.Errorf("StartEmbedded(%q) succeeded", listen)
		}
	}
}

// TestDeclareDropsIngestFilter: an ingest consumer declared with the
// cf.events.> filter of earlier versions keeps its position and loses the
// filter.
func TestDeclareDropsIngestFilter(t *testing.T) {
	_, js := startServer(t)
	ctx := t.Context()
	if err := Declare(ctx, js, Options{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	old := jetstream.ConsumerConfig{
		Durable: IngestConsumer, FilterSubject: EventsPrefix + ">", DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxDeliver: -1, MaxAckPending: 100_000, MaxWaiting: 512,
	}
	if err := js.DeleteConsumer(ctx, EventsStream, IngestConsumer); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, EventsStream, old); err != nil {
		t.Fatal(err)
	}
	if err := Declare(ctx, js, Options{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, EventsStream, IngestConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if f := c.CachedInfo().Config.FilterSubject; f != "" {
		t.Errorf("ingest consumer filter %q after Declare, want none", f)
	}
}
