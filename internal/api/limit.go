package api

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxQueued is how many reports wait for a query slot when
// Config.MaxQueued is 0.
const DefaultMaxQueued = 64

// DefaultQueueTimeout is how long a report waits for a query slot when
// Config.QueueTimeout is 0.
const DefaultQueueTimeout = 10 * time.Second

// retryAfter is the Retry-After of a 503 when the server is busy: long
// enough for a slot to free under load, short enough for a dashboard.
const retryAfter = 2 * time.Second

// DefaultMaxConcurrent is the number of reports computed at once when
// Config.MaxConcurrent is 0: two per usable CPU, since a report mostly
// waits on ClickHouse.
func DefaultMaxConcurrent() int { return 2 * runtime.GOMAXPROCS(0) }

// busyError is a report refused because every query slot is taken and
// the wait queue is full, or because it waited past the queue timeout. The
// API answers it with 503 and Retry-After.
type busyError struct{ reason string }

func (e *busyError) Error() string { return "server busy: " + e.reason }

// limiter bounds the reports computed at once, with a bounded, timed wait
// queue in front. Waiters take free slots in arrival order.
type limiter struct {
	slots     chan struct{} // one element per report in progress
	maxQueued int64
	timeout   time.Duration
	waiting   atomic.Int64

	inFlight prometheus.Gauge
	queued   prometheus.Gauge
	rejected *prometheus.CounterVec
}

// newLimiter builds the limiter of cfg and registers its metrics on reg.
func newLimiter(cfg Config, reg prometheus.Registerer, logger *slog.Logger) *limiter {
	n := cfg.MaxConcurrent
	if n <= 0 {
		n = DefaultMaxConcurrent()
	}
	q := int64(cfg.MaxQueued)
	switch {
	case q == 0:
		q = DefaultMaxQueued
	case q < 0:
		q = 0
	}
	timeout := cfg.QueueTimeout
	if timeout <= 0 {
		timeout = DefaultQueueTimeout
	}
	return &limiter{
		slots:     make(chan struct{}, n),
		maxQueued: q,
		timeout:   timeout,
		inFlight: register(reg, logger, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commitflow_http_reports_in_flight",
			Help: "Reports being computed (each holding a query slot).",
		})),
		queued: register(reg, logger, prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commitflow_http_reports_queued",
			Help: "Reports waiting for a query slot.",
		})),
		rejected: register(reg, logger, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_http_reports_rejected_total",
			Help: "Reports answered 503 because the server was busy, by reason (queue_full, queue_timeout).",
		}, []string{"reason"})),
	}
}

// acquire takes a query slot, waiting in the queue if there is room in it,
// and returns the function that gives the slot back. It fails with a
// *busyError when the queue is full or the wait exceeds the queue timeout,
// and with ctx's error when the client goes away first.
func (l *limiter) acquire(ctx context.Context) (release func(), err error) {
	select {
	case l.slots <- struct{}{}:
		return l.took(), nil
	default:
	}
	if l.waiting.Add(1) > l.maxQueued {
		l.waiting.Add(-1)
		l.rejected.WithLabelValues("queue_full").Inc()
		return nil, &busyError{reason: fmt.Sprintf("%d reports in progress and %d waiting", cap(l.slots), l.maxQueued)}
	}
	l.queued.Inc()
	defer func() {
		l.waiting.Add(-1)
		l.queued.Dec()
	}()
	timer := time.NewTimer(l.timeout)
	defer timer.Stop()
	select {
	case l.slots <- struct{}{}:
		return l.took(), nil
	case <-timer.C:
		l.rejected.WithLabelValues("queue_timeout").Inc()
		return nil, &busyError{reason: fmt.Sprintf("no query slot within %s", l.timeout)}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// took accounts for a slot just taken and returns its release.
func (l *limiter) took() func() {
	l.inFlight.Inc()
	return func() {
		l.inFlight.Dec()
		<-l.slots
	}
}
