// Package node is one commitflow pipeline process, what `commitflow run`
// starts: NATS JetStream (embedded, or a server it is given), ClickHouse
// (managed, or a server it is given), the ingest and derive workers, the
// sweep of open deals, compaction, the backlog gauges, the followers that
// keep the answer cache and the forecast models current, and the HTTP API
// with the dashboard and /metrics.
//
// New starts a Node and returns once it serves; Close stops it: the HTTP
// servers first, then the workers, which finish or abandon their batches,
// then NATS and ClickHouse. Tests start a Node the way run does.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/segmentio/ksuid"

	"github.com/commitflow/commitflow/internal/answercache"
	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/backlog"
	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/compact"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/people"
	"github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/snapshot"
	"github.com/commitflow/commitflow/internal/store"
)

// Config is what a Node runs with: run's flags, parsed and checked.
type Config struct {
	// Common says where NATS and ClickHouse are (empty: embedded and
	// managed under Data), the streams' settings and the API's listen
	// address (HTTP; port 0 picks a free one). Its Tenant and LogLevel are
	// not used.
	config.Common
	// MetricsHTTP is the listen address of /metrics, /healthz and
	// /readyz apart from the API; empty serves /metrics on HTTP.
	MetricsHTTP string
	// Profiling serves Go's runtime profiles on MetricsHTTP (api.Config).
	Profiling bool
	// Member names this process in the ingest and derive leases; empty:
	// a new ksuid.
	Member string
	// Ladders are the tenants' ladders; nil: the shipped default for all.
	Ladders *ladder.Set
	// Rates converts the amounts of answers into one currency; nil: none.
	Rates *fx.Table
	// Tokens maps the API's bearer tokens to their tenants.
	Tokens map[string]string
	// Open serves the API without tokens (run --demo on loopback).
	Open bool
	// Gateway configures POST /v1/events and the webhooks; New sets its
	// publisher and dead letters.
	Gateway api.GatewayConfig
	// Sweep is how often open deals are re-derived so that stalls and
	// overdue actions fire; 0: the deriver's default.
	Sweep time.Duration
	// Compact says when opportunity_state is compacted; not on a
	// ClickHouse cluster.
	Compact compact.Config
	// AnswerCacheBytes is the memory for the answers kept until their
	// tenant's data changes; 0 keeps none.
	AnswerCacheBytes int64
	// DeriveCacheBytes is the memory for the deal histories and derived
	// events the derive workers keep between batches; 0: the deriver's
	// default.
	DeriveCacheBytes int64
	// ForecastModels is how many fitted forecast models are kept until
	// their tenant's closed-deal history changes; 0 fits on every
	// forecast.
	ForecastModels int
	// Logger receives the logs; nil discards them.
	Logger *slog.Logger
}

// Node is a running commitflow pipeline process.
type Node struct {
	log  *slog.Logger
	ch   ClickHouse
	nats NATS

	http *api.Servers // nil until listening

	stopWorkers context.CancelFunc
	workers     sync.WaitGroup
	errc        chan error

	// closers stop what New opened, in reverse order.
	closers   []func(context.Context) error
	closeOnce sync.Once
	closeErr  error
}

// New opens NATS and ClickHouse, starts the workers and serves the API,
// and returns once the API accepts connections. ctx bounds the start
// only: the Node runs until Close. On an error, what was started is
// stopped.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ladders == nil {
		cfg.Ladders = ladder.NewSet(ladder.Default(), nil)
	}
	if cfg.Member == "" {
		cfg.Member = ksuid.New().String()
	}
	n := &Node{log: cfg.Logger, errc: make(chan error, 8), stopWorkers: func() {}}
	if err := n.start(ctx, cfg); err != nil {
		return nil, errors.Join(err, n.Close())
	}
	return n, nil
}

