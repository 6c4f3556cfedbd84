package importer

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ingest/ingesttest"
	"github.com/commitflow/commitflow/internal/ladder"
	deriver "github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// testWindow is the duplicate window of the tests' streams: longer than a
// test, so that an event published twice is one stream message however
// slow the machine (the store's own de-duplication past the window is
// tested in internal/exporttest and internal/api).
const testWindow = 10 * time.Minute

// cancelAfter publishes through pub and cancels the import's context
// once batches batches are acknowledged: an import killed halfway. The
// import may have more batches in flight then.
type cancelAfter struct {
	pub     Publisher
	batches int32
	done    atomic.Int32
	cancel  context.CancelFunc
}

func (c *cancelAfter) PublishBatch(ctx context.Context, evs []event.Event) error {
	if err := c.pub.PublishBatch(ctx, evs); err != nil {
		return err
	}
	if c.done.Add(1) == c.batches {
		c.cancel()
	}
	return nil
}

// pipeline is an embedded NATS server with the streams declared, a fresh
// ClickHouse database and an ingest worker moving events from one to the
// other.
type pipeline struct {
	js    jetstream.JetStream
	st    *store.Store
	pub   *bus.Publisher
	parts int
}

func startPipeline(t *testing.T) pipeline {
	t.Helper()
	_, js := bustest.Start(t, bus.Options{DuplicateWindow: testWindow})
	parts, err := bus.Partitions(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	st := storetest.OpenDSN(t, chtest.DSN(t), store.Options{})
	ingesttest.Run(t, js, st, ingest.Config{})
	return pipeline{js: js, st: st, pub: bus.NewPublisher(js, parts), parts: parts}
}

// derive runs a Deriver with cfg and the default ladder on p until the
// test ends.
func (p pipeline) derive(t *testing.T, cfg deriver.Config) {
	t.Helper()
	d, err := deriver.NewDeriver(t.Context(), p.js, p.st, ladder.Default(), cfg, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
}

// counts returns the CF_EVENTS message count and, for tenant in
// ClickHouse, the stored rows and distinct events.
func (p pipeline) counts(t *testing.T, tenant string) (msgs, rows, distinct uint64) {
	t.Helper()
	ctx := t.Context()
	s, err := p.js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	err = p.st.Conn().QueryRow(ctx, `SELECT count(), uniqExact(opportunity_id, source, event_id) FROM events WHERE tenant = ?`, tenant).
		Scan(&rows, &distinct)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs, rows, distinct
}

// waitStored waits until ClickHouse holds want distinct events of tenant
// and returns when it first did.
func (p pipeline) waitStored(t *testing.T, tenant string, want uint64, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := p.st.CountEvents(t.Context(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		if n >= want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events stored after %s", n, want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func countEvents(rows Rows) (events int) {
	for _, r := range rows {
		events += len(r.Events)
	}
	return events
}

// TestImportKilledAndTwice imports a generated 20,000-row OpportunityHistory
// export into NATS with the ingest worker storing into ClickHouse, read
// from its file as the import command reads it (File, opened again for
// each run): killed halfway and restarted, the import resumes from its
// checkpoint and publishes no event twice; imported again in full, it adds
// nothing: the stream and the store each hold exactly one copy of every
// event the file's rows make (Parse, in memory).
func TestImportKilledAndTwice(t *testing.T) {
	ctx := t.Context()
	p := startPipeline(t)
	data := gen.SalesforceHistory(20000)
	h := SalesforceHistory("acme", "USD")
	rows, err := h.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	want := countEvents(rows)
	dir := t.TempDir()
	path := filepath.Join(dir, "OpportunityHistory.csv")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	key := Key(data, "salesforce-history", "acme")
	cp := filepath.Join(dir, "import", "cp.json")
	o := Options{Checkpoint: cp, BatchSize: 1000}
	run := func(ctx context.Context, pub Publisher) (Summary, error) {
		f, err := h.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return Run(ctx, f, key, pub, o)
	}

	killed, cancel := context.WithCancel(ctx)
	first, err := run(killed, &cancelAfter{pub: p.pub, batches: 12, cancel: cancel})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("killed import: err = %v, want context.Canceled", err)
	}
	if _, err := os.Stat(cp); err != nil {
		t.Fatalf("no checkpoint after the killed import: %v", err)
	}
	second, err := run(ctx, p.pub)
	if err != nil {
		t.Fatal(err)
	}
	if second.Resumed == 0 || first.Events+second.Events != want {
		t.Fatalf("killed import published %d events, the restart %d after resuming at row %d: want %d in all, none twice",
			first.Events, second.Events, second.Resumed, want)
	}
	if _, err := os.Stat(cp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("checkpoint left after a complete import: %v", err)
	}
	p.waitStored(t, "acme", uint64(want), time.Minute)

	again, err := run(ctx, p.pub)
	if err != nil {
		t.Fatal(err)
	}
	if again.Events != want || again.Resumed != 0 || len(again.Refused) != 0 {
		t.Fatalf("second import: %+v, want all %d events published again", again, want)
	}
	// Let the ingest worker catch up with whatever reached the stream.
	time.Sleep(2 * time.Second)
	msgs, stored, distinct := p.counts(t, "acme")
	if msgs != uint64(want) || stored != uint64(want) || distinct != uint64(want) {
		t.Fatalf("after importing twice: %d stream messages, %d rows and %d distinct events stored; want %d of each", msgs, stored, distinct, want)
	}
	t.Logf("%d rows, %d events; killed after %d events, resumed at row %d", len(rows), want, first.Events, second.Resumed)
}

// TestImportDealByDealDerives imports an OpportunityHistory export whose
// deals' rows are interleaved, as in a date-ordered export, through the
// live pipeline with a derive cache far too small for its deals: once
// through Run (deal by deal) into one tenant, once published in file
// order into another. Both tenants' derived events must be the same, and
// the deals closed won and lost must be those the file's last row of each
// deal says.
func TestImportDealByDealDerives(t *testing.T) {
	ctx := t.Context()
	p := startPipeline(t)
	now := time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC)
	p.derive(t, deriver.Config{CacheBytes: 64 << 10, BatchSize: 300, MaxWait: 50 * time.Millisecond, Concurrency: 1, Sweep: -1,
		Now: func() time.Time { return now }})

	data := gen.SalesforceHistory(3000) // 600 deals, each row 600 rows after the deal's last
	byDeal, err := SalesforceHistory("bydeal", "USD").Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, byDeal, Key(data, "bydeal"), p.pub, Options{BatchSize: 500}); err != nil {
		t.Fatal(err)
	}
	inFile, err := SalesforceHistory("fileorder", "USD").Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(inFile); i += 100 {
		var evs []event.Event
		for _, r := range inFile[i:min(i+100, len(inFile))] {
			evs = append(evs, r.Events...)
		}
		if err := p.pub.PublishBatch(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	bustest.WaitDrained(t, p.js, p.parts, 3*time.Minute)

	// What the file says: each deal's outcome is its last row's stage.
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]string{}
	for _, rec := range recs[1:] {
		last[rec[1]] = rec[4]
	}
	want := map[string]int{}
	for _, stage := range last {
		switch stage {
		case "Closed Won":
			want["won"]++
		case "Closed Lost":
			want["lost"]++
		}
	}
	if want["won"] == 0 || want["lost"] == 0 {
		t.Fatalf("the file closes %v: nothing to check", want)
	}

	derived := map[string][]string{}
	for _, tenant := range []string{"bydeal", "fileorder"} {
		ds, err := p.st.CurrentDerived(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		closed := map[string]int{}
		for _, d := range ds {
			derived[tenant] = append(derived[tenant], fmt.Sprintf("%s %s %s #%d %s %s %s %.2f",
				d.OpportunityID, d.Type, d.OccurredAt.UTC().Format(time.RFC3339), d.Seq, d.Step, d.Reason, d.Status, d.Amount))
			if d.Type == derive.DealClosed {
				closed[d.Status]++
			}
		}
		if !maps.Equal(closed, want) {
			t.Errorf("%s: deals closed %v, the file says %v", tenant, closed, want)
		}
	}
	slices.Sort(derived["bydeal"])
	slices.Sort(derived["fileorder"])
	if len(derived["bydeal"]) == 0 || !slices.Equal(derived["bydeal"], derived["fileorder"]) {
		t.Errorf("deal by deal: %d derived events, in file order %d; they differ", len(derived["bydeal"]), len(derived["fileorder"]))
		for i := range min(len(derived["bydeal"]), len(derived["fileorder"])) {
			if a, b := derived["bydeal"][i], derived["fileorder"][i]; a != b {
				t.Errorf("first difference:\n deal by deal: %s\n file order:   %s", a, b)
				break
			}
		}
	}
}
