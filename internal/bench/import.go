package bench

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/importer"
	"github.com/commitflow/commitflow/internal/node"
)

// ImportConfig is what Import measures and where.
type ImportConfig struct {
	// DSN is the ClickHouse server measured. Import stores into the
	// database <Prefix>_import of that server, which it creates empty and
	// leaves for a look afterwards (a later run empties it).
	DSN string
	// Prefix starts the database's name; default commitflow_bench.
	Prefix string
	// Rows is the size of the generated Salesforce OpportunityHistory
	// export imported (gen.SalesforceHistory: five rows a deal, in date
	// order); CSV, when set, names an export of that format read instead.
	Rows int
	CSV  string
	// Node is the pipeline the export is imported into, as run's flags
	// make it (zero: run's defaults). Import sets its ClickHouse (the
	// database above), Data (a temporary directory, NATS embedded on a
	// free loopback port) and HTTP (a free loopback port).
	Node node.Config
	// Importer, when set, is the command (program and leading arguments)
	// of commitflow import: the export is written to a file and that
	// process imports it, as a user's does, its CPU measured apart.
	// Without it this process imports the export (the rows it parsed stay
	// in its heap meanwhile).
	Importer []string
	// CPUProfile, when set, is the file the CPU profile of the import
	// goes to.
	CPUProfile string
	// MemProfile, when set, is the file a heap profile goes to once every
	// event is derived; one goes to MemProfile+".start" as the import
	// starts, the base of the allocations during the import.
	MemProfile string
	// Progress receives a line per step; nil discards them.
	Progress io.Writer
	// Logger receives the pipeline's logs; nil discards them.
	Logger *slog.Logger
}

// ImportResult is what Import measured: when the rows were published,
// stored in ClickHouse and derived, counted from the start of the import
// (after parsing), and the CPU each row took.
type ImportResult struct {
	Rows, Events               int
	Parsed                     time.Duration // parsing the export, before the clock starts
	Published, Stored, Derived time.Duration
	// Cost is the CPU per row of this process (the embedded NATS server,
	// the ingest and derive workers, and the importer unless it ran apart)
	// and of ClickHouse, from the start of the import until every row is
	// derived; Importer that of the importer's process (negative when it
	// ran in this one).
	Cost     Cost
	Importer float64
	// ImporterRSS is the peak resident memory of the importer's process
	// in bytes (0 when it ran in this one).
	ImporterRSS int64
	Heap        heapStats
}