func (n *Node) start(ctx context.Context, cfg Config) error {
	log := n.log
	ch, closeCH, err := OpenClickHouse(ctx, cfg.Common, log)
	if err != nil {
		return err
	}
	n.ch = ch
	n.closers = append(n.closers, closeCH)
	nt, closeNATS, err := OpenNATS(ctx, cfg.Common, log)
	if err != nil {
		return err
	}
	n.nats = nt
	n.closers = append(n.closers, closeNATS)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if ch.Server != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "commitflow_clickhouse_restarts_total",
			Help: "Restarts of the managed clickhouse-server after it died.",
		}, func() float64 { return float64(ch.Server.Restarts()) }))
	}
	pools, err := n.openPools(ctx)
	if err != nil {
		return err
	}
	log.Info("lease member", "member", cfg.Member)
	js := nt.JS
	iw, err := ingest.New(js, pools.ingest, ingest.Config{Replicas: cfg.Replicas, Member: cfg.Member}, reg, log)
	if err != nil {
		return err
	}
	dw, err := pipeline.NewDeriver(ctx, js, pools.derive, cfg.Ladders, pipeline.Config{Sweep: cfg.Sweep, Replicas: cfg.Replicas, Member: cfg.Member, CacheBytes: cfg.DeriveCacheBytes}, reg, log)
	if err != nil {
		return err
	}
	pin := snapshot.New(pools.api.Conn())
	if err := pin.Instrument(reg); err != nil {
		return err
	}
	ccfg := cfg.Compact
	if cfg.ClickHouseCluster != "" && ccfg.Every > 0 {
		log.Info("compaction of opportunity_state is not done on a cluster: schedule OPTIMIZE TABLE on each shard", "cluster", cfg.ClickHouseCluster)
		ccfg.Every = 0
	}
	cw, err := compact.New(ch.Store.Conn(), ccfg, reg, log)
	if err != nil {
		return err
	}
	bl, err := backlog.New(js, backlog.Config{}, reg, log)
	if err != nil {
		return err
	}
	gw := cfg.Gateway
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		return err
	}
	gw.Publisher = bus.NewPublisher(js, parts).WithOptions(bus.PublishOptions{Logger: log})
	gw.DeadLetters = api.NewDeadLetters(js, parts, bus.PublishOptions{Logger: log})
	nc := nt.Conn
	apiCfg := api.Config{
		Gateway:          gw,
		Tokens:           cfg.Tokens,
		Open:             cfg.Open,
		Ladder:           cfg.Ladders,
		Registry:         reg,
		MetricsElsewhere: cfg.MetricsHTTP != "",
		Profiling:        cfg.Profiling,
		Bus:              js,
		Ready: func(ctx context.Context) error {
			if nc.Status() != nats.CONNECTED {
				return fmt.Errorf("nats: %s", nc.Status())
			}
			if err := pools.probe.Ping(ctx); err != nil {
				return fmt.Errorf("clickhouse: %w", err)
			}
			ok, err := pools.probe.Migrated(ctx)
			if err != nil {
				return err
			}
			if !ok {
				return errors.New("clickhouse: migrations not applied")
			}
			return nil
		},
	}
	q := metrics.NewWithOptions(pools.api.Conn(), metrics.Options{MaxThreads: runtime.NumCPU(), Pinner: pin, Rates: cfg.Rates})
	apiCfg.Deals = deals.New(pools.api, pin, runtime.NumCPU())
	apiCfg.People = people.New(pools.api.Conn())
	apiCfg.Answers = answercache.New(answercache.Options{MaxBytes: cfg.AnswerCacheBytes})
	if err := apiCfg.Answers.Instrument(reg); err != nil {
		return err
	}
	fopt := forecast.Options{Pinner: pin, Rates: cfg.Rates}
	if cfg.ForecastModels > 0 {
		fopt.Models = forecast.NewModelCache(forecast.ModelCacheOptions{MaxModels: cfg.ForecastModels})
		if err := fopt.Models.Instrument(reg); err != nil {
			return err
		}
	}
	handler := api.New(apiCfg, q, forecast.NewWithOptions(pools.api.Conn(), fopt), log)
	hs, err := api.Listen(cfg.HTTP, handler, cfg.MetricsHTTP, api.Admin(apiCfg), log)
	if err != nil {
		return err
	}
	n.http = hs

	// The workers get their own context: on Close the HTTP servers stop
	// first, then the workers finish or abandon their batches, and only
	// then are NATS and ClickHouse closed.
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	n.stopWorkers = stopWorkers
	if err := answercache.Follow(wctx, nc, apiCfg.Answers); err != nil {
		return err
	}
	if fopt.Models != nil {
		if err := fopt.Models.Follow(wctx, nc); err != nil {
			return err
		}
	}
	n.goWorker(func() error { return iw.Run(wctx) })
	n.goWorker(func() error {
		// Live derivation starts once the tenants whose ladder changed
		// are replayed; the API answers them 409 meanwhile.
		if err := replayChanged(wctx, pools.derive, q, cfg.Ladders, js, log); err != nil {
			if wctx.Err() != nil {
				return nil
			}
			return err
		}
		return dw.Run(wctx)
	})
	n.goWorker(func() error { return cw.Run(wctx) })
	n.goWorker(func() error { return bl.Run(wctx) })
	n.http.Serve(n.report)
	return nil
}

