package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/pipeline"
)

func cmdReplay(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	var c config.Common
	c.Register(fs)
	var gc config.GC
	gc.Register(fs)
	ladderFile := fs.String("ladder", config.Env("COMMITFLOW_LADDER", ""), "ladder configuration file; empty uses the shipped default (env COMMITFLOW_LADDER)")
	publish := fs.Bool("publish", false, "also publish changed derived events to the CF_DERIVED stream")
	asOf := fs.String("now", "", "judge time-based events (stalls, overdue actions) against this time, RFC3339; default now")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(c.LogLevel)
	if err := applyGC(gc, log); err != nil {
		return err
	}
	l, err := loadLadder(*ladderFile)
	if err != nil {
		return err
	}
	now := time.Now()
	if *asOf != "" {
		if now, err = time.Parse(time.RFC3339, *asOf); err != nil {
			return fmt.Errorf("--now: %w", err)
		}
	}
	s := &stack{log: log}
	defer s.close()
	if err := s.openStore(ctx, &c); err != nil {
		return err
	}
	opt := pipeline.ReplayOptions{Now: now}
	if c.Tenant != "" {
		opt.Tenants = []string{c.Tenant}
	}
	if *publish {
		if err := s.openNATS(ctx, &c); err != nil {
			return err
		}
		opt.JS = s.js
	}
	pr := newProgress(time.Second)
	opt.Progress = func(p pipeline.Progress) {
		pr.report(false, "tenant %s: %d opportunities, %d events (%.0f events/s)", p.Tenant, p.Opportunities, p.Events, float64(p.Events)/p.Elapsed.Seconds())
	}
	total, err := pipeline.Replay(ctx, s.st, l, opt, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "replayed %d opportunities, %d events in %s (ladder %s)\n", total.Opportunities, total.Events, total.Elapsed.Round(time.Millisecond), l.Version)
	return nil
}
