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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/commitflow/commitflow/dashboards"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
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
	// Ladder is the ladder in force; nil means ladder.Default().
	Ladder *ladder.Ladder
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
}

// DefaultTimeout is the query timeout when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// server holds what the handlers share.
type server struct {
	cfg     Config
	auth    *authenticator
	q       *metrics.Querier
	f       *forecast.Forecaster
	logger  *slog.Logger
	timeout time.Duration
}

// route is one registered pattern of the handler.
type route struct {
	pattern string // a ServeMux pattern: "METHOD /path"
	handler http.Handler
}

// New returns the HTTP handler of the API, dashboard and probes. q and f
// answer the metric endpoints; logger receives the access log.
func New(cfg Config, q *metrics.Querier, f *forecast.Forecaster, logger *slog.Logger) http.Handler {
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
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, rt.handler)
	}
	return instrument(mux, requestHistogram(cfg.Registry, logger), logger)
}

// routes lists every pattern the handler serves. The OpenAPI document
// must describe exactly these (see the tests).
func (s *server) routes() []route {
	rts := []route{
		{"GET /v1/ladder", s.authed(s.ladder)},
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
	return rts
}

// requestHistogram registers commitflow_http_request_seconds on reg, or
// reuses the one already registered there.
func requestHistogram(reg prometheus.Registerer, logger *slog.Logger) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "commitflow_http_request_seconds",
		Help:    "Duration of HTTP requests by route pattern and status code.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	}, []string{"route", "code"})
	if err := reg.Register(h); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.HistogramVec); ok {
				return existing
			}
		}
		logger.Warn("http request histogram not registered", "err", err)
	}
	return h
}

// authed resolves the request's tenant before calling h.
func (s *server) authed(h func(w http.ResponseWriter, r *http.Request, tenant string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := s.auth.tenant(r)
		if err != nil {
			writeError(w, r, s.logger, err)
			return
		}
		setTenant(r.Context(), tenant)
		h(w, r, tenant)
	})
}

// metric serves one metrics endpoint.
func (s *server) metric(e Endpoint) func(w http.ResponseWriter, r *http.Request, tenant string) {
	return func(w http.ResponseWriter, r *http.Request, tenant string) {
		ctx, cancel := context.WithTimeout(r.Context(), s.timeout)
		defer cancel()
		res, err := s.run(ctx, e.Name, tenant, r.URL.Query())
		if err != nil {
			writeError(w, r, s.logger, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

// ladder serves the ladder in force.
func (s *server) ladder(w http.ResponseWriter, r *http.Request, tenant string) {
	if err := newParser(r.URL.Query(), nil).err; err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	writeJSON(w, http.StatusOK, s.cfg.Ladder)
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write([]byte(apischema.OpenAPIYAML))
}

// Admin returns the handler of an operator's listener, apart from the API:
// /metrics (cfg.Registry), /healthz and /readyz (cfg.Ready). Serve it when
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
