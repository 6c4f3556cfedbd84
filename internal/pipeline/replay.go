package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/nats-io/nats.go/jetstream"
)

// Progress is how far a replay has come.
type Progress struct {
	Tenant        string
	Opportunities int
	Events        int
	Elapsed       time.Duration
}

// ReplayOptions configure Replay.
type ReplayOptions struct {
	// Tenants to replay; empty means every tenant with stored events.
	Tenants []string
	// JS, if set, receives the changed derived events on CF_DERIVED.
	JS jetstream.JetStream
	// Now is the clock time-based events are judged against.
	Now time.Time
	// Progress, if set, is called after every chunk of opportunities.
	Progress func(Progress)
	// Chunk is how many opportunities are derived and written together.
	Chunk int // default 1000
}

// Replay recomputes every derived event from the stored raw events (after a
// ladder change, say) and writes the difference to what is stored, exactly as
// live processing would: the same rows end up current, and rows the new
// derivation no longer yields are retracted. Memory stays flat: events are
// streamed from ClickHouse one opportunity at a time.
//
// Each tenant is derived with its ladder in ls.
//
// Run it while no live deriver is writing the same tenant, or accept that a
// concurrent live batch may be overwritten by an equal or newer result.
func Replay(ctx context.Context, st *store.Store, ls ladder.Source, opt ReplayOptions, log *slog.Logger) (Progress, error) {
	if opt.Chunk <= 0 {
		opt.Chunk = 1000
	}
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	tenants := opt.Tenants
	if len(tenants) == 0 {
		var err error
		if tenants, err = st.Tenants(ctx); err != nil {
			return Progress{}, err
		}
	}
	w := newWriter(st, opt.JS, ls, log, nil, true)
	var total Progress
	start := time.Now()
	for _, t := range tenants {
		pr := Progress{Tenant: t}
		var chunk []*opp
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			ids := make([]string, len(chunk))
			for i, o := range chunk {
				ids[i] = o.id
			}
			stored, err := st.LoadDerived(ctx, t, ids)
			if err != nil {
				return fmt.Errorf("load derived: %w", err)
			}
			for _, o := range chunk {
				o.derived = stored[o.id]
			}
			if err := w.apply(ctx, chunk, opt.Now); err != nil {
				return err
			}
			chunk = chunk[:0]
			pr.Elapsed = time.Since(start)
			if opt.Progress != nil {
				opt.Progress(pr)
			}
			return nil
		}
		err := st.ScanEvents(ctx, t, func(id string, rows []store.RawEvent) error {
			if id == "" {
				return nil // unlinked events derive nothing
			}
			chunk = append(chunk, &opp{tenant: t, id: id, events: parseEvents(log, rows)})
			pr.Opportunities++
			pr.Events += len(rows)
			if len(chunk) >= opt.Chunk {
				return flush()
			}
			return nil
		})
		if err == nil {
			err = flush()
		}
		if err != nil {
			return total, fmt.Errorf("replay tenant %s: %w", t, err)
		}
		total.Opportunities += pr.Opportunities
		total.Events += pr.Events
		log.Info("replayed tenant", "tenant", t, "ladder", ls.For(t).Version, "opportunities", pr.Opportunities, "events", pr.Events, "elapsed", time.Since(start).Round(time.Millisecond))
	}
	total.Elapsed = time.Since(start)
	return total, nil
}
