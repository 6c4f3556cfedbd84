// Command peer is the smallest ingest pipeline bench ingest can time as a
// peer in its tests: it reads every message of $NATS_STREAM at $NATS_URL
// with an ordered consumer and inserts their bodies into a table of the
// database of $CLICKHOUSE_DSN, in batches of 1,000, until it is stopped.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	opt, err := clickhouse.ParseDSN(os.Getenv("CLICKHOUSE_DSN"))
	if err != nil {
		return err
	}
	ch, err := clickhouse.Open(opt)
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Exec(ctx, "CREATE TABLE IF NOT EXISTS bodies (body String) ENGINE = MergeTree() ORDER BY tuple()"); err != nil {
		return err
	}
	nc, err := nats.Connect(os.Getenv("NATS_URL"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.OrderedConsumer(ctx, os.Getenv("NATS_STREAM"), jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		b, err := cons.Fetch(1000, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			return err
		}
		batch, err := ch.PrepareBatch(ctx, "INSERT INTO bodies (body)")
		if err != nil {
			return err
		}
		for m := range b.Messages() {
			if err := batch.Append(string(m.Data())); err != nil {
				return err
			}
		}
		if batch.Rows() > 0 {
			if err := batch.Send(); err != nil {
				return err
			}
		} else if err := batch.Abort(); err != nil {
			return err
		}
	}
	return nil
}
