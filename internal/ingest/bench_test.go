package ingest

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/store"
)

// BenchmarkEndToEnd measures how fast the ingest worker moves events from
// JetStream into ClickHouse, next to the raw insert rate of the same rows
// straight into ClickHouse (2 goroutines, 50k-row batches), in the same
// run. Run it with
//
//	go test -run='^$' -bench=EndToEnd -benchtime=1x ./internal/ingest
//
// COMMITFLOW_BENCH_EVENTS sets the number of events (default 200000);
// COMMITFLOW_BENCH_BATCH overrides the worker's BatchSize (default as in
// Config), and
// COMMITFLOW_BENCH_DEBUG=1 logs every batch.
func BenchmarkEndToEnd(b *testing.B) {
	n := envInt(b, "COMMITFLOW_BENCH_EVENTS", 200_000)
	cfg := Config{
		BatchSize: envInt(b, "COMMITFLOW_BENCH_BATCH", 0),
	}
	ctx := context.Background()
	evs := genEvents(n, 99)
	rows := make([]store.RawEvent, n)
	for i, ev := range evs {
		data, err := event.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		rows[i] = store.RawEvent{
			Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source,
			EventID: ev.ID, Type: string(ev.Type), OccurredAt: ev.OccurredAt,
			ReceivedAt: ev.ReceivedAt, StreamSeq: uint64(i + 1), Payload: data,
		}
	}

	var e2eRate, rawRate float64
	for b.Loop() {
		// Raw, before and after the end-to-end run (the machine's load
		// drifts): the same rows straight into a fresh table.
		rawTime := rawInsert(b, rows)
		// End to end: publish everything, then time the worker.
		st := openStore(b, chtest.DSN(b))
		_, js := bustest.Start(b, bus.Options{})
		pubStart := time.Now()
		if err := bus.NewPublisher(js, bus.DefaultPartitions).PublishBatch(ctx, evs); err != nil {
			b.Fatal(err)
		}
		pubTime := time.Since(pubStart)
		var logger *slog.Logger
		if os.Getenv("COMMITFLOW_BENCH_DEBUG") != "" {
			logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
		w, err := New(js, st, cfg, nil, logger)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		stop := runWorker(b, w)
		waitDrained(b, js, 10*time.Minute)
		e2eTime := time.Since(start)
		if err := stop(); err != nil {
			b.Fatal(err)
		}
		checkCount(b, st, n)
		rawTime = (rawTime + rawInsert(b, rows)) / 2

		e2eRate = float64(n) / e2eTime.Seconds()
		rawRate = float64(n) / rawTime.Seconds()
		b.Logf("%d events: publish %v (%.0f/s), end-to-end %v, raw insert %v (mean of two runs)",
			n, pubTime.Round(time.Millisecond), float64(n)/pubTime.Seconds(),
			e2eTime.Round(time.Millisecond), rawTime.Round(time.Millisecond))
	}
	b.ReportMetric(e2eRate, "e2e_events/s")
	b.ReportMetric(rawRate, "raw_events/s")
	b.ReportMetric(e2eRate/rawRate, "ratio")
}

// rawInsert inserts rows into a fresh table from 2 goroutines in batches
// of 50,000 and returns the time it took.
func rawInsert(b *testing.B, rows []store.RawEvent) time.Duration {
	b.Helper()
	ctx := context.Background()
	st := openStore(b, chtest.DSN(b))
	const size = 50_000
	start := time.Now()
	var wg sync.WaitGroup
	next := make(chan []store.RawEvent)
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			for part := range next {
				if err := st.InsertEvents(ctx, part); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for i := 0; i < len(rows); i += size {
		next <- rows[i:min(i+size, len(rows))]
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	checkCount(b, st, len(rows))
	return took
}

// envInt reads a positive integer from the environment, or returns def.
func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// checkCount fails b unless st holds n distinct events.
func checkCount(b *testing.B, st *store.Store, n int) {
	b.Helper()
	var total uint64
	for _, tenant := range []string{"acme", "globex"} {
		c, err := st.CountEvents(context.Background(), tenant)
		if err != nil {
			b.Fatal(err)
		}
		total += c
	}
	if total != uint64(n) {
		b.Fatalf("%d events stored, want %d", total, n)
	}
}
