package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/bus"
)

// cmdGateway serves the doors events come in by over HTTP — POST
// /v1/events and the CRM webhooks — with /healthz, /readyz and /metrics,
// publishing to the JetStream at --nats: no ClickHouse, no workers, no
// reports. Several gateways can run in front of one pipeline.
func cmdGateway(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("gateway", nil, "").withGC()
	fs := s.fs
	natsURL := fs.String("nats", "", "NATS `URL` of the pipeline's JetStream (required); its streams must exist: commitflow run declares them")
	httpAddr := fs.String("http", "127.0.0.1:8080", "HTTP listen address of POST /v1/events, the webhooks and the probes, and /metrics unless --metrics-http")
	fs.StringVar(&s.level, "log-level", "info", "log level: debug, info, warn, error")
	doors := registerDoors(fs)
	metricsHTTP := metricsHTTPFlag(fs)
	profiling := pprofFlag(fs)
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	if err := checkPprof(*profiling, *metricsHTTP); err != nil {
		return err
	}
	defer s.close()
	log := s.log
	tok, gw, err := doors.config()
	if err != nil {
		return err
	}
	if *natsURL == "" {
		return errors.New("--nats URL is required (or COMMITFLOW_NATS): the gateway publishes to the JetStream of a commitflow run")
	}
	if len(tok) == 0 && len(gw.HubSpotSecrets)+len(gw.PipedriveAuth)+len(gw.SalesforceSecrets)+len(gw.GongKeys) == 0 {
		return errors.New("nothing to serve: set --tokens for POST /v1/events, or a webhook's secrets (--hubspot-secrets, --pipedrive-auth, --salesforce-secrets, --gong-keys)")
	}
	nc, js, err := bus.Connect(ctx, *natsURL, log)
	if err != nil {
		return err
	}
	s.closers = append(s.closers, func(context.Context) error { return nc.Drain() })
	if _, err := js.Stream(ctx, bus.EventsStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("no stream %s at %s: start commitflow run against this NATS first (it declares the streams with their partitions)", bus.EventsStream, *natsURL)
	} else if err != nil {
		return err
	}
	if err := connectDoors(ctx, &gw, js, log); err != nil {
		return err
	}
	reg := newRegistry()
	cfg := api.Config{
		Gateway:          gw,
		Tokens:           tok,
		Registry:         reg,
		MetricsElsewhere: *metricsHTTP != "",
		Profiling:        *profiling,
		Ready: func(ctx context.Context) error {
			if st := nc.Status(); st != nats.CONNECTED {
				return fmt.Errorf("nats: %s", st)
			}
			return nil
		},
	}
	hs, err := api.Listen(*httpAddr, api.NewGateway(cfg, log), *metricsHTTP, api.Admin(cfg), log)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	hs.Serve(func(err error) { errc <- err })
	log.Info("commitflow gateway is running", "url", hs.URL(), "nats", *natsURL, "rate_limit", gw.RateLimits.Tenant.String(), "ip_rate_limit", gw.RateLimits.IP.String())
	fmt.Fprintf(stdout, "commitflow gateway is running: POST %sv1/events and %sv1/webhooks/{hubspot,pipedrive,salesforce,gong}, publishing to %s (Ctrl-C to stop)\n", hs.URL(), hs.URL(), *natsURL)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(err, hs.Shutdown(sctx))
}

// doorFlags are the flags of the doors events come in by over HTTP (POST
// /v1/events and the CRM webhooks): their tokens, secrets and limits, the
// same for run and gateway.
type doorFlags struct {
	tokens, hubspot, pipedrive, salesforce, gong, maxBody, publicURL *string
	rateLimit, ipRateLimit                                           *string
	rateBurst, ipRateBurst                                           *int
}

