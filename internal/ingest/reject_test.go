package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/promtest"
)

// TestIngestPoisonRow makes ClickHouse itself reject one row: a column
// whose default is throwIf(event_id = …) fails the INSERT of any block
// holding that event, whatever the client sends. The row goes to CF_DLQ
// with the server's reason and the rest of its batch is stored; ingestion
// goes on. Then ClickHouse rejects every row (a fault of the table, not of
// the rows): nothing is dead-lettered, the batch waits, and it is stored
// once the table is fixed.
func TestIngestPoisonRow(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, chtest.DSN(t))
	_, js := bustest.Start(t, bus.Options{})
	pub := bus.NewPublisher(js, bus.DefaultPartitions)
	evs := genEvents(2100, 23)
	poison := evs[42]
	exec := func(q string) {
		t.Helper()
		if err := st.Conn().Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	exec("ALTER TABLE events ADD COLUMN poison UInt8 DEFAULT throwIf(event_id = '" + poison.ID + "')")
	if err := pub.PublishBatch(ctx, evs[:2000]); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	cfg := Config{BatchSize: 500, MaxWait: 50 * time.Millisecond, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	w, err := New(js, st, cfg, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runWorker(t, w)
	waitDrained(t, js, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		t.Helper()
		var n uint64
		for _, tenant := range []string{"acme", "globex"} {
			c, err := st.CountEvents(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			n += c
		}
		return n
	}
	if n := stored(); n != 1999 {
		t.Fatalf("%d events stored, want the 1999 ClickHouse accepts", n)
	}
	dlq, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	checkLetters := func() {
		t.Helper()
		info, err := dlq.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != 1 {
			t.Fatalf("CF_DLQ holds %d messages, want the poison row alone", info.State.Msgs)
		}
		m, err := dlq.GetMsg(ctx, info.State.FirstSeq)
		if err != nil {
			t.Fatal(err)
		}
		reason := m.Header.Get(bus.ErrorHeader)
		if !strings.Contains(reason, "rejected") || !strings.Contains(reason, "395") {
			t.Errorf("dead letter reason %q does not give the server's rejection", reason)
		}
		if !strings.Contains(string(m.Data), `"id":"`+poison.ID+`"`) {
			t.Errorf("dead letter is not the poison event: %s", m.Data)
		}
	}
	checkLetters()
	if n := promtest.Sum(t, reg, "commitflow_ingest_rows_rejected_total"); n != 1 {
		t.Errorf("rows rejected metric %v, want 1", n)
	}

	// Every row rejected: the table is at fault. Nothing is dead-lettered
	// and nothing acknowledged until it is fixed.
	exec("ALTER TABLE events MODIFY COLUMN poison UInt8 DEFAULT throwIf(event_id != '')")
	if err := pub.PublishBatch(ctx, evs[2000:]); err != nil {
		t.Fatal(err)
	}
	stop = runWorker(t, w)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if n := promtest.Sum(t, reg, "commitflow_ingest_insert_errors_total"); n >= 2*rejectAfter {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := promtest.Sum(t, reg, "commitflow_ingest_insert_errors_total"); n < 2*rejectAfter {
		t.Fatalf("%v insert errors: the rejection was not tried long enough to prove anything", n)
	}
	checkLetters()
	if n := stored(); n != 1999 {
		t.Fatalf("%d events stored while every row is rejected, want 1999", n)
	}
	exec("ALTER TABLE events MODIFY COLUMN poison UInt8 DEFAULT 0")
	waitDrained(t, js, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := stored(); n != 2099 {
		t.Fatalf("%d events stored after the table was fixed, want 2099", n)
	}
	checkLetters()
}
