package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/chserver"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/store"
)

// ClickHouse is the ClickHouse a node works with, as OpenClickHouse
// opened it.
type ClickHouse struct {
	// Server is the managed clickhouse-server; nil when given a DSN.
	Server *chserver.Server
	// DSN is the DSN in use: the one given, or the managed server's.
	DSN string
	// Store is the store over DSN, its migrations applied.
	Store *store.Store
}

// OpenClickHouse connects to ClickHouse as c says — to c.ClickHouse, or
// to a managed clickhouse-server it starts under <c.Data>/clickhouse when
// that is empty — and applies the migrations. The function it returns
// closes the store and stops the managed server; on an error, what was
// opened is already closed.
func OpenClickHouse(ctx context.Context, c config.Common, log *slog.Logger) (ClickHouse, func(context.Context) error, error) {
	ch, dsn, stop, err := chserver.Ensure(ctx, c.ClickHouse, filepath.Join(c.Data, "clickhouse"), log)
	if err != nil {
		return ClickHouse{}, nil, err
	}
	st, err := store.Open(ctx, dsn, store.Options{Cluster: c.ClickHouseCluster, Logger: log})
	if err != nil {
		return ClickHouse{}, nil, errors.Join(err, stop(context.WithoutCancel(ctx)))
	}
	closeAll := func(ctx context.Context) error { return errors.Join(st.Close(), stop(ctx)) }
	applied, err := st.Migrate(ctx)
	if err != nil {
		return ClickHouse{}, nil, errors.Join(err, closeAll(context.WithoutCancel(ctx)))
	}
	if len(applied) > 0 {
		log.Info("migrations applied", "migrations", applied)
	}
	return ClickHouse{Server: ch, DSN: dsn, Store: st}, closeAll, nil
}

// NATS is the NATS JetStream a node works with, as OpenNATS opened it.
type NATS struct {
	Conn *nats.Conn
	JS   jetstream.JetStream
	// EmbeddedURL is the client URL of the embedded server; empty when
	// given a URL.
	EmbeddedURL string
}

// OpenNATS connects to NATS as c says — to c.NATS, or to a server it
// embeds under <c.Data>/nats, listening on c.NATSListen, when that is
// empty — and declares commitflow's streams and consumers with c's
// partitions, replicas, duplicate window and retention. The function it
// returns drains the connection and stops the embedded server; on an
// error, what was opened is already closed.
func OpenNATS(ctx context.Context, c config.Common, log *slog.Logger) (NATS, func(context.Context) error, error) {
	if err := c.CheckNATS(); err != nil {
		return NATS{}, nil, err
	}
	var n NATS
	url := c.NATS
	stopEmbedded := func() {}
	if url == "" {
		dir := filepath.Join(c.Data, "nats")
		emb, err := bus.StartEmbedded(ctx, dir, c.NATSListen, log)
		if err != nil {
			return NATS{}, nil, err
		}
		stopEmbedded = emb.Shutdown
		url, n.EmbeddedURL = emb.ClientURL(), emb.ClientURL()
		log.Info("embedded NATS JetStream started", "url", url, "store", dir)
	}
	nc, js, err := bus.Connect(ctx, url, log)
	if err != nil {
		stopEmbedded()
		return NATS{}, nil, err
	}
	closeAll := func(ctx context.Context) error {
		err := drain(ctx, nc)
		stopEmbedded()
		return err
	}
	if err := bus.Declare(ctx, js, bus.Options{
		Partitions: c.Partitions, Replicas: c.Replicas, DuplicateWindow: c.DuplicateWindow,
		MaxAge: c.Retention, DLQMaxAge: c.DLQRetention, Logger: log,
	}); err != nil {
		return NATS{}, nil, errors.Join(err, closeAll(context.WithoutCancel(ctx)))
	}
	n.Conn, n.JS = nc, js
	return n, closeAll, nil
}

// drain drains nc and waits until it is closed, or ctx ends: then it
// closes it. Drain alone returns at once, and an embedded server stopped
// meanwhile would leave the connection reconnecting.
func drain(ctx context.Context, nc *nats.Conn) error {
	err := nc.Drain()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !nc.IsClosed() {
		select {
		case <-ctx.Done():
			nc.Close()
			return errors.Join(err, fmt.Errorf("nats: drain: %w", ctx.Err()))
		case <-tick.C:
		}
	}
	return err
}
