package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/store"
)

// IngestConfig is what Ingest measures and where.
type IngestConfig struct {
	// DSN is the ClickHouse server measured. Ingest stores into the
	// databases <Prefix>_raw and <Prefix>_e2e of that server, which it
	// creates empty and drops when it returns.
	DSN string
	// Prefix starts the names of the databases; default commitflow_bench.
	Prefix string
	// Events is how many generated events are ingested (at least 1).
	Events int
	// Runs is how many times the raw insert from two writers and the
	// end-to-end drain are measured, alternately (at least 1).
	Runs int
	// Order is the order of the events in the stream: "time" (as they
	// happen, like a live feed) or "opportunity" (one deal's history after
	// another, like a bulk backfill).
	Order string
	// Worker configures the ingest worker of the drain (zero: its
	// defaults).
	Worker ingest.Config
	// Streams configures the streams of the JetStream the events are
	// published to.
	Streams bus.Options
	// NATSServer, when set, is the path of a nats-server binary: each
	// drain then publishes to and drains from a nats-server process of its
	// own (JetStream storing in a temporary directory) instead of a server
	// embedded in this process, and the server's CPU is measured apart.
	NATSServer string
	// Peer, when set, is a command (a program and its arguments, split
	// at spaces) that drains the same stored events after each drain:
	// another ingest pipeline to compare with, such as Telegraf. It runs
	// with NATS_URL, NATS_STREAM, NATS_CONSUMER and CLICKHOUSE_DSN (an
	// empty database of its own, also in CLICKHOUSE_DATABASE) in its
	// environment, and is timed until the tables of that database hold
	// every event, then stopped. NATS_CONSUMER names a durable push
	// consumer made for it, delivering the whole stream to the deliver
	// group of the same name with up to 60k messages unacknowledged
	// (Telegraf's nats_consumer binds to one named after its queue_group,
	// and would otherwise make one allowing 1,000); a peer may also read
	// the stream its own way.
	Peer string
	// CPUProfile and MemProfile, when set, are the files the CPU profile
	// of the first drain, and a heap profile taken as it ends, go to.
	CPUProfile, MemProfile string
	// Progress receives a line per step (generating, each run); nil
	// discards them.
	Progress io.Writer
	// Logger receives the worker's and the servers' logs; nil discards
	// them.
	Logger *slog.Logger
}

// Phase is one measured phase of Ingest: its rate and CPU per row.
type Phase struct {
	Name string
	Rate float64 // rows (or events) per second
	Cost Cost
	Note string
}

// IngestRun is one run of Ingest: the raw insert from two writers, the
// end-to-end drain, and the ratio of the drain to the run's best raw
// insert.
type IngestRun struct {
	Raw, EndToEnd, Ratio float64
	// Peer is the events/s of IngestConfig.Peer on the run's events, 0
	// without one.
	Peer float64
}

// IngestResult is what Ingest measured.
type IngestResult struct {
	Events int
	Order  string
	Cores  int
	// ExternalNATS reports that JetStream ran in a nats-server process
	// (IngestConfig.NATSServer) rather than in this one.
	ExternalNATS bool
	// Phases are the first run's phases, the end-to-end drain last.
	Phases []Phase
	Runs   []IngestRun
	// RawCost is the CPU per row of the last run's raw insert from two
	// writers, Drain that of its drain and of JetStream delivering the
	// same backlog alone; BestRaw is the best raw insert rate it is
	// compared with.
	RawCost, Drain, Delivery Cost
	BestRaw                  float64
	// PeakHeap is the largest Go heap in use during a drain, in bytes,
	// and PeakLive the largest a collection found live.
	PeakHeap, PeakLive uint64
	// DrainHeap is what the last run's drain allocated and collected.
	DrainHeap heapStats
}

