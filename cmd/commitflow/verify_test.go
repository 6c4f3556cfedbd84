package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
	"github.com/commitflow/commitflow/internal/verify"
	"github.com/commitflow/commitflow/internal/verify/verifytest"
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
	st := storetest.OpenDSN(t, dsn, store.Options{})

	// 20 events, a malformed message (sequence 21), 10 more events, stored
	// with their stream sequences; all but the last message acknowledged
	// on the ingest consumer.
	bySeq := verifytest.Publish(t, js, 4)
	if err := st.InsertEvents(ctx, slices.Collect(maps.Values(bySeq))); err != nil {
		t.Fatal(err)
	}
	bustest.AckIngest(t, js, 30)

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
			ev.Tenant, ev.OpportunityID, ev.Source, ev.EventID); err != nil {
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
	other := ev
	other.OpportunityID, other.StreamSeq, other.Payload = ev.OpportunityID+"-other", 99, []byte("{}")
	if err := st.InsertEvents(ctx, []store.RawEvent{other}); err != nil {
		t.Fatal(err)
	}
	rep, err = run("--from", "13", "--to", "25")
	wantShared := []store.SharedEventID{{Tenant: ev.Tenant, Source: ev.Source, EventID: ev.EventID,
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
