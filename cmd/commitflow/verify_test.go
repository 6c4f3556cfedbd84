package main

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/verify"
)

// TestVerifyCommand stores the events of a stream in ClickHouse as ingest
// would (one malformed message dead-lettered instead), checks that verify
// finds nothing missing, then deletes events from ClickHouse and checks
// that verify reports exactly their stream sequences as ranges, in JSON and
// as text, and fails (the checks themselves are internal/verify's test).
func TestVerifyCommand(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 4)
	dsn := chtest.DSN(t)
	st, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	// 20 events, a malformed message (sequence 21), 10 more events.
	var evs []event.Event
	err = gen.Generate(ctx, gen.Config{Seed: 3, Opportunities: 6, End: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}, func(ev event.Event) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 30 {
		t.Fatalf("generated %d events, want at least 30", len(evs))
	}
	evs = evs[:30]
	pub := bus.NewPublisher(js, 4)
	if err := pub.PublishBatch(ctx, evs[:20]); err != nil {
		t.Fatal(err)
	}
	const badSubject = "cf.events.acme.crm.opportunity_created.0"
	if err := pub.PublishRaw(ctx, badSubject, "", []byte(`{"id":`)); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishBatch(ctx, evs[20:]); err != nil {
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

	// Store the events with their stream sequences, and acknowledge all
	// but the last message on the ingest consumer.
	var rows []store.RawEvent
	bySeq := map[uint64]event.Event{}
	events, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 31; seq++ {
		m, err := events.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := event.Parse(m.Data)
		if err != nil {
			if seq == 21 {
				continue
			}
			t.Fatalf("seq %d: %v", seq, err)
		}
		bySeq[seq] = ev
		rows = append(rows, store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source,
			EventID: ev.ID, Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: seq, Payload: m.Data})
	}
	if err := st.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	ackUpTo(t, js, 30)

	run := func(args ...string) (verify.Report, error) {
		t.Helper()
		var out bytes.Buffer
		err := cmdVerify(ctx, append([]string{"--nats", url, "--clickhouse", dsn, "--format", "json"}, args...), &out)
		var rep verify.Report
		if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
			t.Fatalf("verify %v: %v (%v)\n%s", args, jerr, err, out.String())
		}
		return rep, err
	}

	// A clean store: nothing missing; by default up to the ingest
	// acknowledgement floor.
	rep, err := run("--chunk", "7")
	if err != nil {
		t.Fatalf("clean store: %v", err)
	}
	want := verify.Report{From: 1, To: 30, AckFloor: 30, LastSeq: 31, Messages: 30, Stored: 29, DeadLettered: 1}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("clean store:\n got %+v\nwant %+v", rep, want)
	}

	// Events 7, 8 (across the first chunk boundary) and 12 deleted.
	for _, seq := range []uint64{7, 8, 12} {
		ev := bySeq[seq]
		if err := st.Conn().Exec(ctx, `ALTER TABLE events DELETE WHERE tenant = ? AND opportunity_id = ? AND source = ? AND event_id = ?`,
			ev.Tenant, ev.OpportunityID, ev.Source, ev.ID); err != nil {
			t.Fatal(err)
		}
	}
	waitMutations(t, st)
	rep, err = run("--chunk", "7", "--to", "31")
	if err == nil || !strings.Contains(err.Error(), "3 messages") {
		t.Errorf("3 events deleted: error %v", err)
	}
	want = verify.Report{From: 1, To: 31, AckFloor: 30, LastSeq: 31, Messages: 31, Stored: 27, DeadLettered: 1, Missing: 3,
		MissingRanges: []verify.SeqRange{{From: 7, To: 8, Messages: 2}, {From: 12, To: 12, Messages: 1}}}
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("3 events deleted:\n got %+v\nwant %+v", rep, want)
	}
	rep, err = run("--from", "13", "--to", "25")
	if err != nil || rep.Missing != 0 || rep.Messages != 13 {
		t.Errorf("--from 13 --to 25: %v, %+v", err, rep)
	}

	var out bytes.Buffer
	err = cmdVerify(ctx, []string{"--nats", url, "--clickhouse", dsn, "--chunk", "5"}, &out)
	for _, line := range []string{"CF_EVENTS 1..30: 30 messages, 26 stored, 1 dead-lettered, 3 missing", "not checked: 31..31", "  7-8\t2 messages", "  12\t1 message"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("verify output lacks %q:\n%s", line, out.String())
		}
	}
	if err == nil {
		t.Error("verify with missing events: no error")
	}
	if err := cmdVerify(ctx, []string{"--nats", url, "--clickhouse", dsn, "--from", "5", "--to", "4"}, &out); err == nil {
		t.Error("--from after --to: no error")
	}

	// The same source id under another opportunity: both copies are
	// stored, and verify names them.
	ev := bySeq[13]
	other := store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID + "-other", Source: ev.Source, EventID: ev.ID,
		Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: 99, Payload: []byte("{}")}
	if err := st.InsertEvents(ctx, []store.RawEvent{other}); err != nil {
		t.Fatal(err)
	}
	rep, err = run("--from", "13", "--to", "25")
	wantShared := []store.SharedEventID{{Tenant: ev.Tenant, Source: ev.Source, EventID: ev.ID,
		Opportunities: []string{ev.OpportunityID, ev.OpportunityID + "-other"}}}
	if err == nil || rep.SharedIDs != 1 || !reflect.DeepEqual(rep.SharedIDSamples, wantShared) {
		t.Errorf("an id under two opportunities: %v, %d shared, %+v; want an error and %+v", err, rep.SharedIDs, rep.SharedIDSamples, wantShared)
	}
	out.Reset()
	_ = cmdVerify(ctx, []string{"--nats", url, "--clickhouse", dsn, "--from", "13", "--to", "25"}, &out)
	if line := "1 event id(s) stored under more than one opportunity"; !strings.Contains(out.String(), line) {
		t.Errorf("verify output lacks %q:\n%s", line, out.String())
	}
}

// ackUpTo acknowledges the ingest consumer's messages up to stream
// sequence seq (AckAll), as the ingest worker does once they are stored.
func ackUpTo(t *testing.T, js jetstream.JetStream, seq uint64) {
	t.Helper()
	ctx := t.Context()
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

// waitMutations waits until the store's ALTER ... DELETE mutations are
// done.
func waitMutations(t *testing.T, st *store.Store) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; {
		var n uint64
		if err := st.Conn().QueryRow(t.Context(),
			`SELECT count() FROM system.mutations WHERE database = currentDatabase() AND is_done = 0`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mutations not done after 30s", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
