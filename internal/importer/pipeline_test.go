package importer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
)

// outOfOrder acknowledges batches as they come, except the batch that
// starts with event id fail: that one waits until the batches starting
// with the ids in after are acknowledged, then fails. It records the ids
// acknowledged.
type outOfOrder struct {
	fail  string
	after []string

	mu    sync.Mutex
	acked map[string]bool
	done  map[string]chan struct{} // closed when the batch starting with the id is acknowledged
}

func (p *outOfOrder) batchDone(id string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done[id] == nil {
		p.done[id] = make(chan struct{})
	}
	return p.done[id]
}

func (p *outOfOrder) PublishBatch(ctx context.Context, evs []event.Event) error {
	if evs[0].ID == p.fail {
		for _, id := range p.after {
			select {
			case <-p.batchDone(id):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return errors.New("refused")
	}
	p.mu.Lock()
	for _, ev := range evs {
		p.acked[ev.ID] = true
	}
	p.mu.Unlock()
	close(p.batchDone(evs[0].ID))
	return nil
}

// TestRunCheckpointInOrder fails a batch after two batches sent later
// were acknowledged: the checkpoint and Summary.Events stop before the
// failed batch, every event of the rows the checkpoint counts was
// acknowledged, and the import resumed there publishes the rest.
func TestRunCheckpointInOrder(t *testing.T) {
	const n, batch = 100, 10
	rows := make(Rows, n)
	for i := range rows {
		rows[i] = Row{Line: i + 2, Events: []event.Event{{ID: strconv.Itoa(i)}}}
	}
	cp := filepath.Join(t.TempDir(), "cp.json")
	o := Options{Checkpoint: cp, BatchSize: batch, InFlight: 4}
	pub := &outOfOrder{fail: "30", after: []string{"40", "50"}, acked: map[string]bool{}, done: map[string]chan struct{}{}}
	sum, err := Run(t.Context(), rows, "k", pub, o)
	if err == nil {
		t.Fatal("the import with a failed batch succeeded")
	}
	done, err := readCheckpoint(cp, "k", n)
	if err != nil {
		t.Fatal(err)
	}
	if done != 30 || sum.Events != 30 {
		t.Errorf("checkpoint at %d rows, %d events counted; want 30 and 30 (the rows before the failed batch)", done, sum.Events)
	}
	for _, r := range rows[:done] {
		if !pub.acked[r.Events[0].ID] {
			t.Errorf("line %d is checkpointed, its event not acknowledged", r.Line)
		}
	}

	again := &outOfOrder{acked: map[string]bool{}, done: map[string]chan struct{}{}}
	sum, err = Run(t.Context(), rows, "k", again, o)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Resumed != done || sum.Events != n-done {
		t.Errorf("resumed: %+v, want %d rows resumed and %d events", sum, done, n-done)
	}
	for _, r := range rows {
		if !pub.acked[r.Events[0].ID] && !again.acked[r.Events[0].ID] {
			t.Errorf("line %d never acknowledged", r.Line)
		}
	}
}

// startAt publishes through pub and cancels the import's context when
// its batches-th batch starts, with batches before it still in flight.
type startAt struct {
	pub     Publisher
	batches int32
	started atomic.Int32
	cancel  context.CancelFunc
}

func (c *startAt) PublishBatch(ctx context.Context, evs []event.Event) error {
	if c.started.Add(1) == c.batches {
		c.cancel()
	}
	return c.pub.PublishBatch(ctx, evs)
}

// TestImportKilledInFlight kills an import into an embedded JetStream
// while several batches are in flight, resumes it from its checkpoint and
// checks the stream against the file: exactly the events the file's rows
// make, each once and as the file says.
func TestImportKilledInFlight(t *testing.T) {
	ctx := t.Context()
	_, js := bustest.Start(t, bus.Options{DuplicateWindow: testWindow})
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, parts)

	data := gen.SalesforceHistory(20000)
	rows, err := SalesforceHistory("acme", "USD").Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	key := Key(data, "salesforce-history", "acme")
	cp := filepath.Join(t.TempDir(), "import", "cp.json")
	o := Options{Checkpoint: cp, BatchSize: 1000, InFlight: 4}
	killed, cancel := context.WithCancel(ctx)
	first, err := Run(killed, rows, key, &startAt{pub: pub, batches: 20, cancel: cancel}, o)
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("killed import: err = %v, want context.Canceled", err)
	}
	done, err := readCheckpoint(cp, key, len(rows))
	if err != nil {
		t.Fatal(err)
	}
	// The checkpoint counts rows in publishing order, deal by deal.
	if published := byDeal(rows)[:done]; done == 0 || first.Events != countEvents(published) {
		t.Fatalf("killed import: checkpoint at row %d, %d events counted; want rows checkpointed and their %d events", done, first.Events, countEvents(published))
	}
	second, err := Run(ctx, rows, key, pub, o)
	if err != nil {
		t.Fatal(err)
	}
	if second.Resumed != done || first.Events+second.Events != countEvents(rows) {
		t.Fatalf("resumed at row %d (checkpoint %d), published %d + %d events; want %d", second.Resumed, done, first.Events, second.Events, countEvents(rows))
	}

	want := map[string][]byte{} // Nats-Msg-Id -> body, from the file
	for _, r := range rows {
		for _, ev := range r.Events {
			b, err := event.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			want[bus.MsgID(ev)] = b
		}
	}
	got := streamBodies(t, js)
	if len(got) != len(want) {
		t.Errorf("the stream holds %d distinct events, the file makes %d", len(got), len(want))
	}
	for id, b := range want {
		switch bodies := got[id]; {
		case len(bodies) != 1:
			t.Errorf("event %s stored %d times", id, len(bodies))
		case !bytes.Equal(bodies[0], b):
			t.Errorf("event %s stored as %s, the file makes %s", id, bodies[0], b)
		}
	}
	t.Logf("%d rows, %d events; killed at row %d after %d events", len(rows), len(want), done, first.Events)
}

// streamBodies reads every message of CF_EVENTS: its bodies by
// Nats-Msg-Id.
func streamBodies(t *testing.T, js jetstream.JetStream) map[string][][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	total := s.CachedInfo().State.Msgs
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][][]byte{}
	for read := uint64(0); read < total; {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			id := m.Headers().Get(jetstream.MsgIDHeader)
			got[id] = append(got[id], m.Data())
			n++
		}
		if n == 0 {
			t.Fatal(fmt.Errorf("read %d of %d messages", read, total))
		}
		read += uint64(n)
	}
	return got
}
