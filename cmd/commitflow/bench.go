package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func cmdBench(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("bench: say what to measure: bench ingest | bench derive | bench api")
	}
	switch args[0] {
	case "ingest":
		return benchIngest(ctx, args[1:], stdout)
	case "derive":
		return benchDerive(ctx, args[1:], stdout)
	case "api":
		return benchAPI(ctx, args[1:], stdout)
	}
	return fmt.Errorf("bench: unknown benchmark %q (want ingest, derive or api)", args[0])
}

// benchEvents generates n events (about 23 per opportunity).
func benchEvents(ctx context.Context, n int, seed int64) ([]event.Event, error) {
	evs := make([]event.Event, 0, n)
	cfg := gen.Config{Seed: seed, Opportunities: max(1, n/20), Tenant: "bench", End: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	errEnough := errors.New("enough")
	err := gen.Generate(ctx, cfg, func(ev event.Event) error {
		if len(evs) == n {
			return errEnough
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return evs, nil
}

// withDatabase returns dsn pointing at database db.
func withDatabase(dsn, db string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("dsn: %w", err)
	}
	u.Path = "/" + db
	return u.String(), nil
}

// benchStore creates (or empties) database db and opens a migrated store on
// it.
func benchStore(ctx context.Context, s *stack, dsn, db string) (*store.Store, string, error) {
	if err := s.st.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return nil, "", err
	}
	if err := s.st.Conn().Exec(ctx, "CREATE DATABASE "+db); err != nil {
		return nil, "", err
	}
	dbDSN, err := withDatabase(dsn, db)
	if err != nil {
		return nil, "", err
	}
	st, err := store.Open(ctx, dbDSN, store.Options{Logger: s.log})
	if err != nil {
		return nil, "", err
	}
	s.closers = append(s.closers, func(ctx context.Context) error {
		st.Close()
		return s.st.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	})
	if _, err := st.Migrate(ctx); err != nil {
		return nil, "", err
	}
	return st, dbDSN, nil
}

func rawRows(evs []event.Event) ([]store.RawEvent, error) {
	rows := make([]store.RawEvent, len(evs))
	for i, ev := range evs {
		b, err := event.Marshal(ev)
		if err != nil {
			return nil, err
		}
		rows[i] = store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source, EventID: ev.ID,
			Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: uint64(i + 1), Payload: b}
	}
	return rows, nil
}

func benchIngest(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench ingest", flag.ContinueOnError)
	var c config.Common
	c.Register(fs)
	var gc config.GC
	gc.Register(fs)
	n := fs.Int("events", 1_000_000, "events to ingest")
	runs := fs.Int("runs", 1, "measure the raw insert from two writers and the end-to-end drain this many times, alternately, and report every run's ratio and their median")
	batch := fs.Int("batch", 0, "ingest fetch batch size (0: the worker's default)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the (first) end-to-end drain to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile, taken as the (first) drain ends, to this file")
	order := fs.String("order", "time", "order of the events in the stream: time (as they happen, like a live feed) or opportunity (one deal's history after another, like a bulk backfill)")
	if err := config.Parse(ctx, fs, args); err != nil {
		return err
	}
	if *order != "time" && *order != "opportunity" {
		return fmt.Errorf("bench ingest: --order %q: want time or opportunity", *order)
	}
	if *runs < 1 {
		return fmt.Errorf("bench ingest: --runs %d: want at least 1", *runs)
	}
	log := newLogger(c.LogLevel)
	if err := applyGC(gc, log); err != nil {
		return err
	}
	s := &stack{log: log}
	defer s.close()
	if err := s.openStore(ctx, &c); err != nil {
		return err
	}
	dsn := s.dsn // as given, or the managed server's
	// events generates the benchmark's events anew for every run, so that
	// no run's drain is measured with the previous run's events on the
	// heap.
	events := func() ([]event.Event, []store.RawEvent, error) {
		fmt.Fprintf(os.Stderr, "generating %d events...\n", *n)
		evs, err := benchEvents(ctx, *n, 1)
		if err != nil {
			return nil, nil, err
		}
		if *order == "time" {
			// The generator writes one opportunity's history after
			// another; a live feed interleaves them in time. The order
			// decides how many monthly partitions of the events table
			// each insert touches, so it changes both the raw and the
			// end-to-end rates.
			sort.SliceStable(evs, func(i, j int) bool { return evs[i].OccurredAt.Before(evs[j].OccurredAt) })
		}
		rows, err := rawRows(evs)
		return evs, rows, err
	}

	rawStore, rawDSN, err := benchStore(ctx, s, dsn, "commitflow_bench_raw")
	if err != nil {
		return err
	}
	e2eStore, _, err := benchStore(ctx, s, dsn, "commitflow_bench_e2e")
	if err != nil {
		return err
	}
	type result struct {
		name string
		rate float64
		cost cpuCost
		note string
	}
	var (
		results           []result
		bestOther         float64 // clickhouse-client and one writer, measured in the first run
		ratios, e2es, raw []float64
		rawCosts          []cpuCost
		last              drained
		peakHeap          uint64
		cfg               ingest.Config
	)
	for run := 1; run <= *runs; run++ {
		evs, rows, err := events()
		if err != nil {
			return err
		}
		// 1. Raw inserts of the same rows: clickhouse-client and one
		// native writer in the first run, two native writers in every
		// run. Every phase starts on a quiet server: the parts a phase
		// leaves are dropped and their merges waited out, so that no
		// phase pays for the background work of another.
		if run == 1 {
			clientRate, clientCost, err := clientInsert(ctx, rawStore, rawDSN, rows)
			if err != nil {
				fmt.Fprintf(os.Stderr, "clickhouse-client insert skipped: %v\n", err)
			} else {
				results = append(results, result{"raw insert, clickhouse-client (TSV)", clientRate, clientCost, "same rows, one client"})
				bestOther = clientRate
			}
			if err := rawStore.Conn().Exec(ctx, "DROP TABLE IF EXISTS events_client"); err != nil {
				return err
			}
		}
		for _, writers := range []int{1, 2} {
			if writers == 1 && run > 1 {
				continue
			}
			if err := rawStore.Conn().Exec(ctx, "TRUNCATE TABLE events"); err != nil {
				return err
			}
			if err := settle(ctx, rawStore); err != nil {
				return err
			}
			cpu := sampleCPU()
			rate, err := nativeInsert(ctx, rawStore, rows, writers, 50000)
			if err != nil {
				return err
			}
			cost := costSince(cpu, len(rows))
			if writers == 2 {
				rawCosts = append(rawCosts, cost)
			}
			if writers == 1 {
				bestOther = max(bestOther, rate)
			} else {
				raw = append(raw, rate)
			}
			if run == 1 {
				results = append(results, result{fmt.Sprintf("raw insert, native protocol, %d writer(s)", writers), rate, cost, "batches of 50k"})
			}
		}
		if err := rawStore.Conn().Exec(ctx, "TRUNCATE TABLE events"); err != nil {
			return err
		}

		// 2. Publish to a fresh embedded JetStream, then drain it into
		// ClickHouse with the ingest worker.
		var prof [2]string
		if run == 1 {
			prof = [2]string{*cpuProfile, *memProfile}
		}
		rows = nil
		d, err := drain(ctx, s, e2eStore, &evs, c, ingest.Config{BatchSize: *batch}, prof[0], prof[1])
		if err != nil {
			return err
		}
		cfg = d.cfg
		last = d
		peakHeap = max(peakHeap, d.peakHeap)
		e2es = append(e2es, d.rate)
		ratios = append(ratios, d.rate/max(bestOther, raw[len(raw)-1]))
		if run == 1 {
			results = append(results,
				result{"publish to embedded JetStream", d.pubRate, cpuCost{-1, -1}, "PublishAsync, Nats-Msg-Id"},
				result{"JetStream delivery alone (fetch, AckAll; no parse, no insert)", d.deliveryRate, d.deliveryCost, "same backlog, other consumer"})
		}
		if *runs > 1 {
			fmt.Fprintf(os.Stderr, "run %d of %d: raw, 2 writers %.0f rows/s; end to end %.0f events/s; ratio %.2f\n",
				run, *runs, raw[len(raw)-1], d.rate, ratios[len(ratios)-1])
		}
	}
	results = append(results, result{"end to end: JetStream -> ingest -> ClickHouse", e2es[0], last.cost,
		fmt.Sprintf("batches of %d in %d INSERTs, one AckAll each, backlog drained", cfg.BatchSize, cfg.InsertWriters)})

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "benchmark (%d events in %s order, %d cores)\trows/s\tCPU µs/row: commitflow\tclickhouse\t\n", *n, *order, runtime.NumCPU())
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\n", r.name, r.rate, fmtCost(r.cost.self), fmtCost(r.cost.ch), r.note)
	}
	tw.Flush()
	printCeiling(stdout, rawCosts[len(rawCosts)-1], last, max(bestOther, raw[len(raw)-1]))
	if *runs == 1 {
		fmt.Fprintf(stdout, "end-to-end / best raw insert = %.2f (target >= 0.50)\n", ratios[0])
	} else {
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "run\traw, 2 writers (rows/s)\tend to end (events/s)\tratio to the run's best raw\t\n")
		for i := range ratios {
			fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f\t\n", i+1, raw[i], e2es[i], ratios[i])
		}
		tw.Flush()
		fmt.Fprintf(stdout, "end-to-end / best raw insert: median %.2f over %d runs, %.2f-%.2f (target >= 0.50)\n",
			median(ratios), len(ratios), slices.Min(ratios), slices.Max(ratios))
	}
	fmt.Fprintf(stdout, "peak Go heap during the drain (process with embedded NATS): %d MiB\n", peakHeap>>20)
	return nil
}

