// Package backlog exports, as Prometheus gauges, what the pipeline has yet
// to do: the events the ingest and derive consumers have not acknowledged
// and the dead letters waiting in CF_DLQ, per tenant.
//
// A Sampler reads them from JetStream's stream and consumer info every
// Config.Every (the figures /v1/status and `commitflow status` give), never
// per message: about 20 small requests for 16 partitions. The figures are
// the cluster's, not the process's, so every process of a cluster exports
// the same values: a dashboard takes their max, not their sum.
package backlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
)

// Config tunes a Sampler. Zero values take the defaults.
type Config struct {
	// Every is how often the figures are read (default 5s).
	Every time.Duration
	// MaxDLQSubjects is the most distinct CF_DLQ subjects (tenant, source,
	// type, partition) split by tenant (default 10000); above it the
	// dead letters are exported as one series with tenant "" rather than
	// reading that many subjects every Every.
	MaxDLQSubjects uint64
}

func (c Config) withDefaults() Config {
	if c.Every <= 0 {
		c.Every = 5 * time.Second
	}
	if c.MaxDLQSubjects == 0 {
		c.MaxDLQSubjects = 10000
	}
	return c
}

// Sampler keeps the backlog gauges up to date.
type Sampler struct {
	js  jetstream.JetStream
	cfg Config
	log *slog.Logger

	ingest prometheus.Gauge
	derive prometheus.Gauge
	dlq    *prometheus.GaugeVec
	// tenants are the tenant label values the last sample set on dlq.
	tenants map[string]bool
}

// New returns a Sampler reading js, its gauges registered on reg.
func New(js jetstream.JetStream, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Sampler, error) {
	s := &Sampler{
		js: js, cfg: cfg.withDefaults(), log: log.With("component", "backlog"),
		ingest: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commitflow_ingest_pending",
			Help: "Events in CF_EVENTS the current ingest consumer has not acknowledged (not yet delivered, or delivered and not yet stored): ingest_pending of /v1/status. The same in every process of a cluster.",
		}),
		derive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commitflow_derive_pending",
			Help: "Events the derive consumers of all partitions have not acknowledged (not yet delivered, or delivered and not yet derived): derive_pending of /v1/status. The same in every process of a cluster.",
		}),
		dlq: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "commitflow_dlq_messages",
			Help: "Dead letters in CF_DLQ by tenant (\"\": no tenant in the subject, or too many subjects to split); `commitflow dlq` lists and replays them. The same in every process of a cluster.",
		}, []string{"tenant"}),
		tenants: map[string]bool{},
	}
	for _, c := range []prometheus.Collector{s.ingest, s.derive, s.dlq} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("backlog metrics: %w", err)
		}
	}
	return s, nil
}

// Run samples at once and then every Config.Every until ctx ends; a failed
// sample is logged and the gauges keep their last values.
func (s *Sampler) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Every)
	defer t.Stop()
	for {
		if err := s.Sample(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("backlog sample", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sample reads the figures once and sets the gauges.
func (s *Sampler) Sample(ctx context.Context) error {
	st, err := bus.ReadStatus(ctx, s.js)
	if err != nil {
		return err
	}
	var ingest uint64
	if st.Ingest != nil {
		ingest = st.Ingest.Pending + uint64(st.Ingest.AckPending)
	}
	s.ingest.Set(float64(ingest))
	s.derive.Set(float64(st.Derive.Pending + uint64(st.Derive.AckPending)))

	byTenant, err := s.deadLetters(ctx)
	if err != nil {
		return err
	}
	for tenant := range s.tenants {
		if _, ok := byTenant[tenant]; !ok {
			s.dlq.DeleteLabelValues(tenant)
			delete(s.tenants, tenant)
		}
	}
	for tenant, n := range byTenant {
		s.dlq.WithLabelValues(tenant).Set(float64(n))
		s.tenants[tenant] = true
	}
	return nil
}

// deadLetters counts the messages of CF_DLQ by tenant (nil when there is
// no CF_DLQ); by the subjects' first token when the stream has at most
// MaxDLQSubjects subjects, else all under "".
func (s *Sampler) deadLetters(ctx context.Context) (map[string]uint64, error) {
	str, err := s.js.Stream(ctx, bus.DLQStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backlog: stream %s: %w", bus.DLQStream, err)
	}
	state := str.CachedInfo().State
	out := map[string]uint64{}
	if state.Msgs == 0 {
		return out, nil
	}
	if state.NumSubjects > s.cfg.MaxDLQSubjects {
		out[""] = state.Msgs
		return out, nil
	}
	info, err := str.Info(ctx, jetstream.WithSubjectFilter(bus.DLQPrefix+">"))
	if err != nil {
		return nil, fmt.Errorf("backlog: subjects of %s: %w", bus.DLQStream, err)
	}
	for subject, n := range info.State.Subjects {
		out[dlqTenant(subject)] += n
	}
	return out, nil
}

// dlqTenant is the tenant of a CF_DLQ subject, cf.dlq.<tenant>.<source>.
// <type>.<partition>; "" for one without (cf.dlq.unknown).
func dlqTenant(subject string) string {
	rest := strings.TrimPrefix(subject, bus.DLQPrefix)
	tenant, _, ok := strings.Cut(rest, ".")
	if !ok {
		return ""
	}
	return tenant
}
