package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/commitflow/commitflow/internal/chserver"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/store"
)

// cmdMigrate applies the ClickHouse schema migrations. With no
// --clickhouse it starts a managed server under <data>/clickhouse for the
// duration of the command.
func cmdMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	var c config.Common
	c.Register(fs)
	if err := config.Parse(ctx, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("migrate: unexpected arguments %q", fs.Args())
	}
	logger := newLogger(c.LogLevel)

	dir := filepath.Join(c.Data, "clickhouse")
	if c.ClickHouse == "" {
		fmt.Fprintf(stdout, "no --clickhouse given: starting a managed clickhouse-server under %s\n", dir)
	}
	_, dsn, stop, err := chserver.Ensure(ctx, c.ClickHouse, dir, logger)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := stop(sctx); err != nil {
			logger.Warn("stop clickhouse-server", "err", err)
		}
	}()

	st, err := store.Open(ctx, dsn, store.Options{Cluster: c.ClickHouseCluster, Logger: logger})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer st.Close()
	major, minor := st.ServerVersion()
	fmt.Fprintf(stdout, "ClickHouse %d.%d, database %s\n", major, minor, st.Database())
	applied, err := st.Migrate(ctx)
	for _, f := range applied {
		fmt.Fprintf(stdout, "applied %s\n", f)
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "schema is up to date")
	}
	return nil
}
