package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/commitflow/commitflow/internal/pipeline"
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
