package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/commitflow/commitflow/internal/bench"
	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/node"
)

// cmdBench runs one benchmark of internal/bench and prints its result:
// commitflow bench ingest|derive|api|import [flags].
func cmdBench(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("bench: say what to measure: bench ingest | bench derive | bench api | bench import")
	}
	switch args[0] {
	case "ingest":
		return benchIngest(ctx, args[1:], stdout)
	case "derive":
		return benchDerive(ctx, args[1:], stdout)
	case "api":
		return benchAPI(ctx, args[1:], stdout)
	case "import":
		return benchImport(ctx, args[1:], stdout)
	}
	return fmt.Errorf("bench: unknown benchmark %q (want ingest, derive, api or import)", args[0])
}

func benchIngest(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("bench ingest", nil, "").withCommon().withGC()
	cfg := bench.IngestConfig{Progress: os.Stderr}
	s.fs.IntVar(&cfg.Events, "events", 1_000_000, "events to ingest")
	s.fs.IntVar(&cfg.Runs, "runs", 1, "measure the raw insert from two writers and the end-to-end drain this many times, alternately, and report every run's ratio and their median")
	s.fs.IntVar(&cfg.Worker.BatchSize, "batch", 0, "ingest fetch batch size (0: the worker's default)")
	s.fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the (first) end-to-end drain to this file")
	s.fs.StringVar(&cfg.MemProfile, "memprofile", "", "write a heap profile, taken as the (first) drain ends, to this file")
	s.fs.StringVar(&cfg.Order, "order", "time", "order of the events in the stream: time (as they happen, like a live feed) or opportunity (one deal's history after another, like a bulk backfill)")
	s.fs.StringVar(&cfg.Peer, "peer", "", "command of another ingest pipeline (e.g. telegraf --config deploy/bench/telegraf.conf) timed after each drain on the same stored events, with NATS_URL, NATS_STREAM, NATS_CONSUMER (a durable push consumer made for it, deliver group of the same name) and CLICKHOUSE_DSN (an empty database of its own) in its environment, until that database holds every event")
	s.fs.StringVar(&cfg.NATSServer, "nats-server", "", "path of a nats-server binary: each drain then runs JetStream in a nats-server process of its own instead of embedded, and its CPU is printed apart (go build -o bin/nats-server github.com/nats-io/nats-server/v2)")
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	if cfg.Order != "time" && cfg.Order != "opportunity" {
		return fmt.Errorf("bench ingest: --order %q: want time or opportunity", cfg.Order)
	}
	if cfg.Runs < 1 {
		return fmt.Errorf("bench ingest: --runs %d: want at least 1", cfg.Runs)
	}
	defer s.close()
	if err := s.openStore(ctx); err != nil {
		return err
	}
	cfg.DSN, cfg.Logger = s.dsn, s.log
	cfg.Streams = bus.Options{Partitions: s.c.Partitions, DuplicateWindow: s.c.DuplicateWindow, MaxAge: s.c.Retention}
	res, err := bench.Ingest(ctx, cfg)
	if err != nil {
		return err
	}
	return res.Write(stdout)
}

func benchDerive(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("bench derive", nil, "")
	n := s.fs.Int("events", 500_000, "events to derive from")
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	res, err := bench.Derive(ctx, *n)
	if err != nil {
		return err
	}
	return res.Write(stdout)
}

func benchAPI(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("bench api", nil, "").withCommon().withGC()
	cfg := bench.APIConfig{Progress: os.Stderr}
	s.fs.IntVar(&cfg.Events, "events", 1_000_000, "raw events to load")
	s.fs.IntVar(&cfg.Requests, "requests", 20, "requests per endpoint")
	s.fs.BoolVar(&cfg.Reuse, "reuse", false, "reuse the data loaded by an earlier run instead of loading again")
	s.fs.StringVar(&cfg.Only, "only", "", "time only the endpoints whose name contains this text, e.g. \"forecast\"")
	s.fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the timed requests to this file")
	s.fs.BoolVar(&cfg.Compact, "compact", false, "after --rewrite, compact opportunity_state as run does above --compact-above (OPTIMIZE TABLE ... FINAL), so that no superseded rows are left")
	s.fs.IntVar(&cfg.Clients, "clients", 0, "concurrent mode: this many clients replay the dashboard's requests (funnel, trend, cycle time, stalls, missed, movement, CRM stages, forecast) for --duration and requests/s, p50/p95/p99, errors and 503s are printed; 0 times each endpoint from one client, without the answer cache")
	s.fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long the concurrent mode runs")
	s.fs.BoolVar(&cfg.Cache, "cache", true, "serve the concurrent mode with the answer cache and single-flight, as run does; false computes every request")
	cacheSize := s.fs.String("answer-cache", "64MiB", "size of the answer cache in the concurrent mode, as run's --answer-cache")
	s.fs.IntVar(&cfg.ForecastModels, "forecast-models", forecast.DefaultMaxModels, "fitted forecast models kept, as run's --forecast-models (the data does not change while timing, so the forecast fits once); 0 fits the model on every request")
	s.fs.IntVar(&cfg.Rewrite, "rewrite", 20, "before timing, write this many per thousand opportunities' states again with a newer version, as derivation does for the deals that change: the superseded rows a live table holds until merges drop them")
	config.NotNegative(s.fs, "clients")
	config.NotNegative(s.fs, "forecast-models")
	config.Positive(s.fs, "duration")
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	var err error
	if cfg.CacheBytes, err = answerCacheSize(*cacheSize); err != nil {
		return fmt.Errorf("bench api: --answer-cache: %w", err)
	}
	defer s.close()
	if err := s.openStore(ctx); err != nil {
		return err
	}
	cfg.DSN, cfg.Logger = s.dsn, s.log
	res, err := bench.API(ctx, cfg)
	if err != nil {
		return err
	}
	return res.Write(stdout)
}

func benchImport(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("bench import", nil, "").withCommon().withGC()
	cfg := bench.ImportConfig{Progress: os.Stderr}
	s.fs.IntVar(&cfg.Rows, "rows", 1_000_000, "rows of the generated Salesforce OpportunityHistory export (five a deal, in date order)")
	s.fs.StringVar(&cfg.CSV, "csv", "", "import this OpportunityHistory export instead of a generated one")
	s.fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile of the import to this file")
	s.fs.StringVar(&cfg.MemProfile, "memprofile", "", "write a heap profile to this file once every event is derived, and one to this file's name with .start as the import starts (its base: go tool pprof -sample_index alloc_space -base FILE.start FILE)")
	deriveCache := s.fs.String("derive-cache", "256MiB", "as run's --derive-cache")
	config.Positive(s.fs, "rows")
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	deriveBytes, err := config.ParseSize(*deriveCache)
	if err != nil || deriveBytes <= 0 {
		return fmt.Errorf("bench import: --derive-cache %q: want a size above 0, e.g. 256MiB", *deriveCache)
	}
	defer s.close()
	if err := s.openStore(ctx); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench import: the importer: %w", err)
	}
	cfg.DSN, cfg.Logger = s.dsn, s.log
	cfg.Importer = []string{exe, "import"}
	cfg.Node = node.Config{Common: s.c, DeriveCacheBytes: deriveBytes}
	res, err := bench.Import(ctx, cfg)
	if err != nil {
		return err
	}
	return res.Write(stdout)
}
