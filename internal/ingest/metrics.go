package ingest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the worker's Prometheus collectors.
type metrics struct {
	consumed     *prometheus.CounterVec
	stored       *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	batchSize    prometheus.Histogram
	insertSecs   prometheus.Histogram
	insertErrs   prometheus.Counter
	pending      prometheus.Gauge
	ackPending   prometheus.Gauge
	leader       prometheus.Gauge
	gaps         prometheus.Counter
	rejected     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	labels := []string{"tenant", "type"}
	m := &metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_ingest_events_consumed_total",
			Help: "Raw event messages fetched from JetStream, including redeliveries and invalid ones.",
		}, labels),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_ingest_events_stored_total",
			Help: "Raw events inserted into ClickHouse and acknowledged (redeliveries count again).",
		}, labels),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_ingest_events_dead_lettered_total",
			Help: "Invalid messages published to the dead-letter stream CF_DLQ.",
		}, labels),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "commitflow_ingest_batch_size",
			Help:    "Messages per fetched batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		insertSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "commitflow_ingest_insert_seconds",
			Help:    "Duration of successful ClickHouse batch inserts.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		insertErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commitflow_ingest_insert_errors_total",
			Help: "Failed ClickHouse batch inserts (each is retried).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commitflow_ingest_consumer_pending",
			Help: "Messages in CF_EVENTS not yet delivered to the ingest consumer.",
		}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commitflow_ingest_consumer_ack_pending",
			Help: "Messages delivered to the ingest worker and not yet acknowledged.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commitflow_ingest_lease_held",
			Help: "1 while this process holds the ingest lease and consumes, 0 while it stands by.",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commitflow_ingest_delivery_gaps_total",
			Help: "Delivery gaps: messages the ingest consumer delivered that never reached the worker. Each restarts consumption on a new consumer generation, which delivers them again; a rising count means the process is paused or starved of CPU.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commitflow_ingest_rows_rejected_total",
			Help: "Rows ClickHouse rejected on their own for their data, dead-lettered to CF_DLQ with the server's reason. Alert on any increase.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.consumed, m.stored, m.deadLettered, m.batchSize, m.insertSecs,
		m.insertErrs, m.pending, m.ackPending, m.leader, m.gaps, m.rejected,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ingest metrics: %w", err)
		}
	}
	return m, nil
}

// labelKey is a (tenant, type) label pair.
type labelKey struct{ tenant, typ string }

// tally counts messages per label pair within a batch, so that counters are
// touched once per pair rather than once per message.
type tally map[labelKey]int

func (t tally) addTo(c *prometheus.CounterVec) {
	for k, n := range t {
		c.WithLabelValues(k.tenant, k.typ).Add(float64(n))
	}
}
