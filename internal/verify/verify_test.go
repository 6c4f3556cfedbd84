package verify

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// TestRun publishes 30 events and one malformed message (sequence 21,
// dead-lettered), stores all events but those of sequences 7, 8 and 12,
// one of them also under a second opportunity, acknowledges up to 30 on
// the ingest consumer, and checks what Run reports for several ranges and
// chunk sizes.
func TestRun(t *testing.T) {
	ctx := t.Context()
	emb, err := bus.StartEmbedded(ctx, t.TempDir(), "127.0.0.1:-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	nc, js, err := bus.Connect(ctx, emb.ClientURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := bus.Declare(ctx, js, bus.Options{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	st := storetest.Open(t, store.Options{})

	var evs []event.Event
	err = gen.Generate(ctx, gen.Config{Seed: 3, Opportunities: 6, End: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}, func(ev event.Event) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil || len(evs) < 30 {
		t.Fatalf("generated %d events: %v", len(evs), err)
	}
	pub := bus.NewPublisher(js, 2)
	if err := pub.PublishBatch(ctx, evs[:20]); err != nil {
		t.Fatal(err)
	}
	const badSubject = "cf.events.acme.crm.opportunity_created.0"
	if err := pub.PublishRaw(ctx, badSubject, "", []byte(`{"id":`)); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishBatch(ctx, evs[20:30]); err != nil {
		t.Fatal(err)
	}
	letter := nats.NewMsg(bus.DLQSubject(badSubject))
	letter.Data = []byte(`{"id":`)
	letter.Header.Set(bus.ErrorHeader, "body: unexpected end of JSON input")
	letter.Header.Set(bus.SubjectHeader, badSubject)
	letter.Header.Set(bus.StreamSeqHeader, "21")
	if _, err := js.PublishMsg(ctx, letter); err != nil {
		t.Fatal(err)
	}

	events, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	var rows []store.RawEvent
	var shared event.Event
	for seq := uint64(1); seq <= 31; seq++ {
		m, err := events.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.Parse(m.Data)
		if seq == 21 || seq == 7 || seq == 8 || seq == 12 {
			continue
		}
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		row := store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source,
			EventID: ev.ID, Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: seq, Payload: m.Data}
		rows = append(rows, row)
		if seq == 13 {
			shared = ev
			row.OpportunityID += "-other"
			rows = append(rows, row)
		}
	}
	if err := st.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	ackUpTo(t, js, 30)

	sharedIDs := []store.SharedEventID{{Tenant: shared.Tenant, Source: shared.Source, EventID: shared.ID,
		Opportunities: []string{shared.OpportunityID, shared.OpportunityID + "-other"}}}
	for _, c := range []struct {
		name string
		o    Options
		want Report
	}{
		{"to the ack floor, across chunks", Options{Chunk: 7, SharedSamples: 5}, Report{From: 1, To: 30, AckFloor: 30, LastSeq: 31,
			Messages: 30, Stored: 26, DeadLettered: 1, Missing: 3, MissingRanges: []SeqRange{{7, 8, 2}, {12, 12, 1}}}},
		{"to the end", Options{To: 31, Chunk: 7, SharedSamples: 5}, Report{From: 1, To: 31, AckFloor: 30, LastSeq: 31,
			Messages: 31, Stored: 27, DeadLettered: 1, Missing: 3, MissingRanges: []SeqRange{{7, 8, 2}, {12, 12, 1}}}},
		{"a middle range", Options{From: 9, To: 20, SharedSamples: 5}, Report{From: 9, To: 20, AckFloor: 30, LastSeq: 31,
			Messages: 12, Stored: 11, Missing: 1, MissingRanges: []SeqRange{{12, 12, 1}}}},
		{"one at a time", Options{From: 13, To: 25, Chunk: 1, SharedSamples: 5}, Report{From: 13, To: 25, AckFloor: 30, LastSeq: 31,
			Messages: 13, Stored: 12, DeadLettered: 1}},
		{"past the end", Options{From: 40, To: 50}, Report{From: 40, To: 31, AckFloor: 30, LastSeq: 31}},
	} {
		got, err := Run(ctx, js, st, c.o)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		c.want.SharedIDs = 1
		if c.o.SharedSamples > 0 {
			c.want.SharedIDSamples = sharedIDs
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
	for _, o := range []Options{{From: 5, To: 4}, {Chunk: -1}} {
		if _, err := Run(ctx, js, st, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// ackUpTo acknowledges the ingest consumer's messages up to stream
// sequence seq (AckAll), as the ingest worker does once they are stored.
func ackUpTo(t *testing.T, js jetstream.JetStream, seq uint64) {
	t.Helper()
	ctx := context.Background()
	c, err := bus.CurrentIngest(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(int(seq), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.Sequence.Stream == seq {
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("ingest consumer: sequence %d not delivered (%v)", seq, batch.Error())
}
