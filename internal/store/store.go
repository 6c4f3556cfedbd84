// Package store is commitflow's ClickHouse adapter: schema migrations, and
// reading and writing the raw events and derived events tables.
//
// Every read de-duplicates (FINAL or an exact distinct count), so a row
// inserted twice — a redelivered message, a replayed derivation — is never
// seen twice, before or after ClickHouse merges the parts. Queries work on
// ClickHouse 18.16 and on current releases.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// Options configures a Store.
type Options struct {
	// Cluster is the ClickHouse cluster name for the replicated schema
	// variant (see schemas/clickhouse/README.md); empty for one server.
	Cluster string
	// Pool names the connection pool in its errors (default "main"); see
	// Store.Pool for pools of their own.
	Pool string
	// Logger receives the store's logs; nil discards them.
	Logger *slog.Logger
}

// Store is a connection pool to one ClickHouse database. It is safe for
// concurrent use.
type Store struct {
	conn         driver.Conn
	chopt        clickhouse.Options // what conn was opened with, for Pool
	opt          Options
	logger       *slog.Logger
	database     string
	major, minor int
	scanChunk    int // opportunities per ScanEvents query
	quorum       int // replicas per shard on a cluster: see replicated
}

// codeUnknownDatabase is ClickHouse's UNKNOWN_DATABASE error code.
const codeUnknownDatabase = 81

// Open connects to the ClickHouse of dsn (a clickhouse-go DSN such as
// clickhouse://127.0.0.1:9000/commitflow; with several hosts,
// clickhouse://h1:9000,h2:9000/commitflow, each new connection goes to the
// first that answers) and checks that it answers. A
// database named in the DSN that does not exist yet is created. Settings
// given in the DSN win over the defaults here: no compression (the
// pipeline usually runs next to ClickHouse), a pool of 16 connections and a
// 5s dial timeout.
func Open(ctx context.Context, dsn string, opt Options) (*Store, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Pool == "" {
		opt.Pool = "main"
	}
	if opt.Cluster != "" {
		if err := ValidCluster(opt.Cluster); err != nil {
			return nil, err
		}
	}
	chopt, err := parseDSN(dsn)
	if err != nil {
		return nil, err
	}
	if opt.Cluster != "" {
		if chopt.Settings == nil {
			chopt.Settings = clickhouse.Settings{}
		}
		// Acknowledge an insert into a Distributed table only when the
		// shards have it, so that acking the NATS message after the insert
		// stays safe.
		if _, ok := chopt.Settings["insert_distributed_sync"]; !ok {
			chopt.Settings["insert_distributed_sync"] = 1
		}
	}
	conn, err := clickhouse.Open(chopt)
	if err != nil {
		return nil, fmt.Errorf("clickhouse %s: %w", redact(dsn), err)
	}
	err = conn.Ping(ctx)
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && ex.Code == codeUnknownDatabase && chopt.Auth.Database != "" {
		conn.Close()
		if err := createDatabase(ctx, *chopt, opt.Cluster); err != nil {
			return nil, fmt.Errorf("clickhouse %s: %w", redact(dsn), err)
		}
		if conn, err = clickhouse.Open(chopt); err != nil {
			return nil, fmt.Errorf("clickhouse %s: %w", redact(dsn), err)
		}
		err = conn.Ping(ctx)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s: ping: %w", redact(dsn), err)
	}
	s := &Store{conn: newPooled(conn, opt.Pool, chopt), chopt: *chopt, opt: opt, logger: opt.Logger, scanChunk: defaultScanChunk}
	v, err := conn.ServerVersion()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s: server version: %w", redact(dsn), err)
	}
	if err := checkSettings(v, chopt.Settings); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s: %w", redact(dsn), err)
	}
	s.major, s.minor = int(v.Version.Major), int(v.Version.Minor)
	if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&s.database); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse %s: current database: %w", redact(dsn), err)
	}
	if opt.Cluster != "" {
		if s.quorum, err = replicasPerShard(ctx, conn, opt.Cluster); err != nil {
			conn.Close()
			return nil, fmt.Errorf("clickhouse %s: %w", redact(dsn), err)
		}
	}
	s.logger.Debug("clickhouse connected", "dsn", redact(dsn), "version", fmt.Sprintf("%d.%d", s.major, s.minor), "database", s.database)
	return s, nil
}