// drained is the result of one end-to-end drain.
type drained struct {
	rate, pubRate, deliveryRate float64
	// cost is the CPU per event of the drain, deliveryCost that of
	// JetStream delivering the same backlog to a consumer that only
	// acknowledges it.
	cost, deliveryCost cpuCost
	peakHeap           uint64
	cfg                ingest.Config
}

// drain publishes *evs to a fresh embedded JetStream, empties st, and times
// an ingest worker draining the backlog into st. It sets *evs to nil once
// they are published: a running ingest process does not hold the events it
// consumes, so the drain must not be measured scanning a heap of them. It
// profiles the drain into cpuProfile and memProfile when they are set.
func drain(ctx context.Context, s *stack, st *store.Store, evs *[]event.Event, c config.Common, cfg ingest.Config, cpuProfile, memProfile string) (drained, error) {
	var d drained
	if err := st.Conn().Exec(ctx, "TRUNCATE TABLE events"); err != nil {
		return d, err
	}
	dir, err := os.MkdirTemp("", "commitflow-bench-nats-")
	if err != nil {
		return d, err
	}
	defer os.RemoveAll(dir)
	ns := &stack{log: s.log}
	defer ns.close()
	nc := config.Common{Data: dir, NATSListen: "127.0.0.1:-1", Partitions: c.Partitions, DuplicateWindow: c.DuplicateWindow, Replicas: 1, Retention: c.Retention}
	if err := ns.openNATS(ctx, &nc); err != nil {
		return d, err
	}
	parts, err := bus.Partitions(ctx, ns.js)
	if err != nil {
		return d, err
	}
	pub := bus.NewPublisher(ns.js, parts)
	start := time.Now()
	all := *evs
	for i := 0; i < len(all); i += 10000 {
		if err := pub.PublishBatch(ctx, all[i:min(i+10000, len(all))]); err != nil {
			return d, err
		}
	}
	total := len(all)
	d.pubRate = float64(total) / time.Since(start).Seconds()
	all, *evs = nil, nil
	runtime.GC()
	if d.deliveryRate, d.deliveryCost, err = deliverOnly(ctx, ns.js, total); err != nil {
		return d, err
	}
	runtime.GC()

	w, err := ingest.New(ns.js, st, cfg, nil, s.log)
	if err != nil {
		return d, err
	}
	d.cfg = w.Config()
	if err := settle(ctx, st); err != nil {
		return d, err
	}
	stopProfile, err := startCPUProfile(cpuProfile)
	if err != nil {
		return d, err
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	peak := watchHeap()
	cpu := sampleCPU()
	start = time.Now()
	go func() { done <- w.Run(wctx) }()
	err = waitDrained(ctx, ns.js)
	d.rate = float64(total) / time.Since(start).Seconds()
	d.cost = costSince(cpu, total)
	stopProfile()
	if err == nil {
		err = writeHeapProfile(memProfile)
	}
	cancel()
	<-done
	d.peakHeap = peak()
	if err != nil {
		return d, err
	}
	if cnt, err := st.CountEvents(ctx, "bench"); err != nil || cnt != uint64(total) {
		return d, fmt.Errorf("end to end stored %d events, want %d (%v)", cnt, total, err)
	}
	return d, nil
}

// deliverOnly times JetStream delivering the n messages of the events
// stream to a consumer of its own, fetched in batches of 50k and
// acknowledged with one AckAll each as the ingest worker does, but neither
// parsed nor stored: the part of the end-to-end cost no ingest code can
// save. It deletes the consumer at the end.
func deliverOnly(ctx context.Context, js jetstream.JetStream, n int) (float64, cpuCost, error) {
	const name = "bench-delivery"
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.EventsStream, jetstream.ConsumerConfig{
		Durable: name, AckPolicy: jetstream.AckAllPolicy, AckWait: time.Minute, MaxAckPending: 100_000,
	})
	if err != nil {
		return 0, cpuCost{}, fmt.Errorf("delivery consumer: %w", err)
	}
	defer js.DeleteConsumer(context.WithoutCancel(ctx), bus.EventsStream, name)
	cpu := sampleCPU()
	start := time.Now()
	for got := 0; got < n; {
		b, err := cons.Fetch(50000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return 0, cpuCost{}, fmt.Errorf("delivery fetch: %w", err)
		}
		var last jetstream.Msg
		for m := range b.Messages() {
			last = m
			got++
		}
		if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return 0, cpuCost{}, fmt.Errorf("delivery fetch: %w", err)
		}
		if last != nil {
			if err := last.Ack(); err != nil {
				return 0, cpuCost{}, fmt.Errorf("delivery ack: %w", err)
			}
		}
		if ctx.Err() != nil {
			return 0, cpuCost{}, ctx.Err()
		}
	}
	rate := float64(n) / time.Since(start).Seconds()
	return rate, costSince(cpu, n), nil
}

