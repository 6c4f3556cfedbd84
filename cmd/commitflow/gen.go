package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/gen"
)

// runGen is the gen command; it writes progress and its summary to
// stderr.
func runGen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	s := newSetup("gen", stderr, "info")
	fs := s.fs
	var (
		cfg     gen.Config
		end     string
		out     string
		publish bool
		natsURL string
		retry   time.Duration
	)
	fs.Int64Var(&cfg.Seed, "seed", 1, "random seed; the same flags give the same events, byte for byte")
	fs.IntVar(&cfg.Opportunities, "opportunities", 500, "number of opportunities to generate")
	fs.StringVar(&cfg.Tenant, "tenant", "demo", "tenant name; with --tenants N > 1 the tenants are TENANT-1..TENANT-N")
	fs.IntVar(&cfg.Tenants, "tenants", 1, "number of tenants")
	fs.StringVar(&end, "end", "", "end of the data, YYYY-MM-DD (00:00 UTC; default today); the data spans the year before it")
	fs.Float64Var(&cfg.DuplicateRate, "duplicates", 0, "share of events emitted twice (same id), 0..1")
	fs.Float64Var(&cfg.LateRate, "late", 0, "share of events emitted out of order with a late received_at, 0..1")
	fs.StringVar(&out, "out", "-", "output file for NDJSON events; - is stdout")
	fs.BoolVar(&publish, "publish", false, "publish the events to NATS JetStream instead of writing them")
	fs.DurationVar(&retry, "publish-retry", bus.DefaultRetryFor, "with --publish, how long a batch keeps retrying while NATS acknowledges none of its events (server down, leader election) before gen fails")
	fs.StringVar(&natsURL, "nats", "nats://127.0.0.1:4222", "NATS URL for --publish; the default is where `commitflow run` embeds its server")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: commitflow gen [--seed S] [--opportunities N] [--tenant T] [--end YYYY-MM-DD] [--out FILE.ndjson | --publish [--publish-retry D]]")
		fs.PrintDefaults()
	}
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("gen: unexpected argument %q", fs.Arg(0))
	}
	if end == "" {
		cfg.End = time.Now().UTC().Truncate(24 * time.Hour)
	} else {
		t, err := time.Parse(time.DateOnly, end)
		if err != nil {
			return fmt.Errorf("gen: --end %q: want YYYY-MM-DD", end)
		}
		cfg.End = t
	}
	if retry <= 0 {
		return fmt.Errorf("gen: --publish-retry %s: want a positive duration", retry)
	}
	if publish {
		return genPublish(ctx, cfg, natsURL, retry, s.log)
	}

	w := stdout
	name := "stdout"
	var f *os.File
	if out != "-" && out != "" {
		var err error
		if f, err = os.Create(out); err != nil {
			return fmt.Errorf("gen: %w", err)
		}
		defer f.Close()
		w, name = f, out
	}
	p := &genProgress{w: w, log: stderr, start: time.Now()}
	p.last = p.start
	n, err := gen.GenerateToWriter(ctx, cfg, p)
	if f != nil {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close %s: %w", name, cerr)
		}
	}
	if err != nil {
		return fmt.Errorf("gen: %s: %w", name, err)
	}
	el := time.Since(p.start)
	fmt.Fprintf(stderr, "gen: wrote %d events for %d opportunities to %s in %s (%.0f events/s)\n",
		n, cfg.Opportunities, name, el.Round(time.Millisecond), float64(n)/max(el.Seconds(), 1e-9))
	return nil
}

// genProgress passes writes through to w, counting the NDJSON lines, and
// reports on log every 2 seconds.
type genProgress struct {
	w           io.Writer
	log         io.Writer
	start, last time.Time
	n           int // events written
}

func (p *genProgress) Write(b []byte) (int, error) {
	k, err := p.w.Write(b)
	p.n += bytes.Count(b[:k], []byte{'\n'})
	if now := time.Now(); now.Sub(p.last) >= 2*time.Second {
		p.last = now
		fmt.Fprintf(p.log, "gen: %d events written, %.0f events/s\n", p.n, float64(p.n)/now.Sub(p.start).Seconds())
	}
	return k, err
}

// genPublish publishes the generated events to the NATS server at url, whose
// streams it declares if they are missing. A batch NATS does not acknowledge
// is retried, with its message ids, until none of it has been for retry.
func genPublish(ctx context.Context, cfg gen.Config, url string, retry time.Duration, log *slog.Logger) error {
	pub, drain, err := publisher(ctx, url, "", retry, log)
	if err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	defer drain()
	return publishGenerated(ctx, pub, cfg, log)
}
