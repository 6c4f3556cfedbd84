package bus

import (
	"bytes"
	"errors"
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
	c, err := CurrentIngest(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	cfg := c.CachedInfo().Config
	if cfg.Durable != IngestConsumerName(1) || cfg.AckPolicy != jetstream.AckAllPolicy || cfg.AckWait != time.Minute ||
		cfg.MaxDeliver != -1 || cfg.MaxAckPending != 100_000 || cfg.FilterSubject != "" {
		t.Errorf("ingest consumer config: %+v", cfg)
	}
	for name, window := range map[string]time.Duration{EventsStream: 30 * time.Second, DLQStream: 5 * time.Minute, DerivedStream: 30 * time.Second} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		sc := s.CachedInfo().Config
		if sc.Storage != jetstream.FileStorage || sc.Duplicates != window {
			t.Errorf("stream %s: storage %v duplicates %v, want a window of %v", name, sc.Storage, sc.Duplicates, window)
		}
	}
}

// TestDLQWindow: CF_DLQ keeps ids at least DLQDuplicateWindow, longer with
// a longer window, never longer than its messages.
func TestDLQWindow(t *testing.T) {
	for _, tt := range []struct {
		window, maxAge, want time.Duration
	}{
		{30 * time.Second, 0, 5 * time.Minute},
		{time.Second, 0, 5 * time.Minute},
		{10 * time.Minute, 0, 10 * time.Minute},
		{30 * time.Second, time.Minute, time.Minute},
		{30 * time.Second, time.Hour, 5 * time.Minute},
	} {
		if got := dlqWindow(Options{DuplicateWindow: tt.window, DLQMaxAge: tt.maxAge}); got != tt.want {
			t.Errorf("window %v, dead letters kept %v: CF_DLQ window %v, want %v", tt.window, tt.maxAge, got, tt.want)
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

// TestRotateIngest: the explicitly acknowledged ingest consumer of earlier
// versions is generation 0; each rotation starts a generation right after
// its predecessor's acknowledgement floor and deletes the predecessors, so
// that their acknowledgements no longer count.
func TestRotateIngest(t *testing.T) {
	_, js := startServer(t)
	ctx := t.Context()
	if err := Declare(ctx, js, Options{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	// Generation 0, as earlier versions declared it.
	if err := js.DeleteConsumer(ctx, EventsStream, IngestConsumerName(1)); err != nil {
		t.Fatal(err)
	}
	legacy := jetstream.ConsumerConfig{
		Durable: LegacyIngestConsumer, FilterSubject: EventsPrefix + ">", DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1, MaxAckPending: 5000, MaxWaiting: 512,
	}
	if _, err := js.CreateConsumer(ctx, EventsStream, legacy); err != nil {
		t.Fatal(err)
	}
	// Declare keeps it.
	if err := Declare(ctx, js, Options{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if c, err := CurrentIngest(ctx, js); err != nil || c.CachedInfo().Name != LegacyIngestConsumer {
		t.Fatalf("current ingest consumer after Declare: %v", err)
	}
	pub := NewPublisher(js, 2)
	evs := make([]event.Event, 100)
	for i := range evs {
		evs[i] = testEvent(i)
	}
	if err := pub.PublishBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}

	// fetchAck fetches n messages of the current generation, acknowledges
	// the first ack of them (with the generation's policy) and returns the
	// stream sequence of the first one fetched.
	fetchAck := func(n, ack int) uint64 {
		t.Helper()
		c, err := CurrentIngest(ctx, js)
		if err != nil {
			t.Fatal(err)
		}
		b, err := c.Fetch(n, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var first uint64
		i := 0
		for m := range b.Messages() {
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = md.Sequence.Stream
			}
			if i < ack {
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatal(err)
				}
			}
			i++
		}
		if i != n {
			t.Fatalf("fetched %d messages, want %d", i, n)
		}
		return first
	}
	// Generation 0 stores 30 and holds 10 more, unacknowledged.
	if first := fetchAck(40, 30); first != 1 {
		t.Fatalf("generation 0 starts at %d", first)
	}

	c1, err := RotateIngest(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c1.CachedInfo().Config; cfg.Durable != IngestConsumerName(1) || cfg.AckPolicy != jetstream.AckAllPolicy ||
		cfg.AckWait != 30*time.Second || cfg.MaxAckPending != 5000 || cfg.FilterSubject != "" || cfg.OptStartSeq != 31 {
		t.Fatalf("generation 1 config: %+v; want AckAll from 31 with generation 0's limits", cfg)
	}
	if _, err := js.Consumer(ctx, EventsStream, LegacyIngestConsumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("generation 0 after the rotation: %v, want deleted", err)
	}
	// Generation 1 delivers the 10 held messages again, and more. With
	// AckAll, acknowledging the 25th acknowledges the 25 fetched.
	if first := fetchAck(25, 0); first != 31 {
		t.Fatalf("generation 1 starts delivering at %d, want 31", first)
	}
	c, err := CurrentIngest(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range b.Messages() {
		if err := m.DoubleAck(ctx); err != nil { // stream sequence 56
			t.Fatal(err)
		}
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 56 || info.NumAckPending != 0 {
		t.Fatalf("generation 1: ack floor %d, %d pending; want 56, 0", info.AckFloor.Stream, info.NumAckPending)
	}

	c2, err := RotateIngest(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if got := c2.CachedInfo().Config; got.Durable != IngestConsumerName(2) || got.OptStartSeq != 57 {
		t.Errorf("generation 2: %s from %d, want %s from 57", got.Durable, got.OptStartSeq, IngestConsumerName(2))
	}
	// The old generation is gone: a late acknowledgement of it fails
	// instead of counting.
	if _, err := c.Info(ctx); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("generation 1 after the rotation: %v, want deleted", err)
	}
	// It starts with its predecessor's floor, which the derive workers
	// wait on.
	if info, err := c2.Info(ctx); err != nil || info.NumPending != 44 || info.AckFloor.Stream != 56 {
		t.Errorf("generation 2: %d pending, ack floor %d (%v); want 44, 56", info.NumPending, info.AckFloor.Stream, err)
	}
}

func TestIngestGeneration(t *testing.T) {
	for _, tc := range []struct {
		name string
		gen  int
		ok   bool
	}{
		{"ingest", 0, true},
		{"ingest-g000001", 1, true},
		{"ingest-g1234567", 1234567, true},
		{"ingest-g000000", 0, false},
		{"ingest-g", 0, false},
		{"ingest-gx", 0, false},
		{"derive-p01", 0, false},
	} {
		g, ok := ingestGeneration(tc.name)
		if g != tc.gen || ok != tc.ok {
			t.Errorf("ingestGeneration(%q) = %d, %v; want %d, %v", tc.name, g, ok, tc.gen, tc.ok)
		}
		if ok && IngestConsumerName(g) != tc.name && tc.name != "ingest-g1234567" {
			t.Errorf("IngestConsumerName(%d) = %q, want %q", g, IngestConsumerName(g), tc.name)
		}
	}
}

func TestDeclareLimits(t *testing.T) {
	_, js := startServer(t)
	ctx := t.Context()
	maxAge := func(name string) time.Duration {
		t.Helper()
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		return s.CachedInfo().Config.MaxAge
	}
	if err := Declare(ctx, js, Options{Partitions: 2, MaxAge: 48 * time.Hour, DLQMaxAge: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]time.Duration{EventsStream: 48 * time.Hour, DerivedStream: 48 * time.Hour, DLQStream: 24 * time.Hour} {
		if got := maxAge(name); got != want {
			t.Errorf("%s: max age %v, want %v", name, got, want)
		}
	}

	// Declaring again with other limits changes them and logs each change.
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	if err := Declare(ctx, js, Options{Partitions: 2, MaxAge: 72 * time.Hour, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]time.Duration{EventsStream: 72 * time.Hour, DerivedStream: 72 * time.Hour, DLQStream: 0} {
		if got := maxAge(name); got != want {
			t.Errorf("after redeclare, %s: max age %v, want %v", name, got, want)
		}
	}
	for _, want := range []string{
		"stream=CF_EVENTS setting=max_age from=48h0m0s to=72h0m0s",
		"stream=CF_DERIVED setting=max_age from=48h0m0s to=72h0m0s",
		"stream=CF_DLQ setting=max_age from=24h0m0s to=0s",
	} {
		if !bytes.Contains(logs.Bytes(), []byte(want)) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}

	// The same limits again: nothing to log.
	logs.Reset()
	if err := Declare(ctx, js, Options{Partitions: 2, MaxAge: 72 * time.Hour, Logger: logger}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(logs.Bytes(), []byte("stream setting changed")) {
		t.Errorf("unchanged limits logged:\n%s", logs.String())
	}

	// A single server cannot keep more than one copy.
	if err := Declare(ctx, js, Options{Partitions: 2, Replicas: 3}); err == nil {
		t.Error("Declare with 3 replicas on a single server: no error")
	}
}

func TestChangedLimits(t *testing.T) {
	base := jetstream.StreamConfig{MaxAge: time.Hour, MaxBytes: -1, MaxMsgs: -1, Duplicates: 2 * time.Minute, Replicas: 1}
	tests := []struct {
		name string
		edit func(*jetstream.StreamConfig)
		want []change
	}{
		{"same", func(*jetstream.StreamConfig) {}, nil},
		{"replicas", func(c *jetstream.StreamConfig) { c.Replicas = 3 }, []change{{"replicas", "1", "3"}}},
		{"age and bytes", func(c *jetstream.StreamConfig) { c.MaxAge, c.MaxBytes = 0, 1<<30 },
			[]change{{"max_age", "1h0m0s", "0s"}, {"max_bytes", "-1", "1073741824"}}},
		{"window", func(c *jetstream.StreamConfig) { c.Duplicates = time.Minute }, []change{{"duplicate_window", "2m0s", "1m0s"}}},
		{"not a limit", func(c *jetstream.StreamConfig) { c.Description = "x" }, nil},
	}
	for _, tt := range tests {
		next := base
		tt.edit(&next)
		got := changedLimits(base, next)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: changedLimits = %v, want %v", tt.name, got, tt.want)
		}
	}
}