// printCeiling writes where the end-to-end drain's CPU went, per event, and
// the fastest drain this machine would allow if parsing, validating,
// batching and garbage collection cost nothing: its cores divided by the
// CPU per event of what no ingest code can save (JetStream delivering the
// message, sending the row to ClickHouse, ClickHouse storing it).
func printCeiling(w io.Writer, raw cpuCost, d drained, bestRaw float64) {
	e2e, del := d.cost, d.deliveryCost
	if e2e.self < 0 || e2e.ch < 0 || del.self < 0 || raw.self < 0 {
		fmt.Fprintln(w, "CPU per event: not measured (needs /proc and a local clickhouse-server)")
		return
	}
	fmt.Fprintf(w, "CPU per event end to end: commitflow %.1f µs (JetStream delivery %.1f, sending the row to ClickHouse %.1f, "+
		"parsing, validation, batching and GC %.1f), ClickHouse %.1f µs\n",
		e2e.self, del.self, raw.self, max(0, e2e.self-del.self-raw.self), e2e.ch)
	cores := float64(runtime.NumCPU())
	ceiling := cores * 1e6 / (del.self + raw.self + e2e.ch)
	fmt.Fprintf(w, "ceiling on %.0f cores with parsing, validation, batching and GC free: %.0f events/s, %.2f of the best raw insert\n",
		cores, ceiling, ceiling/bestRaw)
}

