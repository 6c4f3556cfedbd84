package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/compact"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/node"
	"github.com/commitflow/commitflow/internal/people"
	"github.com/commitflow/commitflow/internal/store"
)

// fxFlags registers --fx-rates and --fx-base on fs.
func fxFlags(fs *flag.FlagSet) (file, base *string) {
	file = fs.String("fx-rates", "", "currency rate `FILE` (CSV date,currency,rate: from date on, 1 currency = rate --fx-base) to convert the amounts of an answer into one currency; empty: answers give amounts per currency and never add different currencies")
	base = fs.String("fx-base", "", "the currency `CODE` the rates of --fx-rates are in (ISO 4217, e.g. USD); amounts without a currency are taken to be in it")
	return file, base
}

// loadRates loads the rate table of --fx-rates in --fx-base, nil when
// neither is given.
func loadRates(file, base string) (*fx.Table, error) {
	switch {
	case file == "" && base == "":
		return nil, nil
	case file == "":
		return nil, errors.New("--fx-base needs --fx-rates FILE")
	case base == "":
		return nil, errors.New("--fx-rates needs --fx-base CODE, the currency its rates are in")
	}
	t, err := fx.Load(file, base)
	if err != nil {
		return nil, fmt.Errorf("--fx-rates: %w", err)
	}
	return t, nil
}

func cmdRun(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("run", nil, "").withCommon().withGC().withLadders()
	fs, c := s.fs, &s.c
	demo := fs.Bool("demo", false, "load a generated demo book of business on first start (tenant \"demo\"), and serve the API open on loopback unless tokens are set")
	demoOpps := fs.Int("demo-opportunities", 2000, "opportunities in the demo data")
	doors := registerDoors(fs)
	metricsHTTP := metricsHTTPFlag(fs)
	profiling := pprofFlag(fs)
	sweep := fs.Duration("sweep", 10*time.Minute, "how often open deals are re-derived so stalls and overdue actions fire")
	compactEvery := fs.Duration("compact-every", 15*time.Minute, "how often the share of superseded opportunity states is checked, and the table compacted when it is above --compact-above; 0 turns compaction off")
	compactAbove := fs.Float64("compact-above", 0.01, "share of superseded opportunity states (0 to 1) above which the table is compacted")
	answerCache := fs.String("answer-cache", "64MiB", "memory for the answers of the metrics endpoints kept until their tenant's data changes (bytes, KiB, MiB or GiB; least recently used dropped first); 0 keeps none, identical requests in flight are still computed once")
	deriveCache := fs.String("derive-cache", "256MiB", "memory for the deal histories and derived events the derive workers keep between batches (bytes, KiB, MiB or GiB; least recently used dropped first); a deal not kept is read from ClickHouse again. Keep it well under --memory-limit")
	forecastModels := fs.Int("forecast-models", forecast.DefaultMaxModels, "fitted forecast models kept until their tenant's closed-deal history changes (a close, a reopen, or a change dated before the day); 0 fits the model on every forecast")
	fxRates, fxBase := fxFlags(fs)
	config.Positive(fs, "demo-opportunities", "sweep")
	config.NotNegative(fs, "compact-every", "forecast-models")
	config.Share(fs, "compact-above")
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	defer s.close()
	if err := checkPprof(*profiling, *metricsHTTP); err != nil {
		return err
	}
	log := s.log
	ls, err := s.loadLadders()
	if err != nil {
		return err
	}
	rates, err := loadRates(*fxRates, *fxBase)
	if err != nil {
		return err
	}
	if rates != nil {
		log.Info("currency rates", "file", *fxRates, "base", rates.Base(), "currencies", strings.Join(rates.Currencies(), ","))
	}
	tok, gw, err := doors.config()
	if err != nil {
		return err
	}
	open := *demo && len(tok) == 0
	if open && !isLoopback(c.HTTP) {
		return fmt.Errorf("--demo without --tokens serves the API without authentication, which is only allowed on a loopback address, not %s", c.HTTP)
	}
	if !open && len(tok) == 0 {
		return errors.New("no API tokens: set --tokens token=tenant,... (or COMMITFLOW_TOKENS), or use --demo on loopback")
	}
	cacheBytes, err := answerCacheSize(*answerCache)
	if err != nil {
		return fmt.Errorf("--answer-cache: %w", err)
	}
	deriveBytes, err := config.ParseSize(*deriveCache)
	if err != nil || deriveBytes <= 0 {
		return fmt.Errorf("--derive-cache %q: want a size above 0, e.g. 256MiB", *deriveCache)
	}
	member, releaseMember, err := claimMember(c.Data)
	if err != nil {
		return err
	}
	defer releaseMember()

	n, err := node.New(ctx, node.Config{
		Common:           *c,
		MetricsHTTP:      *metricsHTTP,
		Profiling:        *profiling,
		Member:           member,
		Ladders:          ls,
		Rates:            rates,
		Tokens:           tok,
		Open:             open,
		Gateway:          gw,
		Sweep:            *sweep,
		Compact:          compact.Config{Every: *compactEvery, Above: *compactAbove},
		AnswerCacheBytes: cacheBytes,
		DeriveCacheBytes: deriveBytes,
		ForecastModels:   *forecastModels,
		Logger:           log,
	})
	if err != nil {
		return err
	}
	// Deferred before removeInfo, so run.json goes before the servers it
	// names stop.
	defer closeNode(n, log)
	removeInfo, err := writeRunInfo(c.Data, runInfo{PID: os.Getpid(), NATS: n.EmbeddedNATS(), Ladder: s.ladderFile, Ladders: s.laddersDir, LadderVersion: ls.Default().Version})
	if err != nil {
		return err
	}
	defer removeInfo()

	url := n.URL()
	dashboard := url
	if open {
		// The dashboard reads the tenant to show from the fragment.
		dashboard += "#tenant=" + demoTenant
	}
	log.Info("commitflow is running", "dashboard", dashboard, "open", open)
	fmt.Fprintf(stdout, "commitflow is running: dashboard at %s, API at %sv1/ (Ctrl-C to stop)\n", dashboard, url)
	if open {
		fmt.Fprintf(stdout, "the API is open (no token) because --demo runs on loopback; pass ?tenant=%s, e.g. %sv1/funnel?tenant=%s&from=2025-01-01&to=2027-01-01\n", demoTenant, url, demoTenant)
	}

	if *demo {
		go func() {
			if err := loadDemo(ctx, n.Store(), n.JetStream(), *demoOpps, log); err != nil && ctx.Err() == nil {
				log.Error("demo data", "err", err)
			}
		}()
	}

	select {
	case <-ctx.Done():
		return nil
	case err := <-n.Err():
		return err
	}
}

