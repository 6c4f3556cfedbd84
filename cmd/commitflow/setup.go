package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/chserver"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/node"
	"github.com/commitflow/commitflow/internal/store"
)

// setup is what every subcommand does before its own work: it makes the
// command's flag set with the flags the command shares with others, parses
// the arguments (config.Parse binds each flag to its environment
// variable), makes the logger, sets the garbage collector, and opens the
// servers the command asks for, which close stops in reverse order.
type setup struct {
	fs *flag.FlagSet
	// c holds the common flags, registered by withCommon.
	c      config.Common
	common bool
	// gc holds the garbage collector's flags, registered by withGC.
	gc    config.GC
	useGC bool
	// ladderFile and laddersDir are --ladder and --ladders, registered
	// by withLadders.
	ladderFile, laddersDir string
	// natsFlag, clickhouseFlag and dataFlag are --nats, --clickhouse and
	// --data of the commands that find the servers of a commitflow run,
	// registered by withRun.
	natsFlag, clickhouseFlag, dataFlag string
	// level is the log level of a command without --log-level; empty
	// discards its logs.
	level string
	log   *slog.Logger

	// What the command opened.
	dsn     string           // the ClickHouse DSN in use
	ch      *chserver.Server // the managed ClickHouse; nil when given a DSN
	st      *store.Store
	nc      *nats.Conn
	js      jetstream.JetStream
	embNATS string // the embedded NATS server's URL; empty when given one
	closers []func(context.Context) error
}

// newSetup makes the flag set of the command name, printing its usage and
// errors to out (nil: stderr). level is the log level when the command
// has no --log-level (withCommon); empty discards its logs.
func newSetup(name string, out io.Writer, level string) *setup {
	s := &setup{fs: flag.NewFlagSet(name, flag.ContinueOnError), level: level}
	if out != nil {
		s.fs.SetOutput(out)
	}
	return s
}

// withCommon registers the common flags (config.Common).
func (s *setup) withCommon() *setup {
	s.c.Register(s.fs)
	s.common = true
	return s
}

// withGC registers the garbage collector's flags; parse applies them.
func (s *setup) withGC() *setup {
	s.gc.Register(s.fs)
	s.useGC = true
	return s
}

// withLadders registers --ladder and --ladders, read by loadLadders.
func (s *setup) withLadders() *setup {
	s.fs.StringVar(&s.ladderFile, "ladder", "", "ladder configuration file of every tenant without its own; empty uses the shipped default")
	s.fs.StringVar(&s.laddersDir, "ladders", "", laddersUsage)
	return s
}

// withRun registers --nats, --data and, when clickhouse is set,
// --clickhouse: the servers of the commitflow run under --data, or others.
func (s *setup) withRun(clickhouse bool) *setup {
	s.fs.StringVar(&s.natsFlag, "nats", "", "NATS `URL`; empty: the embedded server of the commitflow run under --data, while it runs")
	found := "where its embedded NATS is found"
	if clickhouse {
		s.fs.StringVar(&s.clickhouseFlag, "clickhouse", "", "ClickHouse `DSN`; empty: the managed server of the commitflow run under --data, while it runs")
		found = "where its embedded NATS and managed ClickHouse are found"
	}
	s.fs.StringVar(&s.dataFlag, "data", config.DefaultDataDir(), "data `directory` of commitflow run: "+found)
	return s
}

