// Package api serves commitflow's HTTP API: the metrics under /v1 as JSON,
// scoped to the tenant of the request's bearer token, plus the OpenAPI
// document, health and readiness probes, Prometheus metrics and the web
// dashboard.
//
// The Parse functions turn query parameters into the metric packages' query
// structs; the CLI uses the same functions, so the API and `commitflow
// report` accept exactly the same parameters. No SQL is built here: the
// metric packages bind every value as a query argument.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/commitflow/commitflow/dashboards"
	"github.com/commitflow/commitflow/internal/answercache"
	"github.com/commitflow/commitflow/internal/deals"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/people"
	apischema "github.com/commitflow/commitflow/schemas/api"
)

// Config configures the handler.
type Config struct {
	// Tokens maps bearer tokens to tenants (see ParseTokens).
	Tokens map[string]string
	// Open serves without authentication, for the loopback demo: every
	// /v1 request then names its tenant with ?tenant=. A request that does
	// carry a known bearer token is still held to that token's tenant.
	Open bool
	// Ladder gives each tenant's ladder in force: a *ladder.Set, or one
	// *ladder.Ladder for every tenant; nil means ladder.Default(). Every
	// answer names its tenant's steps, and refuses a tenant whose states
	// were derived with another ladder (a replay under way, say).
	Ladder ladder.Source
	// Registry receives commitflow_http_request_seconds and is served at
	// /metrics; nil means a private registry.
	Registry *prometheus.Registry
	// Ready reports whether the service can answer queries (/readyz); nil
	// means always ready.
	Ready func(ctx context.Context) error
	// Timeout bounds each metrics query; 0 means DefaultTimeout.
	Timeout time.Duration
	// MetricsElsewhere leaves /metrics out of the handler New returns:
	// Admin serves it on a listener of its own.
	MetricsElsewhere bool
	// Profiling serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ on Admin's handler, never on the API's.
	Profiling bool
	// MaxConcurrent bounds the reports (metrics endpoints) computed at
	// once, each holding ClickHouse queries; 0 means
	// DefaultMaxConcurrent(). Probes, the ladder and static files are
	// never held back.
	MaxConcurrent int
	// MaxQueued bounds the reports waiting for one of those slots; past
	// it a report is answered 503 with Retry-After at once. 0 means
	// DefaultMaxQueued; a negative value means no waiting.
	MaxQueued int
	// QueueTimeout bounds a report's wait for a slot (503 past it); 0
	// means DefaultQueueTimeout. Config.Timeout starts once it has one.
	QueueTimeout time.Duration
	// Hold, for tests only, is called with a report's slot held, before
	// its query runs: a test blocks in it to keep the slots busy.
	Hold func(ctx context.Context)
	// Gateway configures POST /v1/events and the CRM webhooks.
	Gateway GatewayConfig
	// Deals answers /v1/deals, /v1/deals/{id} and /v1/warnings; nil
	// answers them 503.
	Deals *deals.Reader
	// Bus is the event stream whose consumers GET /v1/status reports on
	// (how many events ingest and derive have yet to process); nil
	// answers it 503.
	Bus jetstream.JetStream
	// Answers, when set, answers the metrics endpoints: identical
	// requests in flight are computed once, and answers are kept until
	// their tenant's data changes (see answercache). nil computes every
	// request.
	Answers *answercache.Cache
	// People names the people the answers of the metrics and deal
	// endpoints name by id (see writeNamed); nil names nobody.
	People *people.Directory
}

// Metrics answers the metrics endpoints and checks that a tenant's states
// were derived with its ladder; *metrics.Querier is one.
type Metrics interface {
	Funnel(context.Context, metrics.FunnelQuery) (*metrics.FunnelResult, error)
	Stalls(context.Context, metrics.StallsQuery) (*metrics.StallsResult, error)
	Missed(context.Context, metrics.MissedQuery) (*metrics.MissedResult, error)
	Movement(context.Context, metrics.MovementQuery) (*metrics.MovementResult, error)
	CycleTime(context.Context, metrics.CycleQuery) (*metrics.CycleResult, error)
	StageHistory(context.Context, metrics.StageHistoryQuery) (*metrics.StageHistoryResult, error)
	CheckLadder(ctx context.Context, tenant, version string) error
}

// Forecasts answers /v1/forecast; *forecast.Forecaster is one.
type Forecasts interface {
	Forecast(context.Context, forecast.Query) (*forecast.Result, error)
}

// DefaultTimeout is the query timeout when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// server holds what the handlers share.
type server struct {
	cfg     Config
	auth    *authenticator
	q       Metrics
	f       Forecasts
	logger  *slog.Logger
	timeout time.Duration
	limit   *limiter
}

// route is one registered pattern of the handler.
type route struct {
	pattern string // a ServeMux pattern: "METHOD /path"
	handler http.Handler
}

// New returns the HTTP handler of the API, dashboard and probes. q and f
// answer the metric endpoints; logger receives the access log.
func New(cfg Config, q Metrics, f Forecasts, logger *slog.Logger) http.Handler {
	s := newServer(cfg, q, f, logger)
	return s.handler(s.routes())
}

