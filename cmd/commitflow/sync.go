package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/ksuid"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/gongsync"
)

// cmdSync is the sync command: sync gong polls Gong's call data into NATS.
func cmdSync(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "gong" {
		fmt.Fprintln(stdout, "usage: commitflow sync gong --base-url URL --access-key K --access-key-secret S [--tenant T] [--from DATE] [--interval 5m] [--once]")
		if len(args) > 0 && strings.HasPrefix(args[0], "-") {
			return flag.ErrHelp
		}
		return errors.New("sync: which source? (gong)")
	}
	s := newSetup("sync gong", nil, "info").withRun(false)
	fs := s.fs
	base := fs.String("base-url", "https://api.gong.io", "the tenant's Gong API base `URL` (Gong's API page shows it, e.g. https://us-12345.api.gong.io)")
	key := fs.String("access-key", "", "Gong API access key (required)")
	secret := fs.String("access-key-secret", "", "Gong API access key secret (required)")
	tenant := fs.String("tenant", "demo", "tenant the calls belong to")
	from := fs.String("from", "", "where to start (YYYY-MM-DD or RFC 3339) when no position is kept for the tenant; default 30 days ago. A kept position wins")
	interval := fs.Duration("interval", 5*time.Minute, "pause between polls")
	settle := fs.Duration("settle", 2*time.Hour, "windows end this long before now: Gong lists a call once its recording is processed")
	once := fs.Bool("once", false, "poll until caught up, then exit (fails if another poller of the tenant runs)")
	retry := fs.Duration("publish-retry", bus.DefaultRetryFor, "how long a page's events keep retrying while NATS acknowledges none of them")
	if err := s.parse(ctx, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sync gong: unexpected argument %q", fs.Arg(0))
	}
	start, err := syncStart(*from, time.Now())
	if err != nil {
		return fmt.Errorf("sync gong: --from: %w", err)
	}
	u, err := url.Parse(*base)
	switch {
	case *key == "" || *secret == "":
		return errors.New("sync gong: --access-key and --access-key-secret are required (Gong: Company settings, API)")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "":
		return fmt.Errorf("sync gong: --base-url: want https://host, got %q", *base)
	case *interval <= 0 || *settle < 0 || *retry <= 0:
		return errors.New("sync gong: --interval and --publish-retry must be positive, --settle not negative")
	}

	defer s.close()
	_, js, err := s.connectRun(ctx)
	if err != nil {
		return fmt.Errorf("sync gong: %w", err)
	}
	// Declare only what is missing: declaring over a running pipeline's
	// streams would reset their settings to the defaults.
	if _, err := js.Stream(ctx, bus.EventsStream); errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := bus.Declare(ctx, js, bus.Options{Logger: s.log}); err != nil {
			return fmt.Errorf("sync gong: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("sync gong: %w", err)
	}
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		return fmt.Errorf("sync gong: %w", err)
	}
	opts := bus.PublishOptions{RetryFor: *retry, Logger: s.log}
	syncer, err := gongsync.Open(ctx, js, gongsync.Config{
		BaseURL: strings.TrimSuffix(strings.TrimSuffix(*base, "/"), "/v2"), AccessKey: *key, AccessKeySecret: *secret,
		Tenant: *tenant, From: start, Settle: *settle, Interval: *interval, Member: ksuid.New().String(),
		Publisher: bus.NewPublisher(js, parts).WithOptions(opts), PublishOptions: opts, Logger: s.log,
	})
	if err != nil {
		return err
	}
	return syncer.Run(ctx, *once, func(sum gongsync.Summary) {
		fmt.Fprintf(stdout, "gong %s: %d pages, %d calls, %d events published, %d calls refused (CF_DLQ); done through %s\n",
			*tenant, sum.Pages, sum.Calls, sum.Events, sum.Refused, sum.Through.Format(time.RFC3339))
	})
}

// syncStart parses --from: a date (midnight UTC) or an RFC 3339 time;
// empty is 30 days before now, at midnight UTC.
func syncStart(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now.UTC().AddDate(0, 0, -30).Truncate(24 * time.Hour), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want YYYY-MM-DD or RFC 3339", s)
	}
	return t.UTC(), nil
}
