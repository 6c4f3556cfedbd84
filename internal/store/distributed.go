package store

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// column is a column of a table as system.columns describes it.
type column struct {
	name, typ, kind, expr string
}

// distributedColumn is how the Distributed table over a table with column
// c declares it. A MATERIALIZED column becomes an ALIAS with the same
// expression: an INSERT through the Distributed table then neither names
// it nor sends it to the shards (which refuse values for a MATERIALIZED
// column, whatever the settings), and a SELECT naming it is sent to the
// shards as the bare name, so they read the stored column.
func distributedColumn(c column) column {
	if c.kind == "MATERIALIZED" {
		c.kind = "ALIAS"
	}
	return c
}

// definition is c as written in ADD COLUMN and MODIFY COLUMN.
func (c column) definition() string {
	def := quoteIdent(c.name) + " " + c.typ
	if c.kind != "" {
		def += " " + c.kind + " " + c.expr
	}
	return def
}

// syncDistributed gives every Distributed table t of the database, on
// every host of the cluster, the columns of t_local on that host (see
// distributedColumn): it adds the missing ones, modifies those that
// differ and drops those t_local no longer has.
//
// It runs each ALTER on each host directly rather than ON CLUSTER: a
// Distributed table is not replicated, and ClickHouse refuses ALTER ... ON
// CLUSTER of a table that is not replicated on a cluster whose shards are
// (internal_replication), which is every cluster worth the name. A host
// that cannot be reached fails the migration, which is run again whole.
func (s *Store) syncDistributed(ctx context.Context) error {
	hosts, err := s.clusterHosts(ctx)
	if err != nil {
		return err
	}
	for _, addr := range hosts {
		if err := s.syncDistributedOn(ctx, addr); err != nil {
			return fmt.Errorf("distributed tables on %s: %w", addr, err)
		}
	}
	return nil
}

// clusterHosts returns host:port of every host of the store's cluster.
func (s *Store) clusterHosts(ctx context.Context) ([]string, error) {
	rows, err := s.conn.Query(ctx, `SELECT host_address, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num`, s.opt.Cluster)
	if err != nil {
		return nil, fmt.Errorf("hosts of cluster %s: %w", s.opt.Cluster, err)
	}
	defer rows.Close()
	var hosts []string
	for rows.Next() {
		var host string
		var port uint16
		if err := rows.Scan(&host, &port); err != nil {
			return nil, fmt.Errorf("hosts of cluster %s: %w", s.opt.Cluster, err)
		}
		hosts = append(hosts, net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hosts of cluster %s: %w", s.opt.Cluster, err)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("cluster %s: not in system.clusters of the server (remote_servers)", s.opt.Cluster)
	}
	return hosts, nil
}

// syncDistributedOn is syncDistributed on the host at addr.
func (s *Store) syncDistributedOn(ctx context.Context, addr string) error {
	conn, err := s.openOn(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	tables, err := tableColumns(ctx, conn, s.database)
	if err != nil {
		return err
	}
	for _, t := range tables.distributed {
		local, ok := tables.columns[t+"_local"]
		if !ok {
			continue
		}
		have := map[string]column{}
		for _, c := range tables.columns[t] {
			have[c.name] = c
		}
		want := map[string]bool{}
		var alters []string
		for _, lc := range local {
			c := distributedColumn(lc)
			want[c.name] = true
			switch cur, ok := have[c.name]; {
			case !ok:
				alters = append(alters, "ADD COLUMN "+c.definition())
			case cur != c:
				alters = append(alters, "MODIFY COLUMN "+c.definition())
			}
		}
		for _, c := range tables.columns[t] {
			if !want[c.name] {
				alters = append(alters, "DROP COLUMN "+quoteIdent(c.name))
			}
		}
		for _, a := range alters {
			q := "ALTER TABLE " + quoteIdent(s.database) + "." + quoteIdent(t) + " " + a
			if err := conn.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
			s.logger.Info("altered distributed table", "host", addr, "table", t, "alter", a)
		}
	}
	return nil
}

// databaseTables is what syncDistributedOn reads of a database.
type databaseTables struct {
	distributed []string            // the Distributed tables
	columns     map[string][]column // every table's columns, in order
}

// tableColumns reads the tables and columns of database on conn's server.
func tableColumns(ctx context.Context, conn driver.Conn, database string) (databaseTables, error) {
	out := databaseTables{columns: map[string][]column{}}
	var err error
	if out.distributed, err = distributedTables(ctx, conn, database); err != nil {
		return out, err
	}
	rows, err := conn.Query(ctx, `SELECT table, name, type, default_kind, default_expression FROM system.columns WHERE database = ?`, database)
	if err != nil {
		return out, fmt.Errorf("list columns: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table string
		var c column
		if err := rows.Scan(&table, &c.name, &c.typ, &c.kind, &c.expr); err != nil {
			return out, fmt.Errorf("list columns: %w", err)
		}
		out.columns[table] = append(out.columns[table], c)
	}
	return out, rows.Err()
}

// clusterRows replaces in rows (table rows of this host, from TableRows)
// each t_local of a Distributed table t by t's rows: those of every shard,
// one replica each, not yet de-duplicated by merges either. count() on a
// MergeTree table reads part metadata, not data.
func (s *Store) clusterRows(ctx context.Context, rows map[string]uint64) error {
	tables, err := distributedTables(ctx, s.conn, s.database)
	if err != nil {
		return fmt.Errorf("table rows: %w", err)
	}
	for _, t := range tables {
		var n uint64
		if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+quoteIdent(s.database)+"."+quoteIdent(t)).Scan(&n); err != nil {
			return fmt.Errorf("table rows of %s: %w", t, err)
		}
		delete(rows, t+"_local")
		rows[t] = n
	}
	return nil
}

// distributedTables returns the Distributed tables of database on conn's
// server.
func distributedTables(ctx context.Context, conn driver.Conn, database string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT name FROM system.tables WHERE database = ? AND engine = 'Distributed' ORDER BY name`, database)
	if err != nil {
		return nil, fmt.Errorf("list distributed tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list distributed tables: %w", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list distributed tables: %w", err)
	}
	return names, nil
}