// closeNode stops n, logging what failed to stop.
func closeNode(n *node.Node, log *slog.Logger) {
	log.Info("shutting down")
	if err := n.Close(); err != nil {
		log.Warn("shutdown", "err", err)
	}
}

// answerCacheSize parses --answer-cache: a size as config.ParseSize
// takes it, or 0 for no stored answers.
func answerCacheSize(s string) (int64, error) {
	if s == "0" {
		return 0, nil
	}
	return config.ParseSize(s)
}

// gatewayConfig makes the configuration of POST /v1/events and the
// webhooks from run's flags; the publisher is set once NATS is up.
func gatewayConfig(hubspotSecrets, pipedriveAuth, salesforceSecrets, gongKeys, maxBody, publicURL string) (api.GatewayConfig, error) {
	var gw api.GatewayConfig
	var err error
	if gw.HubSpotSecrets, err = api.ParseTenantSecrets(hubspotSecrets); err != nil {
		return gw, fmt.Errorf("--hubspot-secrets: %w", err)
	}
	if gw.PipedriveAuth, err = api.ParsePipedriveAuth(pipedriveAuth); err != nil {
		return gw, fmt.Errorf("--pipedrive-auth: %w", err)
	}
	if gw.SalesforceSecrets, err = api.ParseTenantSecrets(salesforceSecrets); err != nil {
		return gw, fmt.Errorf("--salesforce-secrets: %w", err)
	}
	if gw.GongKeys, err = api.ParseTenantSecrets(gongKeys); err != nil {
		return gw, fmt.Errorf("--gong-keys: %w", err)
	}
	if gw.MaxBody, err = config.ParseSize(maxBody); err != nil {
		return gw, fmt.Errorf("--max-body: %w", err)
	}
	if publicURL != "" {
		u, err := url.Parse(publicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Trim(u.Path, "/") != "" {
			return gw, fmt.Errorf("--public-url: want scheme://host[:port], e.g. https://commitflow.example.com, got %q", publicURL)
		}
		gw.PublicURL = publicURL
	}
	return gw, nil
}

// demoTenant is the tenant of run --demo's book of business.
const demoTenant = "demo"

// loadDemo writes the demo's users to the people table, so that answers
// name the owners (only new and changed people are written), and
// publishes the demo book of business once: when the demo tenant has no
// stored events yet.
func loadDemo(ctx context.Context, st *store.Store, js jetstream.JetStream, opportunities int, log *slog.Logger) error {
	const tenant = demoTenant
	cfg := demoConfig(opportunities)
	if err := importDemoUsers(ctx, people.New(st.Conn()), cfg, log); err != nil {
		return err
	}
	n, err := st.CountEvents(ctx, tenant)
	if err != nil {
		return err
	}
	if n > 0 {
		log.Info("demo data already loaded", "events", n)
		return nil
	}
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		return err
	}
	pub := bus.NewPublisher(js, parts)
	return publishGenerated(ctx, pub, cfg, log)
}

// demoConfig is the generator's configuration of the demo book of
// opportunities opportunities, ending today.
func demoConfig(opportunities int) gen.Config {
	return gen.Config{Seed: 1, Opportunities: opportunities, Tenant: demoTenant, End: time.Now().UTC().Truncate(24 * time.Hour)}
}

// importDemoUsers writes the users of the book cfg generates to dir.
func importDemoUsers(ctx context.Context, dir *people.Directory, cfg gen.Config, log *slog.Logger) error {
	users, err := gen.Users(cfg)
	if err != nil {
		return fmt.Errorf("demo users: %w", err)
	}
	for tenant, us := range users {
		ps := make([]people.Person, len(us))
		for i, u := range us {
			ps[i] = people.Person{ID: u.ID, Name: u.Name, Email: u.Email, Team: u.Team, Manager: u.Manager}
		}
		c, err := dir.Import(ctx, tenant, ps)
		if err != nil {
			return fmt.Errorf("demo users: %w", err)
		}
		log.Info("demo users", "tenant", tenant, "new", c.New, "changed", c.Changed)
	}
	return nil
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// progress prints a line to stderr at most every interval.
type progress struct {
	w     io.Writer
	every time.Duration
	start time.Time
	last  time.Time
}

func newProgress(every time.Duration) *progress {
	now := time.Now()
	return &progress{w: os.Stderr, every: every, start: now, last: now}
}

func (p *progress) report(force bool, format string, args ...any) {
	if !force && time.Since(p.last) < p.every {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}