// NewGateway returns the handler of a gateway alone: POST /v1/events and
// the webhooks (cfg.Gateway, with cfg.Tokens for the events), /healthz,
// /readyz and, unless cfg.MetricsElsewhere, /metrics. It answers no
// reports, so it needs no ClickHouse.
func NewGateway(cfg Config, logger *slog.Logger) http.Handler {
	s := newServer(cfg, nil, nil, logger)
	rts := []route{
		{"GET /healthz", http.HandlerFunc(healthz)},
		{"GET /readyz", http.HandlerFunc(s.readyz)},
	}
	if !s.cfg.MetricsElsewhere {
		rts = append(rts, route{"GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})})
	}
	return s.handler(append(rts, s.gatewayRoutes()...))
}

// newServer fills in cfg's defaults and returns the server of the handlers.
func newServer(cfg Config, q Metrics, f Forecasts, logger *slog.Logger) *server {
	if cfg.Ladder == nil {
		cfg.Ladder = ladder.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{
		cfg:     cfg,
		auth:    newAuthenticator(cfg.Tokens, cfg.Open),
		q:       q,
		f:       f,
		logger:  logger,
		timeout: cfg.Timeout,
		limit:   newLimiter(cfg, cfg.Registry, logger),
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	return s
}

// handler serves rts, logging and timing every request.
func (s *server) handler(rts []route) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range rts {
		mux.Handle(rt.pattern, rt.handler)
	}
	return instrument(compress(mux), register(s.cfg.Registry, s.logger, requestHistogram()), s.logger)
}

// routes lists every pattern the handler serves. The OpenAPI document
// must describe exactly these (see the tests).
func (s *server) routes() []route {
	rts := []route{
		{"GET /v1/ladder", s.authed(s.ladder)},
		{"GET /v1/status", s.authed(s.status)},
		{"GET /v1/openapi.yaml", http.HandlerFunc(serveOpenAPI)},
		{"GET /healthz", http.HandlerFunc(healthz)},
		{"GET /readyz", http.HandlerFunc(s.readyz)},
		{"GET /", dashboard()},
	}
	if !s.cfg.MetricsElsewhere {
		rts = append(rts, route{"GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})})
	}
	for _, e := range Endpoints() {
		rts = append(rts, route{"GET " + e.Path, s.authed(s.metric(e))})
	}
	rts = append(rts, s.gatewayRoutes()...)
	rts = append(rts, s.dealRoutes()...)
	return rts
}

// requestHistogram is commitflow_http_request_seconds.
func requestHistogram() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "commitflow_http_request_seconds",
		Help:    "Duration of HTTP requests by route pattern and status code.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "code"})
}

// register registers c on reg and returns it, or returns the collector of
// the same kind already registered there (handlers sharing a registry share
// their metrics).
func register[C prometheus.Collector](reg prometheus.Registerer, logger *slog.Logger, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		logger.Warn("http metric not registered", "err", err)
	}
	return c
}

// authed parses the request's query string, refusing a malformed one, and
// resolves its tenant before calling h with both.
func (s *server) authed(h func(w http.ResponseWriter, r *http.Request, tenant string, v url.Values)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, err := parseQuery(r.URL.RawQuery)
		if err != nil {
			writeError(w, r, s.logger, err)
			return
		}
		tenant, err := s.auth.tenant(r, v)
		if err != nil {
			writeError(w, r, s.logger, err)
			return
		}
		setTenant(r.Context(), tenant)
		h(w, r, tenant, v)
	})
}

// metric serves one metrics endpoint. Bad parameters are refused before
// the report waits for a query slot; the slot is given back before the
// answer is written, so a slow reader holds no ClickHouse query.
func (s *server) metric(e Endpoint) func(w http.ResponseWriter, r *http.Request, tenant string, v url.Values) {
	return func(w http.ResponseWriter, r *http.Request, tenant string, v url.Values) {
		w.Header().Add("Vary", "Accept")
		rep, err := negotiate(r, v, e.Name)
		if err != nil {
			writeError(w, r, s.logger, err)
			return
		}
		if err := Check(e.Name, v); err != nil {
			writeError(w, r, s.logger, err)
			return
		}
		if s.cfg.Answers != nil {
			s.cached(w, r, e.Name, tenant, v, rep)
			return
		}
		res, err := s.compute(r.Context(), e.Name, tenant, v)
		switch {
		case err != nil:
			writeError(w, r, s.logger, err)
		case rep.csv:
			s.writeCSV(w, r, e.Name, tenant, res, rep)
		default:
			s.writeNamed(w, r, tenant, res)
		}
	}
}

// compute runs one report holding a query slot, within the query timeout.
func (s *server) compute(ctx context.Context, name, tenant string, v url.Values) (any, error) {
	release, err := s.limit.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if s.cfg.Hold != nil {
		s.cfg.Hold(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.run(ctx, name, tenant, v)
}

// ladder serves the tenant's ladder in force.
func (s *server) ladder(w http.ResponseWriter, r *http.Request, tenant string, v url.Values) {
	if err := newParser(v, nil).err; err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Ladder.For(tenant))
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write([]byte(apischema.OpenAPIYAML))
}

// Admin returns the handler of an operator's listener, apart from the API:
// /metrics (cfg.Registry), /healthz and /readyz (cfg.Ready), and with
// cfg.Profiling the runtime profiles under /debug/pprof/. Serve it when
// the API listener is reachable by API clients who should not read the
// metrics, whose labels name every tenant; set cfg.MetricsElsewhere for
// New.
func Admin(cfg Config) http.Handler {
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if cfg.Profiling {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// dashboard serves the embedded web dashboard.
func dashboard() http.Handler {
	files := http.FileServerFS(dashboards.FS)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}