// Ingest measures, Runs times, the raw insert of generated events into
// ClickHouse next to the end-to-end drain of the same events from a fresh
// JetStream (embedded, or a nats-server of its own) through the ingest
// worker, and then the peer's drain of them when there is one. The first
// run also measures clickhouse-client (when installed) and one native
// writer, the publish, and JetStream delivery alone. Every phase starts on a quiet
// server: the parts a phase leaves are dropped and their merges waited
// out, so that no phase pays for the background work of another.
func Ingest(ctx context.Context, cfg IngestConfig) (IngestResult, error) {
	res := IngestResult{Events: cfg.Events, Order: cfg.Order, Cores: runtime.NumCPU(), ExternalNATS: cfg.NATSServer != ""}
	switch {
	case cfg.Order != "time" && cfg.Order != "opportunity":
		return res, fmt.Errorf("bench ingest: order %q: want time or opportunity", cfg.Order)
	case cfg.Runs < 1 || cfg.Events < 1:
		return res, fmt.Errorf("bench ingest: %d runs of %d events: want at least one of each", cfg.Runs, cfg.Events)
	case cfg.Peer != "" && len(strings.Fields(cfg.Peer)) == 0:
		return res, fmt.Errorf("bench ingest: peer %q: no command", cfg.Peer)
	}
	srv, err := connect(ctx, cfg.DSN, cfg.Prefix, cfg.Progress, cfg.Logger)
	if err != nil {
		return res, err
	}
	defer srv.close()
	progress, log := srv.progress, srv.log
	rawStore, rawDSN, err := srv.database(ctx, "raw", false)
	if err != nil {
		return res, err
	}
	defer srv.drop(rawStore)
	e2eStore, _, err := srv.database(ctx, "e2e", false)
	if err != nil {
		return res, err
	}
	defer srv.drop(e2eStore)
	var peer *peerRun
	if cfg.Peer != "" {
		db := srv.prefix + "_peer"
		dsn, err := withDatabase(srv.dsn, db)
		if err != nil {
			return res, err
		}
		peer = &peerRun{command: strings.Fields(cfg.Peer), admin: srv.admin, db: db, dsn: dsn}
		defer srv.admin.Conn().Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+db)
	}

	// generate makes the benchmark's events anew for every run, so that
	// no run's drain is measured with the previous run's events on the
	// heap.
	generate := func() ([]event.Event, []store.RawEvent, error) {
		fmt.Fprintf(progress, "generating %d events...\n", cfg.Events)
		evs, err := events(ctx, cfg.Events, 1)
		if err != nil {
			return nil, nil, err
		}
		if cfg.Order == "time" {
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

	var (
		bestOther float64 // clickhouse-client and one writer, measured in the first run
		last      drained
		workerCfg ingest.Config
	)
	// The generated events and rows are the harness's, not the worker's:
	// the process's memory limit is lifted while they are held, so that
	// the collector does not slow the raw inserts for them, and set again
	// for the drain once they are gone.
	limit := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(limit)
	for run := 1; run <= cfg.Runs; run++ {
		debug.SetMemoryLimit(math.MaxInt64)
		evs, rows, err := generate()
		if err != nil {
			return res, err
		}
		// 1. Raw inserts of the same rows: clickhouse-client and one
		// native writer in the first run, two native writers in every
		// run.
		if run == 1 {
			clientRate, clientCost, err := clientInsert(ctx, rawStore, rawDSN, rows)
			if err != nil {
				fmt.Fprintf(progress, "clickhouse-client insert skipped: %v\n", err)
			} else {
				res.Phases = append(res.Phases, Phase{"raw insert, clickhouse-client (TSV)", clientRate, clientCost, "same rows, one client"})
				bestOther = clientRate
			}
			if err := rawStore.Conn().Exec(ctx, "DROP TABLE IF EXISTS events_client"); err != nil {
				return res, err
			}
		}
		var raw float64
		for _, writers := range []int{1, 2} {
			if writers == 1 && run > 1 {
				continue
			}
			if err := rawStore.Conn().Exec(ctx, "TRUNCATE TABLE events"); err != nil {
				return res, err
			}
			if err := settle(ctx, rawStore); err != nil {
				return res, err
			}
			cpu := sampleCPU(0)
			rate, err := nativeInsert(ctx, rawStore, rows, writers, 50000)
			if err != nil {
				return res, err
			}
			cost := costSince(cpu, len(rows))
			if writers == 1 {
				bestOther = max(bestOther, rate)
			} else {
				raw, res.RawCost = rate, cost
			}
			if run == 1 {
				res.Phases = append(res.Phases, Phase{fmt.Sprintf("raw insert, native protocol, %d writer(s)", writers), rate, cost, "batches of 50k"})
			}
		}
		if err := rawStore.Conn().Exec(ctx, "TRUNCATE TABLE events"); err != nil {
			return res, err
		}

		// 2. Publish to a fresh embedded JetStream, then drain it into
		// ClickHouse with the ingest worker.
		var prof [2]string
		if run == 1 {
			prof = [2]string{cfg.CPUProfile, cfg.MemProfile}
		}
		rows = nil
		d, err := drain(ctx, e2eStore, &evs, cfg, peer, prof[0], prof[1], limit, log)
		if err != nil {
			return res, err
		}
		workerCfg, last = d.cfg, d
		res.PeakHeap, res.PeakLive = max(res.PeakHeap, d.heap.PeakInuse), max(res.PeakLive, d.heap.PeakLive)
		res.DrainHeap = d.heap
		res.BestRaw = max(bestOther, raw)
		res.Runs = append(res.Runs, IngestRun{Raw: raw, EndToEnd: d.rate, Ratio: d.rate / res.BestRaw, Peer: d.peerRate})
		if run == 1 {
			res.Phases = append(res.Phases,
				Phase{"publish to " + jetStreamName(res.ExternalNATS), d.pubRate, Cost{-1, -1, -1}, "PublishAsync, Nats-Msg-Id"},
				Phase{"JetStream delivery alone (fetch, AckAll; no parse, no insert)", d.deliveryRate, d.deliveryCost, "same backlog, other consumer"})
			if peer != nil {
				res.Phases = append(res.Phases, Phase{"peer: " + filepath.Base(peer.command[0]), d.peerRate, d.peerCost,
					"same stored events; its process's CPU in the commitflow column"})
			}
		}
		if cfg.Runs > 1 {
			fmt.Fprintf(progress, "run %d of %d: raw, 2 writers %.0f rows/s; end to end %.0f events/s; ratio %.2f\n",
				run, cfg.Runs, raw, d.rate, d.rate/res.BestRaw)
		}
	}
	res.Phases = append(res.Phases, Phase{"end to end: JetStream -> ingest -> ClickHouse", res.Runs[0].EndToEnd, last.cost,
		fmt.Sprintf("batches of %d in %d INSERTs, one AckAll each, backlog drained", workerCfg.BatchSize, workerCfg.InsertWriters)})
	res.Drain, res.Delivery = last.cost, last.deliveryCost
	return res, nil
}

// Write prints r: the phases, where the drain's CPU went, and the ratio of
// the end-to-end drain to the best raw insert, per run when there were
// several.
func (r IngestResult) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if r.ExternalNATS {
		fmt.Fprintf(tw, "benchmark (%d events in %s order, %d cores)\trows/s\tCPU µs/row: commitflow\tnats-server\tclickhouse\t\n", r.Events, r.Order, r.Cores)
	} else {
		fmt.Fprintf(tw, "benchmark (%d events in %s order, %d cores)\trows/s\tCPU µs/row: commitflow\tclickhouse\t\n", r.Events, r.Order, r.Cores)
	}
	for _, p := range r.Phases {
		nats := ""
		if r.ExternalNATS {
			nats = formatCost(p.Cost.NATS) + "\t"
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s%s\t%s\n", p.Name, p.Rate, formatCost(p.Cost.Self), nats, formatCost(p.Cost.ClickHouse), p.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	r.writeCeiling(w)
	ratios := make([]float64, len(r.Runs))
	for i, run := range r.Runs {
		ratios[i] = run.Ratio
	}
	if len(r.Runs) == 1 {
		fmt.Fprintf(w, "end-to-end / best raw insert = %.2f (target >= 0.50)\n", ratios[0])
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		peer := r.Runs[0].Peer > 0
		head := "run\traw, 2 writers (rows/s)\tend to end (events/s)\tratio to the run's best raw\t"
		if peer {
			head += "peer (events/s)\t"
		}
		fmt.Fprintln(tw, head)
		for i, run := range r.Runs {
			fmt.Fprintf(tw, "%d\t%.0f\t%.0f\t%.2f\t", i+1, run.Raw, run.EndToEnd, run.Ratio)
			if peer {
				fmt.Fprintf(tw, "%.0f\t", run.Peer)
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(w, "end-to-end / best raw insert: median %.2f over %d runs, %.2f-%.2f (target >= 0.50)\n",
			median(ratios), len(ratios), slices.Min(ratios), slices.Max(ratios))
	}
	var peers []float64
	for _, run := range r.Runs {
		if run.Peer > 0 {
			peers = append(peers, run.EndToEnd/run.Peer)
		}
	}
	switch {
	case len(peers) == 1:
		fmt.Fprintf(w, "end-to-end / peer = %.2f (target >= 3)\n", peers[0])
	case len(peers) > 1:
		fmt.Fprintf(w, "end-to-end / peer: median %.2f over %d runs, %.2f-%.2f (target >= 3)\n",
			median(peers), len(peers), slices.Min(peers), slices.Max(peers))
	}
	process := "process with embedded NATS"
	if r.ExternalNATS {
		process = "this process; NATS apart"
	}
	_, err := fmt.Fprintf(w, "peak Go heap during the drain (%s): %d MiB in use, %d MiB live after a collection\n",
		process, r.PeakHeap>>20, r.PeakLive>>20)
	if err != nil || r.Events == 0 {
		return err
	}
	h, n := r.DrainHeap, float64(r.Events)
	_, err = fmt.Fprintf(w, "Go heap per event in the drain: %.0f bytes allocated, GC CPU %.1f µs (%d collections)\n",
		float64(h.Allocated)/n, float64(h.GCCPU.Microseconds())/n, h.GCs)
	return err
}

// writeCeiling writes where the end-to-end drain's CPU went, per event,
// the total against that of the raw insert from two writers, and the
// fastest drain this machine would allow if parsing, validating, batching
// and garbage collection cost nothing: its cores divided by the CPU per
// event of what no ingest code can save (JetStream delivering the
// message, sending the row to ClickHouse, ClickHouse storing it).
func (r IngestResult) writeCeiling(w io.Writer) {
	e2e, del, raw := r.Drain, r.Delivery, r.RawCost
	if e2e.Self < 0 || e2e.ClickHouse < 0 || del.Self < 0 || raw.Self < 0 ||
		r.ExternalNATS && (e2e.NATS < 0 || del.NATS < 0) {
		fmt.Fprintln(w, "CPU per event: not measured (needs /proc and a local clickhouse-server)")
		return
	}
	nats, delNATS := "", 0.0
	if r.ExternalNATS {
		nats, delNATS = fmt.Sprintf(", nats-server %.1f µs (delivery alone %.1f)", e2e.NATS, del.NATS), del.NATS
	}
	fmt.Fprintf(w, "CPU per event end to end: commitflow %.1f µs (JetStream delivery %.1f, sending the row to ClickHouse %.1f, "+
		"parsing, validation, batching and GC %.1f)%s, ClickHouse %.1f µs\n",
		e2e.Self, del.Self, raw.Self, max(0, e2e.Self-del.Self-raw.Self), nats, e2e.ClickHouse)
	if raw.ClickHouse >= 0 {
		total, bare := e2e.Self+max(0, e2e.NATS)+e2e.ClickHouse, raw.Self+raw.ClickHouse
		fmt.Fprintf(w, "total CPU per event end to end %.1f µs, %.2f x the raw insert from two writers (%.1f µs)\n", total, total/bare, bare)
	}
	cores := float64(r.Cores)
	ceiling := cores * 1e6 / (del.Self + delNATS + raw.Self + e2e.ClickHouse)
	fmt.Fprintf(w, "ceiling on %.0f cores with parsing, validation, batching and GC free: %.0f events/s, %.2f of the best raw insert\n",
		cores, ceiling, ceiling/r.BestRaw)
}

// drained is the result of one end-to-end drain.
type drained struct {
	rate, pubRate, deliveryRate, peerRate float64
	// cost is the CPU per event of the drain, deliveryCost that of
	// JetStream delivering the same backlog to a consumer that only
	// acknowledges it.
	cost, deliveryCost, peerCost Cost
	heap                         heapStats
	cfg                          ingest.Config
}

// embeddedJetStream starts an embedded NATS server storing under dir with
// the streams of opt declared, and returns a client and the function that
// stops both.
func embeddedJetStream(ctx context.Context, dir string, opt bus.Options, log *slog.Logger) (jetstream.JetStream, func(), error) {
	emb, err := bus.StartEmbedded(ctx, filepath.Join(dir, "nats"), "127.0.0.1:-1", log)
	if err != nil {
		return nil, nil, err
	}
	nc, js, err := bus.Connect(ctx, emb.ClientURL(), log)
	if err != nil {
		emb.Shutdown()
		return nil, nil, err
	}
	stop := func() {
		if err := nc.Drain(); err != nil {
			log.Warn("shutdown", "err", err)
		}
		emb.Shutdown()
	}
	opt.Logger = log
	if err := bus.Declare(ctx, js, opt); err != nil {
		stop()
		return nil, nil, err
	}
	return js, stop, nil
}

// externalJetStream starts bin, a nats-server, with JetStream storing
// under dir on a free loopback port, declares the streams of opt, and
// returns a client, the server's process id and the function that stops
// both.
func externalJetStream(ctx context.Context, bin, dir string, opt bus.Options, log *slog.Logger) (jetstream.JetStream, int, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, nil, fmt.Errorf("nats-server port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var out bytes.Buffer
	cmd := exec.Command(bin, "--jetstream", "--store_dir", filepath.Join(dir, "nats"), "--addr", "127.0.0.1", "--port", strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	proc, err := startProcess(cmd)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("start %s: %w", bin, err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-proc.done:
			return nil, 0, nil, fmt.Errorf("%s exited before accepting connections (%v): %s", bin, proc.err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			proc.stop()
			return nil, 0, nil, fmt.Errorf("%s does not accept connections on %s: %s", bin, addr, out.String())
		}
	}
	nc, js, err := bus.Connect(ctx, "nats://"+addr, log)
	if err != nil {
		proc.stop()
		return nil, 0, nil, err
	}
	stop := func() {
		if err := nc.Drain(); err != nil {
			log.Warn("shutdown", "err", err)
		}
		proc.stop()
	}
	opt.Logger = log
	if err := bus.Declare(ctx, js, opt); err != nil {
		stop()
		return nil, 0, nil, err
	}
	return js, cmd.Process.Pid, stop, nil
}

// jetStreamName names where the benchmark's JetStream runs.
func jetStreamName(external bool) string {
	if external {
		return "nats-server"
	}
	return "embedded JetStream"
}

// drain publishes *evs to a fresh JetStream (embedded, or cfg.NATSServer),
// empties st, and times an ingest worker draining the backlog into st,
// then peer, if not nil, on the same messages. It sets *evs to nil once
// they are published: a running ingest process does not hold the events it
// consumes, so the drain must not be measured scanning a heap of them;
// then it sets the process's memory limit to memLimit. It profiles the
// drain into cpuProfile and memProfile when they are set.
func drain(ctx context.Context, st *store.Store, evs *[]event.Event, cfg IngestConfig, peer *peerRun, cpuProfile, memProfile string, memLimit int64, log *slog.Logger) (drained, error) {
	var d drained
	if err := st.Conn().Exec(ctx, "TRUNCATE TABLE events"); err != nil {
		return d, err
	}
	dir, err := os.MkdirTemp("", "commitflow-bench-nats-")
	if err != nil {
		return d, err
	}
	defer os.RemoveAll(dir)
	var (
		js      jetstream.JetStream
		natsPid int
		stop    func()
	)
	if cfg.NATSServer != "" {
		js, natsPid, stop, err = externalJetStream(ctx, cfg.NATSServer, dir, cfg.Streams, log)
	} else {
		js, stop, err = embeddedJetStream(ctx, dir, cfg.Streams, log)
	}
	if err != nil {
		return d, err
	}
	defer stop()
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		return d, err
	}
	pub := bus.NewPublisher(js, parts)
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
	debug.SetMemoryLimit(memLimit)
	if d.deliveryRate, d.deliveryCost, err = deliverOnly(ctx, js, total, natsPid); err != nil {
		return d, err
	}
	runtime.GC()

	w, err := ingest.New(js, st, cfg.Worker, nil, log)
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
	cpu := sampleCPU(natsPid)
	start = time.Now()
	go func() { done <- w.Run(wctx) }()
	err = waitDrained(ctx, js)
	d.rate = float64(total) / time.Since(start).Seconds()
	d.cost = costSince(cpu, total)
	stopProfile()
	if err == nil {
		err = writeHeapProfile(memProfile)
	}
	cancel()
	<-done
	d.heap = peak()
	if err != nil {
		return d, err
	}
	if cnt, err := st.CountEvents(ctx, tenant); err != nil || cnt != uint64(total) {
		return d, fmt.Errorf("end to end stored %d events, want %d (%v)", cnt, total, err)
	}
	if peer != nil {
		if d.peerRate, d.peerCost, err = peer.run(ctx, js, total, natsPid); err != nil {
			return d, err
		}
	}
	return d, nil
}

// peerRun is IngestConfig.Peer: its command, and the database it stores
// into on the server of admin.
type peerRun struct {
	command []string
	admin   *store.Store
	db, dsn string
}

// peerConsumer is the durable push consumer made for a peer, and its
// deliver group.
const peerConsumer = "peer"

// run starts the peer on the stored events of js (natsPid is its external
// server, 0 when embedded), waits until the tables of its database hold n
// rows, stops it, and returns its events/s and CPU per event (Self: the
// peer's process).
func (p *peerRun) run(ctx context.Context, js jetstream.JetStream, n, natsPid int) (float64, Cost, error) {
	conn := p.admin.Conn()
	if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+p.db); err != nil {
		return 0, Cost{}, err
	}
	if err := conn.Exec(ctx, "CREATE DATABASE "+p.db); err != nil {
		return 0, Cost{}, err
	}
	_, err := js.CreateOrUpdatePushConsumer(ctx, bus.EventsStream, jetstream.ConsumerConfig{
		Durable: peerConsumer, DeliverSubject: "_peer.deliver", DeliverGroup: peerConsumer, FilterSubject: "cf.events.>",
		DeliverPolicy: jetstream.DeliverAllPolicy, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxAckPending: 60_000,
	})
	if err != nil {
		return 0, Cost{}, fmt.Errorf("peer consumer: %w", err)
	}
	defer js.DeleteConsumer(context.WithoutCancel(ctx), bus.EventsStream, peerConsumer)
	cmd := exec.Command(p.command[0], p.command[1:]...)
	cmd.Env = append(os.Environ(), "NATS_URL="+js.Conn().ConnectedUrl(), "NATS_STREAM="+bus.EventsStream, "NATS_CONSUMER="+peerConsumer,
		"CLICKHOUSE_DSN="+p.dsn, "CLICKHOUSE_DATABASE="+p.db)
	out := &tail{max: 8 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	cpu := sampleCPU(natsPid)
	start := time.Now()
	proc, err := startProcess(cmd)
	if err != nil {
		return 0, Cost{}, fmt.Errorf("peer: %w", err)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var rows uint64
		if err := conn.QueryRow(ctx, "SELECT toUInt64(sum(rows)) FROM system.parts WHERE database = ? AND active", p.db).Scan(&rows); err != nil {
			proc.stop()
			return 0, Cost{}, fmt.Errorf("peer: count rows: %w", err)
		}
		if rows >= uint64(n) {
			break
		}
		select {
		case <-proc.done:
			return 0, Cost{}, fmt.Errorf("peer %s exited after storing %d of %d events (%v): %s", p.command[0], rows, n, proc.err, out.String())
		case <-ctx.Done():
			proc.stop()
			return 0, Cost{}, ctx.Err()
		case <-tick.C:
		}
	}
	rate := float64(n) / time.Since(start).Seconds()
	cost := costSince(cpu, n)
	self, ok := procCPU(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "stat"))
	cost.Self = -1
	if ok {
		cost.Self = float64(self.Microseconds()) / float64(n)
	}
	proc.stop()
	return rate, cost, nil
}

// process is a started command of the benchmark (a nats-server, a peer):
// done is closed once it exited, with err its exit status.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startProcess starts cmd.
func startProcess(cmd *exec.Cmd) (*process, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop asks the process to end (SIGTERM) and waits until it has, killing
// it after 10 seconds.
func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// deliverOnly times JetStream delivering the n messages of the events
// stream to a consumer of its own, fetched in batches of 50k and
// acknowledged with one AckAll each as the ingest worker does, but neither
// parsed nor stored: the part of the end-to-end cost no ingest code can
// save. natsPid is the external nats-server's process, 0 when embedded. It
// deletes the consumer at the end.
func deliverOnly(ctx context.Context, js jetstream.JetStream, n, natsPid int) (float64, Cost, error) {
	const name = "bench-delivery"
	cons, err := js.CreateOrUpdateConsumer(ctx, bus.EventsStream, jetstream.ConsumerConfig{
		Durable: name, AckPolicy: jetstream.AckAllPolicy, AckWait: time.Minute, MaxAckPending: 100_000,
	})
	if err != nil {
		return 0, Cost{}, fmt.Errorf("delivery consumer: %w", err)
	}
	defer js.DeleteConsumer(context.WithoutCancel(ctx), bus.EventsStream, name)
	cpu := sampleCPU(natsPid)
	start := time.Now()
	for got := 0; got < n; {
		b, err := cons.Fetch(50000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return 0, Cost{}, fmt.Errorf("delivery fetch: %w", err)
		}
		var last jetstream.Msg
		for m := range b.Messages() {
			last = m
			got++
		}
		if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return 0, Cost{}, fmt.Errorf("delivery fetch: %w", err)
		}
		if last != nil {
			if err := last.Ack(); err != nil {
				return 0, Cost{}, fmt.Errorf("delivery ack: %w", err)
			}
		}
		if ctx.Err() != nil {
			return 0, Cost{}, ctx.Err()
		}
	}
	rate := float64(n) / time.Since(start).Seconds()
	return rate, costSince(cpu, n), nil
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
		// Not found: the worker has not created its generation yet, or
		// the server lists it before it answers for it.
		cons, err := bus.CurrentIngest(ctx, js)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		if err == nil {
			info, err := cons.Info(ctx)
			if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return err
			}
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= last {
				return nil
			}
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
func clientInsert(ctx context.Context, st *store.Store, dsn string, rows []store.RawEvent) (float64, Cost, error) {
	bin, err := exec.LookPath("clickhouse-client")
	if err != nil {
		return 0, Cost{}, errors.New("clickhouse-client is not installed")
	}
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return 0, Cost{}, err
	}
	host, port, _ := strings.Cut(opt.Addr[0], ":")
	f, err := os.CreateTemp("", "commitflow-bench-*.tsv")
	if err != nil {
		return 0, Cost{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	esc := strings.NewReplacer("\\", "\\\\", "\t", "\\t", "\n", "\\n")
	for _, r := range rows {
		fmt.Fprintf(bw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", esc.Replace(r.Tenant), esc.Replace(r.OpportunityID), esc.Replace(r.Source),
			esc.Replace(r.EventID), esc.Replace(r.Type), r.OccurredAt.UTC().Format(time.DateTime), r.ReceivedAt.UTC().Format(time.DateTime), r.StreamSeq, esc.Replace(string(r.Payload)))
	}
	if err := bw.Flush(); err != nil {
		return 0, Cost{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, Cost{}, err
	}
	if err := st.Conn().Exec(ctx, "CREATE TABLE events_client AS events"); err != nil {
		return 0, Cost{}, err
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
	cpu := sampleCPU(0)
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, Cost{}, fmt.Errorf("%s: %w: %s", filepath.Base(bin), err, stderr.String())
	}
	rate := float64(len(rows)) / time.Since(start).Seconds()
	return rate, costSince(cpu, len(rows)), nil
}