// registerDoors registers the door flags on fs.
func registerDoors(fs *flag.FlagSet) *doorFlags {
	return &doorFlags{
		tokens:      fs.String("tokens", "", "API bearer tokens, token=tenant,token=tenant"),
		hubspot:     fs.String("hubspot-secrets", "", "client secrets of the tenants' HubSpot apps, which sign their webhooks to POST /v1/webhooks/hubspot: tenant=secret,tenant=secret"),
		pipedrive:   fs.String("pipedrive-auth", "", "basic-auth credentials the tenants' Pipedrive webhooks send to POST /v1/webhooks/pipedrive: tenant=user:password,..."),
		salesforce:  fs.String("salesforce-secrets", "", "secrets the tenants' Salesforce CDC relays sign POST /v1/webhooks/salesforce with (X-Commitflow-Signature: sha256=<hex HMAC-SHA256 of the body>): tenant=secret,..."),
		gong:        fs.String("gong-keys", "", "keys the tenants' Gong automation rules put in the webhook URL, POST /v1/webhooks/gong?key=KEY: tenant=key,..."),
		maxBody:     fs.String("max-body", "16MiB", "largest body of POST /v1/events and the webhooks (413 past it): bytes, KiB, MiB or GiB"),
		publicURL:   fs.String("public-url", "", "scheme://host[:port] the CRM webhooks call the API at, which HubSpot signs; empty takes the request's Host with https or http"),
		rateLimit:   fs.String("rate-limit", "", "requests each tenant may make to POST /v1/events and the webhooks, counted once authenticated: N/s, N/m or N/h (429 with Retry-After past it); empty: no limit"),
		rateBurst:   fs.Int("rate-burst", 0, "requests a tenant may make at once within --rate-limit; 0: the rate's N"),
		ipRateLimit: fs.String("ip-rate-limit", "", "requests each source address (an IPv6 address by its /64) may make to POST /v1/events and the webhooks, failed ones included: N/s, N/m or N/h; empty: no limit. Behind a proxy every request has the proxy's address"),
		ipRateBurst: fs.Int("ip-rate-burst", 0, "requests an address may make at once within --ip-rate-limit; 0: the rate's N"),
	}
}

// config parses the door flags into the tokens and the configuration of
// the gateway, without its publisher (connectDoors).
func (d *doorFlags) config() (map[string]string, api.GatewayConfig, error) {
	tok, err := api.ParseTokens(*d.tokens)
	if err != nil {
		return nil, api.GatewayConfig{}, fmt.Errorf("--tokens: %w", err)
	}
	gw, err := gatewayConfig(*d.hubspot, *d.pipedrive, *d.salesforce, *d.gong, *d.maxBody, *d.publicURL)
	if err != nil {
		return nil, gw, err
	}
	if gw.RateLimits.Tenant, err = api.ParseRateLimit(*d.rateLimit, *d.rateBurst); err != nil {
		return nil, gw, fmt.Errorf("--rate-limit, --rate-burst: %w", err)
	}
	if gw.RateLimits.IP, err = api.ParseRateLimit(*d.ipRateLimit, *d.ipRateBurst); err != nil {
		return nil, gw, fmt.Errorf("--ip-rate-limit, --ip-rate-burst: %w", err)
	}
	return tok, gw, nil
}

// connectDoors gives gw its publisher to CF_EVENTS and its dead letters
// to CF_DLQ, through js.
func connectDoors(ctx context.Context, gw *api.GatewayConfig, js jetstream.JetStream, log *slog.Logger) error {
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		return err
	}
	gw.Publisher = bus.NewPublisher(js, parts).WithOptions(bus.PublishOptions{Logger: log})
	gw.DeadLetters = api.NewDeadLetters(js, parts, bus.PublishOptions{Logger: log})
	return nil
}

// metricsHTTPFlag registers --metrics-http on fs.
func metricsHTTPFlag(fs *flag.FlagSet) *string {
	return fs.String("metrics-http", "", "listen address for /metrics, /healthz and /readyz apart from the API; empty serves /metrics on --http")
}

// pprofFlag registers --pprof on fs.
func pprofFlag(fs *flag.FlagSet) *bool {
	return fs.Bool("pprof", false, "serve Go's runtime profiles under /debug/pprof/ on --metrics-http (required with it: never on the API's listener)")
}

// checkPprof refuses --pprof without --metrics-http.
func checkPprof(pprof bool, metricsHTTP string) error {
	if pprof && metricsHTTP == "" {
		return errors.New("--pprof needs --metrics-http: the profiles are served on the operators' listener only, never on the API's")
	}
	return nil
}

// newRegistry returns the Prometheus registry of a serving command, with
// the Go runtime's and the process's collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
