package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/importer"
	"github.com/commitflow/commitflow/internal/people"
	"github.com/commitflow/commitflow/internal/store"
)

// usersImport is what `commitflow import --format users` needs.
type usersImport struct {
	path     string
	content  []byte
	tenant   string
	encoding string
	strict   bool
	// clickhouse and cluster are the --clickhouse DSN ("" for the
	// managed server of the run under data) and --clickhouse-cluster.
	clickhouse, cluster, data string
}

// importUsers reads a users/owners export (importer.ParseUsers) and writes
// its people to ClickHouse (internal/people), not to NATS: people are
// reference data, which nothing derives from. Only new and changed people
// are written, so importing the same file again writes nothing. With
// strict, a refused row stops the import before anything is written.
func importUsers(ctx context.Context, in usersImport, stdout io.Writer) error {
	if !event.ValidToken(in.tenant) {
		return errors.New("import: --tenant (or COMMITFLOW_TENANT) must name a tenant")
	}
	u, err := importer.ParseUsers(in.content, in.encoding)
	if err != nil {
		return fmt.Errorf("import: %s: %w", in.path, err)
	}
	if in.strict && len(u.Refused) > 0 {
		printUsersSummary(stdout, in.path, u, people.Counts{})
		r := u.Refused[0]
		return fmt.Errorf("import: %s: line %d: %s (--strict: nothing imported)", in.path, r.Line, r.Reason)
	}
	dsn, err := locateClickHouse(in.clickhouse, in.data)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	st, err := store.Open(ctx, dsn, store.Options{Cluster: in.cluster, Logger: newLogger("warn")})
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer st.Close()
	ok, err := st.Migrated(ctx)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if !ok {
		return errors.New("import: the ClickHouse schema is not migrated; run commitflow migrate")
	}
	c, err := people.New(st.Conn()).Import(ctx, in.tenant, u.People)
	if err != nil {
		return fmt.Errorf("import: %s: %w", in.path, err)
	}
	printUsersSummary(stdout, in.path, u, c)
	return nil
}

// printUsersSummary writes what a users import did, and every refused
// row.
func printUsersSummary(w io.Writer, path string, u importer.Users, c people.Counts) {
	fmt.Fprintf(w, "%s (%s): %d rows read, %d people new, %d changed, %d unchanged, %d rows refused\n",
		path, u.Format, u.Rows, c.New, c.Changed, c.Unchanged, len(u.Refused))
	for _, r := range u.Refused {
		fmt.Fprintf(w, "  line %d: %s\n", r.Line, r.Reason)
	}
}