// median returns the median of xs (not empty); xs is not modified.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// settle waits, up to two minutes, until the server runs no merge.
func settle(ctx context.Context, st *store.Store) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var n uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&n); err != nil {
			return fmt.Errorf("settle: %w", err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// watchHeap samples the Go heap in use until the returned function is
// called, which returns the largest sample.
func watchHeap() (peak func() uint64) {
	done := make(chan struct{})
	result := make(chan uint64)
	go func() {
		var m runtime.MemStats
		var top uint64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&m)
			top = max(top, m.HeapInuse)
			select {
			case <-done:
				result <- top
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-result }
}

// startCPUProfile starts a CPU profile written to path, if path is not
// empty, and returns the function that stops it.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeHeapProfile writes a heap profile to path, if path is not empty.
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}

// waitDrained returns once the ingest consumer has nothing pending or
// unacknowledged: a message is acknowledged only after ClickHouse stored it.
func waitDrained(ctx context.Context, js jetstream.JetStream) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return err
	}
	last := s.CachedInfo().State.LastSeq
	for {
		// The current generation: the worker starts a new one when it
		// takes the ingest lease. Drained means acknowledged up to the
		// stream's last message: pending counts alone also read zero
		// on a generation before it is given anything.
		cons, err := bus.CurrentIngest(ctx, js)
		if err != nil {
			return err
		}
		info, err := cons.Info(ctx)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= last {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// nativeInsert inserts rows in batches from the given number of writers and
// returns rows/s.
func nativeInsert(ctx context.Context, st *store.Store, rows []store.RawEvent, writers, batch int) (float64, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w * batch; i < len(rows); i += writers * batch {
				if err := st.InsertEvents(ctx, rows[i:min(i+batch, len(rows))]); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(len(rows)) / time.Since(start).Seconds(), nil
}

// clientInsert inserts rows with the clickhouse-client binary, reading
// TabSeparated from a file, and returns rows/s (file writing not counted)
// and the CPU per row (this process's: none; the client's is not counted).
func clientInsert(ctx context.Context, st *store.Store, dsn string, rows []store.RawEvent) (float64, cpuCost, error) {
	bin, err := exec.LookPath("clickhouse-client")
	if err != nil {
		return 0, cpuCost{}, errors.New("clickhouse-client is not installed")
	}
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return 0, cpuCost{}, err
	}
	host, port, _ := strings.Cut(opt.Addr[0], ":")
	f, err := os.CreateTemp("", "commitflow-bench-*.tsv")
	if err != nil {
		return 0, cpuCost{}, err
	}
	defer os.Remove(f.Name())
	bw := bufio.NewWriterSize(f, 1<<20)
	esc := strings.NewReplacer("\\", "\\\\", "\t", "\\t", "\n", "\\n")
	for _, r := range rows {
		fmt.Fprintf(bw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", esc.Replace(r.Tenant), esc.Replace(r.OpportunityID), esc.Replace(r.Source),
			esc.Replace(r.EventID), esc.Replace(r.Type), r.OccurredAt.UTC().Format(time.DateTime), r.ReceivedAt.UTC().Format(time.DateTime), r.StreamSeq, esc.Replace(string(r.Payload)))
	}
	if err := bw.Flush(); err != nil {
		return 0, cpuCost{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, cpuCost{}, err
	}
	if err := st.Conn().Exec(ctx, "CREATE TABLE events_client AS events"); err != nil {
		return 0, cpuCost{}, err
	}
	cmd := exec.CommandContext(ctx, bin, "--host", host, "--port", port, "--user", opt.Auth.Username, "--database", opt.Auth.Database,
		"--query", "INSERT INTO events_client (tenant, opportunity_id, source, event_id, type, occurred_at, received_at, stream_seq, payload) FORMAT TabSeparated")
	if opt.Auth.Password != "" {
		cmd.Args = append(cmd.Args, "--password", opt.Auth.Password)
	}
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.Stdin = f
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cpu := sampleCPU()
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, cpuCost{}, fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, stderr.String())
	}
	rate := float64(len(rows)) / time.Since(start).Seconds()
	return rate, costSince(cpu, len(rows)), nil
}

func benchDerive(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench derive", flag.ContinueOnError)
	n := fs.Int("events", 500_000, "events to derive from")
	if err := config.Parse(ctx, fs, args); err != nil {
		return err
	}
	evs, err := benchEvents(ctx, *n, 1)
	if err != nil {
		return err
	}
	byOpp := map[string][]event.Event{}
	var order []string
	for _, ev := range evs {
		if _, ok := byOpp[ev.OpportunityID]; !ok {
			order = append(order, ev.OpportunityID)
		}
		byOpp[ev.OpportunityID] = append(byOpp[ev.OpportunityID], ev)
	}
	l := ladder.Default()
	now := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	derived := 0
	for _, id := range order {
		derived += len(derive.Derive("bench", id, byOpp[id], l, now))
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "derived %d events from %d input events of %d opportunities in %s on one goroutine: %.0f input events/s\n",
		derived, len(evs), len(order), el.Round(time.Millisecond), float64(len(evs))/el.Seconds())
	return nil
}