// parseDSN parses dsn and fills in defaults it does not set.
func parseDSN(dsn string) (*clickhouse.Options, error) {
	chopt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("clickhouse DSN %s: %w", redact(dsn), err)
	}
	q := url.Values{}
	if u, err := url.Parse(dsn); err == nil {
		q = u.Query()
	}
	if !q.Has("dial_timeout") {
		chopt.DialTimeout = 5 * time.Second
	}
	if !q.Has("max_open_conns") {
		chopt.MaxOpenConns = 16
	}
	if !q.Has("max_idle_conns") {
		chopt.MaxIdleConns = 8
	}
	return chopt, nil
}

// checkSettings refuses DSN settings a server of v's protocol revision
// cannot be sent. Up to revision 54429 (ClickHouse 18.16 is 54412) a query's
// settings travel in the binary form of each setting's type on the server,
// which clickhouse-go writes for non-negative integers only: any other value
// (load_balancing=in_order, a fraction) would fail every query with
// "unsupported data type". Later servers take every setting as a string, so
// all pass through.
func checkSettings(v *driver.ServerVersion, settings clickhouse.Settings) error {
	if v.Revision > proto.DBMS_MIN_REVISION_WITH_SETTINGS_SERIALIZED_AS_STRINGS {
		return nil
	}
	var bad []string
	for k, val := range settings {
		switch x := val.(type) {
		case bool:
			continue
		case int:
			if x >= 0 {
				continue
			}
		}
		bad = append(bad, fmt.Sprintf("%s=%v", k, val))
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("DSN settings %s: ClickHouse %d.%d.%d (protocol revision %d) takes settings from this client "+
		"as non-negative integers only; give these in the profile of the DSN's user (users.xml) instead, "+
		"or use a server of protocol revision %d or later, which takes every setting in the DSN",
		strings.Join(bad, ", "), v.Version.Major, v.Version.Minor, v.Version.Patch, v.Revision,
		proto.DBMS_MIN_REVISION_WITH_SETTINGS_SERIALIZED_AS_STRINGS+1)
}

// createDatabase creates chopt's database through the default database.
func createDatabase(ctx context.Context, chopt clickhouse.Options, cluster string) error {
	name := chopt.Auth.Database
	chopt.Auth.Database = "default"
	conn, err := clickhouse.Open(&chopt)
	if err != nil {
		return err
	}
	defer conn.Close()
	if v, err := conn.ServerVersion(); err == nil {
		if err := checkSettings(v, chopt.Settings); err != nil {
			return err
		}
	}
	q := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(name)
	if cluster != "" {
		q += " ON CLUSTER " + quoteIdent(cluster)
	}
	if err := conn.Exec(ctx, q); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// redact hides a DSN's password.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	return u.Redacted()
}

// Close closes the connections of s's pool (not of the other pools).
func (s *Store) Close() error { return s.conn.Close() }

// Pool opens another pool of at most conns connections to the same server
// and database, with the same settings, named name in its errors. Giving
// each use its own pool keeps a use that holds all of its connections
// (derivation loading histories after a restart, a burst of API queries)
// from starving another, the readiness probe least of all. Close it apart
// from s.
func (s *Store) Pool(ctx context.Context, name string, conns int) (*Store, error) {
	chopt := s.chopt
	chopt.Settings = maps.Clone(s.chopt.Settings)
	chopt.MaxOpenConns = max(conns, 1)
	chopt.MaxIdleConns = chopt.MaxOpenConns
	conn, err := clickhouse.Open(&chopt)
	if err != nil {
		return nil, fmt.Errorf("clickhouse pool %q: %w", name, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("clickhouse pool %q: ping: %w", name, err)
	}
	p := *s
	p.conn = newPooled(conn, name, &chopt)
	p.chopt = chopt
	p.opt.Pool = name
	return &p, nil
}

// pooled is a connection pool whose errors say which pool could not give a
// connection in time, and why; clickhouse-go's own advice to raise the
// connection limit is rarely the cure when one use holds all of them.
type pooled struct {
	driver.Conn
	name string
	wait time.Duration // clickhouse-go's bound on getting a connection
}

func newPooled(conn driver.Conn, name string, chopt *clickhouse.Options) *pooled {
	return &pooled{Conn: conn, name: name, wait: chopt.DialTimeout}
}

// poolError is clickhouse.ErrAcquireConnTimeout, told of the pool.
type poolError struct {
	pool       string
	wait       time.Duration
	busy, size int
	err        error
}

func (e *poolError) Error() string {
	if e.busy >= e.size {
		return fmt.Sprintf("clickhouse pool %q: no connection free within %s: all %d of this pool's connections are in use by its own queries (other pools are not affected)",
			e.pool, e.wait, e.size)
	}
	return fmt.Sprintf("clickhouse pool %q: could not connect to ClickHouse within %s (%d of %d connections in use)",
		e.pool, e.wait, e.busy, e.size)
}

func (e *poolError) Unwrap() error { return e.err }

// annotate turns clickhouse-go's acquire timeout into a poolError.
func (p *pooled) annotate(err error) error {
	if err == nil || !errors.Is(err, clickhouse.ErrAcquireConnTimeout) {
		return err
	}
	st := p.Stats()
	return &poolError{pool: p.name, wait: p.wait, busy: st.Open, size: st.MaxOpenConns, err: err}
}

func (p *pooled) Select(ctx context.Context, dest any, query string, args ...any) error {
	return p.annotate(p.Conn.Select(ctx, dest, query, args...))
}

func (p *pooled) Query(ctx context.Context, query string, args ...any) (driver.Rows, error) {
	rows, err := p.Conn.Query(ctx, query, args...)
	return rows, p.annotate(err)
}

func (p *pooled) QueryRow(ctx context.Context, query string, args ...any) driver.Row {
	return pooledRow{Row: p.Conn.QueryRow(ctx, query, args...), p: p}
}

func (p *pooled) PrepareBatch(ctx context.Context, query string, opts ...driver.PrepareBatchOption) (driver.Batch, error) {
	b, err := p.Conn.PrepareBatch(ctx, query, opts...)
	return b, p.annotate(err)
}

func (p *pooled) Exec(ctx context.Context, query string, args ...any) error {
	return p.annotate(p.Conn.Exec(ctx, query, args...))
}

func (p *pooled) Ping(ctx context.Context) error { return p.annotate(p.Conn.Ping(ctx)) }

// pooledRow is a row of a pooled connection.
type pooledRow struct {
	driver.Row
	p *pooled
}

func (r pooledRow) Err() error                { return r.p.annotate(r.Row.Err()) }
func (r pooledRow) Scan(dest ...any) error    { return r.p.annotate(r.Row.Scan(dest...)) }
func (r pooledRow) ScanStruct(dest any) error { return r.p.annotate(r.Row.ScanStruct(dest)) }

// Ping checks that ClickHouse answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse ping: %w", err)
	}
	return nil
}

