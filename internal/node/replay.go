package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/store"
)

// replayChanged replays each tenant whose current opportunity states were
// not all derived with its ladder in ls, and only those, one after the
// other: a node does it when it starts, before live derivation, so that a
// change to one tenant's ladder file re-derives that tenant alone. The API
// answers such a tenant 409 until its replay is done. Changed derived
// events are published on js, as live derivation does.
func replayChanged(ctx context.Context, st *store.Store, q *metrics.Querier, ls *ladder.Set, js jetstream.JetStream, log *slog.Logger) error {
	tenants, err := st.Tenants(ctx)
	if err != nil {
		return err
	}
	for _, t := range tenants {
		l := ls.For(t)
		err := q.CheckLadder(ctx, t, l.Version)
		var le *metrics.LadderError
		switch {
		case err == nil:
			continue
		case !errors.As(err, &le):
			return fmt.Errorf("ladder of tenant %s: %w", t, err)
		}
		log.Info("tenant's ladder changed since its states were derived: replaying the tenant", "tenant", t, "ladder", l.Version, "states_by_ladder", le.Found)
		if _, err := pipeline.Replay(ctx, st, ls, pipeline.ReplayOptions{Tenants: []string{t}, JS: js}, log); err != nil {
			return err
		}
	}
	return nil
}