// goWorker runs f until the workers stop, reporting its error on Err.
func (n *Node) goWorker(f func() error) {
	n.workers.Go(func() {
		if err := f(); err != nil {
			n.report(err)
		}
	})
}

// report sends err to Err unless an error is already waiting there.
func (n *Node) report(err error) {
	select {
	case n.errc <- err:
	default:
	}
}

// pools are the ClickHouse connection pools of a node, one per use, so
// that a use holding all of its connections (derivation loading histories
// after a ClickHouse restart, a burst of API queries) cannot starve
// another, the readiness probe least of all. Migrations and compaction use
// the store's main pool.
type pools struct{ ingest, derive, api, probe *store.Store }

// openPools opens the pools, closed with the rest.
func (n *Node) openPools(ctx context.Context) (pools, error) {
	var p pools
	for _, u := range []struct {
		st    **store.Store
		name  string
		conns int
	}{
		{&p.ingest, "ingest", 4},  // the insert writers (2 by default), and room
		{&p.derive, "derive", 16}, // one per partition worker (16 partitions by default)
		{&p.api, "api", 16},
		{&p.probe, "probe", 2},
	} {
		st, err := n.ch.Store.Pool(ctx, u.name, u.conns)
		if err != nil {
			return p, err
		}
		n.closers = append(n.closers, func(context.Context) error { return st.Close() })
		*u.st = st
	}
	return p, nil
}

// URL is the base URL of the API and dashboard, with a trailing slash.
func (n *Node) URL() string {
	return n.http.URL()
}

// EmbeddedNATS is the client URL of the embedded NATS server; empty when
// the Node was given a NATS server.
func (n *Node) EmbeddedNATS() string { return n.nats.EmbeddedURL }

// Store is the store over the Node's ClickHouse (its main pool).
func (n *Node) Store() *store.Store { return n.ch.Store }

// JetStream is the Node's JetStream client.
func (n *Node) JetStream() jetstream.JetStream { return n.nats.JS }

// Err receives the error of a worker or HTTP server that stopped while
// the Node runs; the Node should then be closed.
func (n *Node) Err() <-chan error { return n.errc }

// Close stops the Node: the HTTP servers, letting the requests in progress
// finish for up to 10 seconds, then the workers, then NATS and ClickHouse
// (30 seconds at most). It returns what failed to stop; calling it again
// returns the same.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		var errs []error
		if n.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := n.http.Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
			cancel()
		}
		n.stopWorkers()
		n.workers.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for i := len(n.closers) - 1; i >= 0; i-- {
			if err := n.closers[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
		n.closeErr = errors.Join(errs...)
	})
	return n.closeErr
}