// parse parses args, then makes the logger and sets the garbage collector.
func (s *setup) parse(ctx context.Context, args []string) error {
	if err := config.Parse(ctx, s.fs, args); err != nil {
		return err
	}
	switch {
	case s.common:
		s.log = newLogger(s.c.LogLevel)
	case s.level != "":
		s.log = newLogger(s.level)
	default:
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.useGC {
		return applyGC(s.gc, s.log)
	}
	return nil
}

// loadLadders loads the ladders of --ladder and --ladders and logs them.
func (s *setup) loadLadders() (*ladder.Set, error) {
	ls, err := ladder.LoadSet(s.ladderFile, s.laddersDir)
	if err != nil {
		return nil, err
	}
	logLadders(s.log, ls)
	return ls, nil
}

// clickHouseDSN is --clickhouse, or the DSN of the managed ClickHouse of
// the commitflow run under --data (locateClickHouse).
func (s *setup) clickHouseDSN() (string, error) {
	return locateClickHouse(s.clickhouseFlag, s.dataFlag)
}

// connectRun connects to --nats, or to the embedded NATS server of the
// commitflow run under --data (locateNATS), and returns its URL (empty
// when there is none); the connection is closed with the rest. An error
// connecting says where the URL was read.
func (s *setup) connectRun(ctx context.Context) (string, jetstream.JetStream, error) {
	url, from, err := locateNATS(s.natsFlag, s.dataFlag)
	if err != nil {
		return "", nil, err
	}
	nc, js, err := bus.Connect(ctx, url, s.log)
	if err != nil {
		return url, nil, fmt.Errorf("%w%s", err, from)
	}
	s.closers = append(s.closers, func(context.Context) error { nc.Close(); return nil })
	s.nc, s.js = nc, js
	return url, js, nil
}

// publisher connects to the NATS server at url, declares the streams if
// CF_EVENTS is missing, and returns a publisher to them, retrying a batch
// NATS does not acknowledge for retry, and a function that drains the
// connection. from is a note for the errors of the connection (where url
// was read, see locateNATS). Only what is missing is declared: declaring
// over a running pipeline's streams would reset their settings (duplicate
// window, ages) to the defaults.
func publisher(ctx context.Context, url, from string, retry time.Duration, log *slog.Logger) (*bus.Publisher, func(), error) {
	nc, js, err := bus.Connect(ctx, url, log)
	if err != nil {
		return nil, nil, fmt.Errorf("%w%s", err, from)
	}
	drain := func() { nc.Drain() }
	if _, err := js.Stream(ctx, bus.EventsStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := bus.Declare(ctx, js, bus.Options{}); err != nil {
			drain()
			return nil, nil, err
		}
	} else if err != nil {
		drain()
		return nil, nil, fmt.Errorf("%w%s", err, from)
	}
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		drain()
		return nil, nil, err
	}
	return bus.NewPublisher(js, parts).WithOptions(bus.PublishOptions{RetryFor: retry, Logger: log}), drain, nil
}

// writeJSON writes v to w as indented JSON, as the commands' --format json
// does.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newLogger returns a JSON slog logger on stderr at the given level.
func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// applyGC sets the Go garbage collector as g asks and logs what is in
// force.
func applyGC(g config.GC, log *slog.Logger) error {
	percent, limit, err := g.Apply()
	if err != nil {
		return err
	}
	mem := "none"
	if limit != math.MaxInt64 {
		mem = fmt.Sprintf("%d MiB", limit>>20)
	}
	log.Info("go garbage collector", "gc_percent", percent, "memory_limit", mem)
	return nil
}

// close stops what the command opened, in reverse order.
func (s *setup) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := len(s.closers) - 1; i >= 0; i-- {
		if err := s.closers[i](ctx); err != nil {
			s.log.Warn("shutdown", "err", err)
		}
	}
}

// openStore connects to ClickHouse as the common flags say (starting a
// managed server under <data>/clickhouse when no DSN is given) and applies
// the migrations, as run does (node.OpenClickHouse).
func (s *setup) openStore(ctx context.Context) error {
	ch, stop, err := node.OpenClickHouse(ctx, s.c, s.log)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, stop)
	s.dsn, s.ch, s.st = ch.DSN, ch.Server, ch.Store
	return nil
}

// openNATS connects to NATS as the common flags say (embedding a server
// under <data>/nats when no URL is given) and declares the streams and
// consumers, as run does (node.OpenNATS).
func (s *setup) openNATS(ctx context.Context) error {
	n, stop, err := node.OpenNATS(ctx, s.c, s.log)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, stop)
	s.nc, s.js, s.embNATS = n.Conn, n.JS, n.EmbeddedURL
	return nil
}
