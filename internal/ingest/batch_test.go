package ingest

import (
	"bytes"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/event"
)

// probeMsg is a delivered message under a wrapper of the test's own, so
// that the test can tell when nothing holds the message any more.
type probeMsg struct{ jetstream.Msg }

// TestBatchDropsMessages fetches real deliveries, adds them to a batch and
// checks that the batch does not keep the messages (their decoded headers,
// metadata and wrappers, about 700 bytes each, two batches of 50k during a
// drain) but only what it needs of them: every row, with its payload,
// subject and reply subject, and the message with the highest sequence,
// which acknowledges the batch.
func TestBatchDropsMessages(t *testing.T) {
	const n = 200
	evs := genEvents(n, 7)
	cons, parts := backlog(t, evs)
	fb, err := cons.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	w := &Worker{cfg: Config{}.withDefaults()}
	b := w.newBatch()
	var collected atomic.Int64
	for m := range fb.Messages() {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		p := &probeMsg{m}
		runtime.AddCleanup(p, func(int) { collected.Add(1) }, 0)
		w.add(b, p, md, parts)
	}
	if err := fb.Error(); err != nil {
		t.Fatal(err)
	}
	if len(b.rows) != n || len(b.replies) != n || len(b.subjects) != n || len(b.dead) != 0 {
		t.Fatalf("batch of %d rows, %d replies, %d subjects, %d dead letters; want %d rows", len(b.rows), len(b.replies), len(b.subjects), len(b.dead), n)
	}
	for deadline := time.Now().Add(5 * time.Second); collected.Load() < n-1 && time.Now().Before(deadline); {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := collected.Load(); got != n-1 {
		t.Errorf("%d of %d messages collected while their batch lives; want all but the batch's top", got, n)
	}
	// What the batch kept is what it needs.
	for i, r := range b.rows {
		data, err := event.Marshal(evs[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(r.Payload, data) || r.StreamSeq != uint64(i+1) {
			t.Fatalf("row %d: stream seq %d, payload %s; want %d, %s", i, r.StreamSeq, r.Payload, i+1, data)
		}
		if want := bus.Subject(evs[i], parts); b.subjects[i] != want {
			t.Errorf("row %d: subject %q, want %q", i, b.subjects[i], want)
		}
		if b.replies[i] == "" {
			t.Errorf("row %d: no reply subject", i)
		}
	}
	if b.topSeq != n {
		t.Errorf("top stream seq %d, want %d", b.topSeq, n)
	}
	runtime.KeepAlive(b)
}

// TestFillSpansRequests fills batches larger than one pull request
// (fetchChunk) from a real backlog: a batch takes BatchSize messages in
// stream order across requests, and the next one what is left, ending on
// the first request that comes back short rather than waiting MaxWait
// again.
func TestFillSpansRequests(t *testing.T) {
	const size, n = fetchChunk + fetchChunk/2, 2*fetchChunk + 500
	cons, parts := backlog(t, genEvents(n, 3))
	// MaxWait is long enough for the server to send a full request on a
	// loaded machine under the race detector: only the last request may
	// come back short.
	const maxWait = 5 * time.Second
	w := &Worker{cfg: Config{BatchSize: size, MaxWait: maxWait}.withDefaults()}
	next := uint64(1)
	seq := uint64(1)
	for _, want := range []int{size, n - size} {
		b := w.newBatch()
		start := time.Now()
		gap, err := w.fill(cons, b, &next, parts)
		if gap != nil || err != nil {
			t.Fatalf("fill: gap %v, error %v", gap, err)
		}
		if len(b.rows) != want || len(b.dead) != 0 {
			t.Fatalf("batch of %d rows and %d dead letters, want %d rows", len(b.rows), len(b.dead), want)
		}
		for _, r := range b.rows {
			if r.StreamSeq != seq {
				t.Fatalf("row of stream sequence %d, want %d", r.StreamSeq, seq)
			}
			seq++
		}
		if took := time.Since(start); want < size && took >= 2*maxWait {
			t.Errorf("the batch of the last %d messages took %s: the short request should have ended it", want, took)
		}
	}
}

// stealing is an ingest consumer whose second Fetch lets another client
// fetch (and drop) steal messages of the same consumer first, as a fetch
// that gave up on its wait time after a pause does.
type stealing struct {
	jetstream.Consumer
	steal, fetches int
}

func (c *stealing) Fetch(n int, opts ...jetstream.FetchOpt) (jetstream.MessageBatch, error) {
	if c.fetches++; c.fetches == 2 {
		fb, err := c.Consumer.Fetch(c.steal, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		for range fb.Messages() {
		}
	}
	return c.Consumer.Fetch(n, opts...)
}

// TestFillGapInSecondRequest makes a delivery gap between the pull requests
// of one batch: fill keeps the messages of the first request, in order, and
// reports the gap at the first consumer sequence it did not receive.
func TestFillGapInSecondRequest(t *testing.T) {
	const n, steal = fetchChunk + 2000, 5
	cons, parts := backlog(t, genEvents(n, 5))
	w := &Worker{cfg: Config{BatchSize: n, MaxWait: 5 * time.Second}.withDefaults()}
	b := w.newBatch()
	next := uint64(1)
	gap, err := w.fill(&stealing{Consumer: cons, steal: steal}, b, &next, parts)
	if err != nil {
		t.Fatal(err)
	}
	if gap == nil || gap.want != fetchChunk+1 || gap.got != fetchChunk+steal+1 {
		t.Fatalf("gap %+v, want one from consumer sequence %d to %d", gap, fetchChunk+1, fetchChunk+steal+1)
	}
	if len(b.rows) != fetchChunk {
		t.Fatalf("batch of %d rows, want the first request's %d", len(b.rows), fetchChunk)
	}
	for i, r := range b.rows {
		if r.StreamSeq != uint64(i+1) {
			t.Fatalf("row %d of stream sequence %d, want %d", i, r.StreamSeq, i+1)
		}
	}
}

// backlog publishes evs to a fresh embedded JetStream and returns a new
// ingest consumer generation delivering them, and the stream's partitions.
func backlog(t *testing.T, evs []event.Event) (jetstream.Consumer, int) {
	t.Helper()
	ctx := t.Context()
	_, js := bustest.Start(t, bus.Options{})
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.NewPublisher(js, parts).PublishBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	cons, err := bus.RotateIngest(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	return cons, parts
}
