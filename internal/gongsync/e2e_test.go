package gongsync

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ingest/ingesttest"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestSyncEndToEnd polls calls from the fake Gong into ClickHouse through
// embedded NATS and an ingest worker: each call is one row of the events
// table, linked to its opportunity, and polling again adds none.
func TestSyncEndToEnd(t *testing.T) {
	js, pub := testBus(t)
	st := storetest.Open(t, store.Options{})
	ingesttest.Run(t, js, st, ingest.Config{})

	srv := httptest.NewServer(&fakeGong{calls: gongCalls(t, 3), pageSize: 2})
	defer srv.Close()
	s := syncer(t, js, pub, srv, "a", nil)
	for range 2 {
		if err := s.Run(t.Context(), true, nil); err != nil {
			t.Fatal(err)
		}
		if err := s.kv.Delete(t.Context(), "acme"); err != nil { // poll the same calls again
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n, opps uint64
		err := st.Conn().QueryRow(t.Context(),
			`SELECT count(), uniqExact(opportunity_id) FROM events WHERE tenant = ? AND source = 'gong' AND type = 'call.completed' AND opportunity_id LIKE '006OPP%'`,
			"acme").Scan(&n, &opps)
		if err != nil {
			t.Fatal(err)
		}
		if n == 3 && opps == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d call rows on %d opportunities, want 3 on 3", n, opps)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
