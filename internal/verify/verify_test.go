package verify

import (
	"reflect"
	"testing"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
	"github.com/commitflow/commitflow/internal/verify/verifytest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// TestRun publishes 30 events and one malformed message (sequence 21,
// dead-lettered), stores all events but those of sequences 7, 8 and 12,
// one of them also under a second opportunity, acknowledges up to 30 on
// the ingest consumer, and checks what Run reports for several ranges and
// chunk sizes.
func TestRun(t *testing.T) {
	ctx := t.Context()
	_, js := bustest.Start(t, bus.Options{Partitions: 2})
	st := storetest.Open(t, store.Options{})

	bySeq := verifytest.Publish(t, js, 2)
	var rows []store.RawEvent
	for seq := uint64(1); seq <= 31; seq++ {
		row, ok := bySeq[seq]
		if !ok || seq == 7 || seq == 8 || seq == 12 {
			continue
		}
		rows = append(rows, row)
		if seq == 13 {
			row.OpportunityID += "-other"
			rows = append(rows, row)
		}
	}
	if err := st.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	bustest.AckIngest(t, js, 30)

	shared := bySeq[13]
	sharedIDs := []store.SharedEventID{{Tenant: shared.Tenant, Source: shared.Source, EventID: shared.EventID,
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
