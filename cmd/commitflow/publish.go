package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
)

// publishGenerated generates cfg's book of business and publishes it to
// JetStream in batches, showing progress on stderr.
func publishGenerated(ctx context.Context, pub *bus.Publisher, cfg gen.Config, log *slog.Logger) error {
	const batchSize = 5000
	pr := newProgress(2 * time.Second)
	batch := make([]event.Event, 0, batchSize)
	total := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := pub.PublishBatch(ctx, batch); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		total += len(batch)
		batch = batch[:0]
		pr.report(false, "published %d events (%.0f/s)", total, float64(total)/time.Since(pr.start).Seconds())
		return nil
	}
	err := gen.Generate(ctx, cfg, func(ev event.Event) error {
		batch = append(batch, ev)
		if len(batch) == batchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	pr.report(true, "published %d events in %s", total, time.Since(pr.start).Round(time.Millisecond))
	log.Info("generated events published", "tenant", cfg.Tenant, "opportunities", cfg.Opportunities, "events", total)
	return nil
}