// Import imports an OpportunityHistory export as commitflow import does
// (cfg.Importer, or in this process over a NATS connection of its own)
// into a pipeline that runs in this process as commitflow run does, and
// times it until every event is stored and derived.
func Import(ctx context.Context, cfg ImportConfig) (ImportResult, error) {
	var res ImportResult
	srv, err := connect(ctx, cfg.DSN, cfg.Prefix, cfg.Progress, cfg.Logger)
	if err != nil {
		return res, err
	}
	defer srv.close()
	progress, log := srv.progress, srv.log

	data := []byte(nil)
	if cfg.CSV != "" {
		if data, err = os.ReadFile(cfg.CSV); err != nil {
			return res, err
		}
	} else {
		if cfg.Rows < 1 {
			return res, fmt.Errorf("bench import: %d rows: want at least 1", cfg.Rows)
		}
		fmt.Fprintf(progress, "generating an OpportunityHistory export of %d rows\n", cfg.Rows)
		data = gen.SalesforceHistory(cfg.Rows)
	}
	start := time.Now()
	rows, err := importer.SalesforceHistory(tenant, "USD").Parse(data)
	if err != nil {
		return res, fmt.Errorf("bench import: %w", err)
	}
	res.Parsed = time.Since(start)
	res.Rows = len(rows)
	for _, r := range rows {
		res.Events += len(r.Events)
	}
	res.Importer = -1

	st, dsn, err := srv.database(ctx, "import", false)
	if err != nil {
		return res, err
	}
	st.Close()
	dir, err := os.MkdirTemp("", "commitflow-bench-import-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	ncfg := cfg.Node
	ncfg.ClickHouse, ncfg.NATS, ncfg.Data, ncfg.HTTP = dsn, "", dir, "127.0.0.1:0"
	ncfg.NATSListen = "127.0.0.1:-1" // a free port
	ncfg.MetricsHTTP = ""
	// The streams' settings left zero are run's flags' defaults.
	var def config.Common
	def.Register(flag.NewFlagSet("defaults", flag.ContinueOnError))
	ncfg.Partitions = cmp.Or(ncfg.Partitions, def.Partitions)
	ncfg.Replicas = cmp.Or(ncfg.Replicas, def.Replicas)
	ncfg.DuplicateWindow = cmp.Or(ncfg.DuplicateWindow, def.DuplicateWindow)
	ncfg.Retention = cmp.Or(ncfg.Retention, def.Retention)
	if ncfg.Logger == nil {
		ncfg.Logger = log
	}
	n, err := node.New(ctx, ncfg)
	if err != nil {
		return res, err
	}
	defer n.Close()
	nc, js, err := bus.Connect(ctx, n.EmbeddedNATS(), log)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	publish := func() error {
		parts, err := bus.Partitions(ctx, js)
		if err != nil {
			return err
		}
		pub := bus.NewPublisher(js, parts).WithOptions(bus.PublishOptions{Logger: log})
		sum, err := importer.Run(ctx, rows, importer.Key(data, tenant), pub, importer.Options{Progress: progress, ProgressEvery: 10 * time.Second})
		if err == nil && len(sum.Refused) > 0 {
			err = fmt.Errorf("%d rows refused, the first on line %d: %s", len(sum.Refused), sum.Refused[0].Line, sum.Refused[0].Reason)
		}
		return err
	}
	var (
		importerCPU time.Duration
		importerRSS int64
	)
	if len(cfg.Importer) > 0 {
		path := filepath.Join(dir, "history.csv")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return res, err
		}
		rows, data = nil, nil // what the importer's process holds, not this one
		runtime.GC()
		args := append(slices.Clone(cfg.Importer[1:]), "--format", "salesforce-history", "--tenant", tenant, "--currency", "USD",
			"--nats", n.EmbeddedNATS(), "--data", dir, path)
		publish = func() error {
			cmd := exec.CommandContext(ctx, cfg.Importer[0], args...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, progress
			if err := cmd.Start(); err != nil {
				return err
			}
			peak := watchRSS(cmd.Process.Pid)
			err := cmd.Wait()
			importerRSS = peak()
			if cmd.ProcessState != nil {
				importerCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			if err != nil {
				return fmt.Errorf("%s: %w\n%s", strings.Join(cfg.Importer, " "), err, out.Bytes())
			}
			return nil
		}
	}

	stopProfile, err := startCPUProfile(cfg.CPUProfile)
	if err != nil {
		return res, err
	}
	defer stopProfile()
	fmt.Fprintf(progress, "importing %d rows (%d events) into a pipeline on database %s\n", res.Rows, res.Events, st.Database())
	if cfg.MemProfile != "" {
		if err := writeHeapProfile(cfg.MemProfile + ".start"); err != nil {
			return res, err
		}
	}
	heap := watchHeap()
	cpu := sampleCPU(0)
	start = time.Now()
	published := make(chan error, 1)
	go func() { published <- publish() }()
	if err := waitImported(ctx, js, published, start, &res, progress); err != nil {
		heap()
		return res, err
	}
	res.Cost = costSince(cpu, res.Rows)
	res.Heap = heap()
	if err := writeHeapProfile(cfg.MemProfile); err != nil {
		return res, err
	}
	if len(cfg.Importer) > 0 {
		res.Importer = float64(importerCPU.Microseconds()) / float64(res.Rows)
		res.ImporterRSS = importerRSS
	}
	return res, nil
}

// waitImported waits until the import has published every row (an
// error from published ends it), ingest has stored every event and derive
// has derived them, and sets the times of res.
func waitImported(ctx context.Context, js jetstream.JetStream, published <-chan error, start time.Time, res *ImportResult, progress io.Writer) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case err := <-published:
			if err != nil {
				return fmt.Errorf("bench import: %w", err)
			}
			res.Published = time.Since(start)
			published = nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if published != nil {
			continue
		}
		st, err := bus.ReadStatus(ctx, js)
		if err != nil {
			return fmt.Errorf("bench import: %w", err)
		}
		ingest := uint64(1)
		if st.Ingest != nil {
			ingest = st.Ingest.Pending + uint64(st.Ingest.AckPending)
		}
		derive := st.Derive.Pending + uint64(st.Derive.AckPending)
		if ingest == 0 && res.Stored == 0 {
			res.Stored = time.Since(start)
		}
		if ingest == 0 && derive == 0 {
			res.Derived = time.Since(start)
			return nil
		}
		if time.Since(last) >= 10*time.Second {
			fmt.Fprintf(progress, "%s: %d events to store, %d to derive\n", time.Since(start).Round(time.Second), ingest, derive)
			last = time.Now()
		}
	}
}

// Write prints r.
func (r ImportResult) Write(w io.Writer) error {
	rate := func(d time.Duration) float64 { return float64(r.Rows) / d.Seconds() }
	inProcess, apart := ", and the importer", ""
	if r.Importer >= 0 {
		inProcess, apart = "", ", the importer "+formatCost(r.Importer)
	}
	rss := ""
	if r.ImporterRSS > 0 {
		rss = fmt.Sprintf("; the importer's peak RSS %d MiB", r.ImporterRSS>>20)
	}
	_, err := fmt.Fprintf(w, `%d rows (%d events), parsed in %s
published after %s (%.0f rows/s)
stored after %s (%.0f rows/s)
derived after %s: %.0f rows/s, %.0f events/s end to end
CPU µs a row: commitflow %s (NATS, ingest and derive%s), ClickHouse %s%s
Go heap: peak live %d MiB, %d collections, collector CPU %s%s
`, r.Rows, r.Events, r.Parsed.Round(time.Millisecond),
		r.Published.Round(time.Millisecond), rate(r.Published),
		r.Stored.Round(time.Millisecond), rate(r.Stored),
		r.Derived.Round(time.Millisecond), rate(r.Derived), float64(r.Events)/r.Derived.Seconds(),
		formatCost(r.Cost.Self), inProcess, formatCost(r.Cost.ClickHouse), apart,
		r.Heap.PeakLive>>20, r.Heap.GCs, r.Heap.GCCPU.Round(time.Second), rss)
	return err
}

// watchRSS reads the peak resident memory of process pid (VmHWM in
// /proc) every 100 ms until the function it returns is called, which
// returns the last read, in bytes; 0 where /proc has none. (The child's
// rusage would not do: Linux carries the parent's peak over to a child
// it forks and execs.)
func watchRSS(pid int) func() int64 {
	var peak atomic.Int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		defer close(stopped)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if b, err := os.ReadFile(path); err == nil {
				for line := range strings.Lines(string(b)) {
					if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						kib, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
						peak.Store(max(peak.Load(), kib<<10))
					}
				}
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() int64 {
		close(done)
		<-stopped
		return peak.Load()
	}
}
