package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/store"
)

func cmdReplay(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("replay", nil, "").withCommon().withGC().withLadders()
	publish := s.fs.Bool("publish", false, "also publish changed derived events to the CF_DERIVED stream")
	asOf := s.fs.String("now", "", "judge time-based events (stalls, overdue actions) against this time, RFC3339; default now")
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	defer s.close()
	ls, err := s.loadLadders()
	if err != nil {
		return err
	}
	now := time.Now()
	if *asOf != "" {
		if now, err = time.Parse(time.RFC3339, *asOf); err != nil {
			return fmt.Errorf("--now: %w", err)
		}
	}
	if err := s.openStore(ctx); err != nil {
		return err
	}
	opt := pipeline.ReplayOptions{Now: now}
	if s.c.Tenant != "" {
		opt.Tenants = []string{s.c.Tenant}
	}
	if *publish {
		if err := s.openNATS(ctx); err != nil {
			return err
		}
		opt.JS = s.js
	}
	pr := newProgress(time.Second)
	opt.Progress = func(p pipeline.Progress) {
		pr.report(false, "tenant %s: %d opportunities, %d events (%.0f events/s)", p.Tenant, p.Opportunities, p.Events, float64(p.Events)/p.Elapsed.Seconds())
	}
	total, err := pipeline.Replay(ctx, s.st, ls, opt, s.log)
	if err != nil {
		return err
	}
	used := "ladder " + ls.For(s.c.Tenant).Version
	if s.c.Tenant == "" {
		used = describeLadders(ls)
	}
	fmt.Fprintf(stdout, "replayed %d opportunities, %d events in %s (%s)\n", total.Opportunities, total.Events, total.Elapsed.Round(time.Millisecond), used)
	return nil
}

// replayChanged replays each tenant whose current opportunity states were
// not all derived with its ladder in ls, and only those, one after the
// other: run does it when it starts, before live derivation, so that a
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
