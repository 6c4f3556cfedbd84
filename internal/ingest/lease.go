package ingest

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
)

// leaseKey is the ingest lease's key in bus.IngestLeaseBucket.
const leaseKey = "holder"

// openLease opens (creating if needed) the ingest lease bucket and returns
// the ingest lease, not held: exclusive, expiring ownership of the ingest
// consumer, which passes to a standby process when its holder dies.
func openLease(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger, m *bus.LeaseMetrics) (*bus.Lease, error) {
	ls, err := bus.OpenLeases(ctx, js, bus.LeaseConfig{
		Bucket:      bus.IngestLeaseBucket,
		Description: "commitflow ingest lease: the one process that fetches from the ingest consumer",
		Member:      cfg.Member,
		TTL:         cfg.LeaseTTL,
		Replicas:    cfg.Replicas,
		Logger:      log.With("member", cfg.Member),
		Metrics:     m,
	})
	if err != nil {
		return nil, err
	}
	return ls.Lease(leaseKey), nil
}
