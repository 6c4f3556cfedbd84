package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	clickhouseschema "github.com/commitflow/commitflow/schemas/clickhouse"
)

// Migration is one versioned schema file, schemas/clickhouse/NNNN_name.sql.
type Migration struct {
	Version  int
	Name     string // file name without the version and .sql, e.g. "events"
	File     string // file name, e.g. "0001_events.sql"
	SQL      string // the file's text, placeholders not yet rendered
	Checksum string // hex SHA-256 of the file's bytes
}

var migrationFile = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// Migrations returns the migrations embedded in the binary, in version
// order.
func Migrations() ([]Migration, error) {
	return loadMigrations(clickhouseschema.FS)
}

func loadMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, name := range names {
		m := migrationFile.FindStringSubmatch(path.Base(name))
		if m == nil {
			return nil, fmt.Errorf("migration file %s: name must be NNNN_name.sql", name)
		}
		v, _ := strconv.Atoi(m[1])
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("migrations %s and %s have the same version %d", prev, name, v)
		}
		seen[v] = name
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		ms = append(ms, Migration{Version: v, Name: m[2], File: name, SQL: string(data), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Dialect is what the migration templates are rendered for.
type Dialect struct {
	// Cluster is the ClickHouse cluster name; empty for a single server.
	Cluster string
	// Database is the database the tables live in; used in cluster mode,
	// where every name is qualified.
	Database string
	// Major and Minor are the server's version.
	Major, Minor int
	// Columns holds "table.column" for every column of the database's
	// tables (on a cluster, of the host the migrator is connected to):
	// has_column looks here, so that a
	// migration adding a column can skip the ALTER once it is done
	// (ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS).
	Columns map[string]bool
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidCluster reports an error unless name is a plain identifier
// ([A-Za-z_][A-Za-z0-9_]*), the only cluster names the migrator accepts.
func ValidCluster(name string) error {
	if !identifier.MatchString(name) {
		return fmt.Errorf("cluster name %q is not an identifier ([A-Za-z_][A-Za-z0-9_]*)", name)
	}
	return nil
}

// quoteIdent quotes a ClickHouse identifier with backquotes.
func quoteIdent(s string) string {
	return "`" + strings.NewReplacer(`\`, `\\`, "`", "\\`").Replace(s) + "`"
}

// quoteString quotes a ClickHouse string literal.
func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// Render expands the placeholders of a migration's SQL for d (see
// schemas/clickhouse/README.md).
func Render(sql string, d Dialect) (string, error) {
	if d.Cluster != "" {
		if err := ValidCluster(d.Cluster); err != nil {
			return "", err
		}
		if d.Database == "" {
			return "", fmt.Errorf("cluster mode needs the database name")
		}
	}
	checkName := func(table string) error {
		if !identifier.MatchString(table) {
			return fmt.Errorf("table name %q is not an identifier", table)
		}
		return nil
	}
	funcs := template.FuncMap{
		// table "t": the table holding the rows: t, or db.t_local on a cluster.
		"table": func(table string) (string, error) {
			if err := checkName(table); err != nil {
				return "", err
			}
			if d.Cluster == "" {
				return table, nil
			}
			return quoteIdent(d.Database) + "." + quoteIdent(table+"_local"), nil
		},
		// on_cluster: nothing, or ON CLUSTER name.
		"on_cluster": func() string {
			if d.Cluster == "" {
				return ""
			}
			return "ON CLUSTER " + quoteIdent(d.Cluster)
		},
		// engine "t" "ReplacingMergeTree" args...: the engine, replicated on a
		// cluster with a ZooKeeper path per shard, database and table.
		"engine": func(table, engine string, args ...string) (string, error) {
			if err := checkName(table); err != nil {
				return "", err
			}
			if !strings.HasSuffix(engine, "MergeTree") || !identifier.MatchString(engine) {
				return "", fmt.Errorf("engine %q is not a *MergeTree engine", engine)
			}
			if d.Cluster == "" {
				return engine + "(" + strings.Join(args, ", ") + ")", nil
			}
			zk := "/clickhouse/tables/{shard}/" + d.Database + "/" + table
			all := append([]string{quoteString(zk), quoteString("{replica}")}, args...)
			return "Replicated" + engine + "(" + strings.Join(all, ", ") + ")", nil
		},
		// distributed "t" "key": nothing, or a whole statement creating the
		// Distributed table t over t_local, sharded by key.
		"distributed": func(table, key string) (string, error) {
			if err := checkName(table); err != nil {
				return "", err
			}
			if d.Cluster == "" {
				return "", nil
			}
			db := quoteIdent(d.Database)
			return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s ON CLUSTER %s AS %s.%s\nENGINE = Distributed(%s, %s, %s, %s)",
				db, quoteIdent(table), quoteIdent(d.Cluster), db, quoteIdent(table+"_local"),
				quoteIdent(d.Cluster), quoteString(d.Database), quoteString(table+"_local"), key), nil
		},
		// has_column "t" "c": whether the table {{table "t"}} names has
		// column c already.
		"has_column": func(table, column string) (bool, error) {
			if err := checkName(table); err != nil {
				return false, err
			}
			if d.Cluster != "" {
				table += "_local"
			}
			return d.Columns[table+"."+column], nil
		},
		// has_distributed_column "t" "c": true. One server has no
		// Distributed tables; on a cluster the migrator gives every
		// Distributed table the columns of its t_local after each
		// migration, host by host (syncDistributed): an ALTER ... ON
		// CLUSTER of a Distributed table fails on a cluster with
		// replicated shards, and MATERIALIZED columns must be ALIAS
		// columns there. Migrations written before that guard their
		// ALTERs of distributed_table with it.
		"has_distributed_column": func(table, column string) (bool, error) {
			if err := checkName(table); err != nil {
				return false, err
			}
			return true, nil
		},
		// distributed_table "t": on a cluster, the Distributed table t
		// over t_local; an error on one server. Only in migrations that
		// guard it with has_distributed_column, which never renders it.
		"distributed_table": func(table string) (string, error) {
			if err := checkName(table); err != nil {
				return "", err
			}
			if d.Cluster == "" {
				return "", fmt.Errorf("distributed_table %q: no Distributed tables on one server", table)
			}
			return quoteIdent(d.Database) + "." + quoteIdent(table), nil
		},
		// lowcard "String": LowCardinality(String) on servers that have it
		// as a stable type (20.x and later), String before.
		"lowcard": func(typ string) string {
			if d.Major >= 20 {
				return "LowCardinality(" + typ + ")"
			}
			return typ
		},
	}
	t, err := template.New("migration").Option("missingkey=error").Funcs(funcs).Parse(sql)
	if err != nil {
		return "", fmt.Errorf("parse template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, nil); err != nil {
		return "", fmt.Errorf("render template: %w", err)
	}
	return b.String(), nil
}

// SplitStatements splits rendered SQL into statements at each ';' that
// ends a line. Pieces holding only blanks and "--" comments are dropped.
func SplitStatements(sql string) []string {
	var stmts []string
	var cur strings.Builder
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s = strings.TrimSuffix(s, ";"); hasCode(s) {
			stmts = append(stmts, strings.TrimSpace(s))
		}
	}
	for _, line := range strings.SplitAfter(sql, "\n") {
		cur.WriteString(line)
		if strings.HasSuffix(strings.TrimRight(line, " \t\r\n"), ";") {
			flush()
		}
	}
	flush()
	return stmts
}

// hasCode reports whether s has anything but blanks and "--" comments.
func hasCode(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "--") {
			return true
		}
	}
	return false
}

// dialect is the Dialect of the store's server and options.
func (s *Store) dialect() Dialect {
	return Dialect{Cluster: s.opt.Cluster, Database: s.database, Major: s.major, Minor: s.minor}
}

// columns returns "table.column" for every column of the store's database.
func (s *Store) columns(ctx context.Context) (map[string]bool, error) {
	rows, err := s.conn.Query(ctx, `SELECT table, name FROM system.columns WHERE database = ?`, s.database)
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var table, name string
		if err := rows.Scan(&table, &name); err != nil {
			return nil, fmt.Errorf("list columns: %w", err)
		}
		out[table+"."+name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	return out, nil
}

// ensureMigrationsTable creates schema_migrations. On a cluster it is
// replicated to every host of every shard (one ZooKeeper path for all), so
// any host can answer Migrated.
func (s *Store) ensureMigrationsTable(ctx context.Context) error {
	q := `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime
) ENGINE = MergeTree ORDER BY version`
	if c := s.opt.Cluster; c != "" {
		db := quoteIdent(s.database)
		q = fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.schema_migrations ON CLUSTER %s (
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime
) ENGINE = ReplicatedMergeTree(%s, '{replica}') ORDER BY version`,
			db, quoteIdent(c), quoteString("/clickhouse/tables/all/"+s.database+"/schema_migrations"))
	}
	if err := s.conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	return nil
}

// applied is a migration recorded in schema_migrations.
type applied struct {
	name, checksum string
}

// appliedMigrations reads schema_migrations by version, as the host the
// store's connection reaches has it.
func (s *Store) appliedMigrations(ctx context.Context) (map[int]applied, error) {
	return readMigrations(ctx, s.conn, nil)
}

// registry returns the migrations recorded anywhere. On a cluster that is
// the union of every host's schema_migrations: a replica receives another
// host's rows asynchronously, so a migrate run through one host right
// after another host's would otherwise find the registry behind and apply
// everything again. Like the migrations' ON CLUSTER statements, it needs
// every host.
func (s *Store) registry(ctx context.Context) (map[int]applied, error) {
	if s.opt.Cluster == "" {
		return s.appliedMigrations(ctx)
	}
	hosts, err := s.clusterHosts(ctx)
	if err != nil {
		return nil, err
	}
	out := map[int]applied{}
	for _, addr := range hosts {
		conn, err := s.openOn(addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
		err = func() error {
			defer conn.Close()
			_, err := readMigrations(ctx, conn, out)
			return err
		}()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", addr, err)
		}
	}
	return out, nil
}

// readMigrations adds the rows of schema_migrations that conn reads to
// into, a new map when nil, and returns it.
func readMigrations(ctx context.Context, conn driver.Conn, into map[int]applied) (map[int]applied, error) {
	if into == nil {
		into = map[int]applied{}
	}
	rows, err := conn.Query(ctx, `SELECT version, any(name), any(checksum) FROM schema_migrations GROUP BY version`)
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var v uint32
		var a applied
		if err := rows.Scan(&v, &a.name, &a.checksum); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		into[int(v)] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return into, nil
}

// Migrate applies the embedded migrations that schema_migrations does not
// record yet, in version order, and returns the files it applied. It
// refuses to run when an applied migration's file has changed since. Each
// migration's statements must be idempotent (CREATE ... IF NOT EXISTS): a
// migration interrupted halfway is run again whole.
func (s *Store) Migrate(ctx context.Context) ([]string, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	return s.migrate(ctx, ms)
}

// MigrateTo applies, like Migrate, the embedded migrations up to and
// including version, and returns the files it applied: the schema as the
// release that shipped that migration left it. Upgrade tests build each
// earlier schema with it; Migrate then applies the rest.
func (s *Store) MigrateTo(ctx context.Context, version int) ([]string, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	n := 0
	for n < len(ms) && ms[n].Version <= version {
		n++
	}
	return s.migrate(ctx, ms[:n])
}

func (s *Store) migrate(ctx context.Context, ms []Migration) ([]string, error) {
	if err := s.ensureMigrationsTable(ctx); err != nil {
		return nil, err
	}
	done, err := s.registry(ctx)
	if err != nil {
		return nil, err
	}
	known := map[int]bool{}
	for _, m := range ms {
		known[m.Version] = true
		if a, ok := done[m.Version]; ok && a.checksum != m.Checksum {
			return nil, fmt.Errorf("migration %s was applied with checksum %s but the file now has %s: "+
				"applied migrations must not change; add a new migration instead", m.File, short(a.checksum), short(m.Checksum))
		}
	}
	for v, a := range done {
		if !known[v] {
			s.logger.Warn("database has a migration this binary does not know; is it older than the schema?", "version", v, "name", a.name)
		}
	}
	var appliedNow []string
	for _, m := range ms {
		if _, ok := done[m.Version]; ok {
			continue
		}
		d := s.dialect()
		if d.Columns, err = s.columns(ctx); err != nil {
			return appliedNow, fmt.Errorf("migration %s: %w", m.File, err)
		}
		sql, err := Render(m.SQL, d)
		if err != nil {
			return appliedNow, fmt.Errorf("migration %s: %w", m.File, err)
		}
		for i, stmt := range SplitStatements(sql) {
			if err := s.execStatement(ctx, stmt); err != nil {
				return appliedNow, fmt.Errorf("migration %s, statement %d: %w", m.File, i+1, err)
			}
		}
		if s.opt.Cluster != "" {
			if err := s.syncDistributed(ctx); err != nil {
				return appliedNow, fmt.Errorf("migration %s: %w", m.File, err)
			}
		}
		batch, err := s.conn.PrepareBatch(ctx, "INSERT INTO schema_migrations (version, name, checksum, applied_at)")
		if err != nil {
			return appliedNow, fmt.Errorf("record migration %s: %w", m.File, err)
		}
		if err := batch.Append(uint32(m.Version), m.Name, m.Checksum, time.Now().UTC()); err != nil {
			batch.Abort()
			return appliedNow, fmt.Errorf("record migration %s: %w", m.File, err)
		}
		if err := batch.Send(); err != nil {
			return appliedNow, fmt.Errorf("record migration %s: %w", m.File, err)
		}
		s.logger.Info("applied migration", "file", m.File)
		appliedNow = append(appliedNow, m.File)
	}
	return appliedNow, nil
}

// alterOnCluster matches an ALTER TABLE ... ON CLUSTER statement as the
// templates render it (after any comment lines): group 1 is the statement
// up to the table, group 2 the rest after the cluster name.
var alterOnCluster = regexp.MustCompile("^((?:\\s*--[^\n]*\n)*\\s*ALTER TABLE \\S+) ON CLUSTER `[A-Za-z_][A-Za-z0-9_]*`((?s).*)$")

// execStatement runs one rendered migration statement. On a cluster, an
// ALTER TABLE ... ON CLUSTER (of a replicated t_local: the templates alter
// nothing else) runs instead without ON CLUSTER on one replica of each
// shard, which passes it to the other replicas itself. Through the
// distributed DDL queue, ClickHouse 18.16 at times runs it on both
// replicas of a shard; the second one's DDL worker then stops ("Unexpected
// ZooKeeper error: Node exists, path: .../shards/.../executed") and every
// later ON CLUSTER statement waits distributed_ddl_task_timeout (180 s)
// and fails until that server restarts.
func (s *Store) execStatement(ctx context.Context, stmt string) error {
	m := alterOnCluster.FindStringSubmatch(stmt)
	if s.opt.Cluster == "" || m == nil {
		return s.conn.Exec(ctx, stmt)
	}
	shards, err := s.shardReplicas(ctx)
	if err != nil {
		return err
	}
	local := m[1] + m[2]
	for _, replicas := range shards {
		// The first replica that takes it; a replica that cannot be
		// reached leaves it to the next.
		for i, addr := range replicas {
			if err = s.execOn(ctx, addr, local); err == nil {
				break
			}
			if i < len(replicas)-1 {
				s.logger.Warn("migration statement failed on a replica, trying the next of its shard", "host", addr, "err", err)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// shardReplicas returns host:port of the replicas of each shard of the
// store's cluster, in shard and replica order.
func (s *Store) shardReplicas(ctx context.Context) ([][]string, error) {
	rows, err := s.conn.Query(ctx, `SELECT shard_num, host_address, port FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num`, s.opt.Cluster)
	if err != nil {
		return nil, fmt.Errorf("shards of cluster %s: %w", s.opt.Cluster, err)
	}
	defer rows.Close()
	var shards [][]string
	last := uint32(0)
	for rows.Next() {
		var shard uint32
		var host string
		var port uint16
		if err := rows.Scan(&shard, &host, &port); err != nil {
			return nil, fmt.Errorf("shards of cluster %s: %w", s.opt.Cluster, err)
		}
		if len(shards) == 0 || shard != last {
			shards = append(shards, nil)
			last = shard
		}
		shards[len(shards)-1] = append(shards[len(shards)-1], net.JoinHostPort(host, strconv.Itoa(int(port))))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("shards of cluster %s: %w", s.opt.Cluster, err)
	}
	if len(shards) == 0 {
		return nil, fmt.Errorf("cluster %s: not in system.clusters of the server (remote_servers)", s.opt.Cluster)
	}
	return shards, nil
}

// openOn opens one connection to the host at addr alone.
func (s *Store) openOn(addr string) (driver.Conn, error) {
	chopt := s.chopt
	chopt.Addr = []string{addr}
	chopt.MaxOpenConns, chopt.MaxIdleConns = 1, 1
	return clickhouse.Open(&chopt)
}

// execOn runs q on the host at addr alone.
func (s *Store) execOn(ctx context.Context, addr, q string) error {
	conn, err := s.openOn(addr)
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	defer conn.Close()
	if err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	return nil
}

// Migrated reports whether every embedded migration has been applied.
func (s *Store) Migrated(ctx context.Context) (bool, error) {
	ms, err := Migrations()
	if err != nil {
		return false, err
	}
	var n uint64
	if err := s.conn.QueryRow(ctx,
		`SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 'schema_migrations'`).Scan(&n); err != nil {
		return false, fmt.Errorf("look for schema_migrations: %w", err)
	}
	if n == 0 {
		return false, nil
	}
	done, err := s.appliedMigrations(ctx)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if _, ok := done[m.Version]; !ok {
			return false, nil
		}
	}
	return true, nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}
