package ingest

import (
	"bytes"
	"context"
	"testing"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/store"
)

// TestInsertLargeBatch inserts a batch of the size the worker uses, which
// store.InsertEvents sends as several data blocks of one INSERT, and
// checks that every row arrives intact.
func TestInsertLargeBatch(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, chtest.DSN(t))
	evs := genEvents(10001, 7)
	rows := make([]store.RawEvent, len(evs))
	want := map[string][]byte{}
	for i, ev := range evs {
		data, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		rows[i] = store.RawEvent{
			Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source,
			EventID: ev.ID, Type: string(ev.Type), OccurredAt: ev.OccurredAt,
			ReceivedAt: ev.ReceivedAt, StreamSeq: uint64(i + 1), Payload: data,
		}
		want[ev.Tenant+"/"+ev.Source+"/"+ev.ID] = data
	}
	if err := st.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, tenant := range []string{"acme", "globex"} {
		n, err := st.CountEvents(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != uint64(len(evs)) {
		t.Fatalf("stored %d events, want %d", total, len(evs))
	}
	// Spot-check payloads from the start, the block boundaries and the end.
	for _, i := range []int{0, 4095, 4096, 8191, 8192, len(evs) - 1} {
		ev := evs[i]
		got, err := st.LoadEvents(ctx, ev.Tenant, []string{ev.OpportunityID})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, g := range got {
			if g.Source == ev.Source && g.EventID == ev.ID {
				found = true
				if !bytes.Equal(g.Payload, want[ev.Tenant+"/"+ev.Source+"/"+ev.ID]) {
					t.Errorf("row %d: payload differs", i)
				}
			}
		}
		if !found {
			t.Errorf("row %d (%s/%s) not stored", i, ev.Source, ev.ID)
		}
	}
}
