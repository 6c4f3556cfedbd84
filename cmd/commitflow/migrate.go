package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/commitflow/commitflow/internal/chserver"
	"github.com/commitflow/commitflow/internal/store"
)

// cmdMigrate applies the ClickHouse schema migrations. With no
// --clickhouse it starts a managed server under <data>/clickhouse for the
// duration of the command.
func cmdMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("migrate", nil, "").withCommon()
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("migrate: unexpected arguments %q", s.fs.Args())
	}
	c := &s.c
	dir := filepath.Join(c.Data, "clickhouse")
	if c.ClickHouse == "" {
		fmt.Fprintf(stdout, "no --clickhouse given: starting a managed clickhouse-server under %s\n", dir)
	}
	defer s.close()
	_, dsn, stop, err := chserver.Ensure(ctx, c.ClickHouse, dir, s.log)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	s.closers = append(s.closers, stop)
	st, err := store.Open(ctx, dsn, store.Options{Cluster: c.ClickHouseCluster, Logger: s.log})
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