// Conn is the Store's connection pool, for the packages that run their own
// SQL over it (snapshot, metrics, forecast, deals, people, compact,
// verify), the benchmarks' set-up and tests' fixtures. When no connection
// is free in time, its errors name the pool, as the Store's do. It is the
// Store's own: closing it closes the Store.
func (s *Store) Conn() driver.Conn { return s.conn }

// ServerVersion is the ClickHouse server's major and minor version.
func (s *Store) ServerVersion() (major, minor int) { return s.major, s.minor }

// Database is the name of the database the store works in.
func (s *Store) Database() string { return s.database }

// TableRows returns the rows of every MergeTree table of the database on
// this server, from its active parts: rows not yet de-duplicated by merges
// count. It reads no table data. On a cluster (see clusterRows) a
// Distributed table t counts the rows of every shard instead of this
// host's t_local.
func (s *Store) TableRows(ctx context.Context) (map[string]uint64, error) {
	rows, err := s.conn.Query(ctx, `SELECT table, sum(rows) FROM system.parts
WHERE database = currentDatabase() AND active GROUP BY table`)
	if err != nil {
		return nil, fmt.Errorf("table rows: %w", err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var table string
		var n uint64
		if err := rows.Scan(&table, &n); err != nil {
			return nil, fmt.Errorf("table rows: %w", err)
		}
		out[table] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("table rows: %w", err)
	}
	return out, s.clusterRows(ctx, out)
}
