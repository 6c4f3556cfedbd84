// Package chtest gives tests a real ClickHouse.
//
// DSN returns a fresh database on a shared base server: the one named by
// the environment variable COMMITFLOW_TEST_CLICKHOUSE (a clickhouse-go DSN),
// or else a managed clickhouse-server started once per test binary (see
// internal/chserver). Packages using the managed server stop it with
//
//	func TestMain(m *testing.M) { chtest.Main(m) }
//
// Server starts a private managed server, for tests that stop and restart
// ClickHouse.
//
// When no server can be had, tests skip with the reason, or fail under
// CI=true so that CI never passes without having run them.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/chserver"
)

// EnvDSN names the environment variable holding the base server's DSN.
const EnvDSN = "COMMITFLOW_TEST_CLICKHOUSE"

// shared is the base server of this test binary. A package-level value is
// unavoidable here: DSN(t) has nothing else to hang it on, and the managed
// server must outlive single tests.
var shared struct {
	once   sync.Once
	dsn    string
	err    error
	server *chserver.Server // nil when the base DSN came from the environment
	dir    string
}

// Main runs the tests and then stops the managed server, if one was
// started, and removes its directory. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if shared.server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := shared.server.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "chtest: stop clickhouse-server:", err)
		}
		cancel()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// BaseDSN returns the DSN of the shared base server, starting the managed
// one on first use. It skips or fails t when there is none (see package
// doc).
func BaseDSN(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		if dsn := strings.TrimSpace(os.Getenv(EnvDSN)); dsn != "" {
			shared.dsn = dsn
			return
		}
		dir, err := os.MkdirTemp("", "commitflow-chtest-")
		if err != nil {
			shared.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := chserver.Start(ctx, dir, nil)
		if err != nil {
			os.RemoveAll(dir)
			shared.err = fmt.Errorf("no ClickHouse for tests: set %s to a server's DSN, or: %w", EnvDSN, err)
			return
		}
		shared.server, shared.dir, shared.dsn = s, dir, s.DSN()
	})
	if shared.err != nil {
		unavailable(t, shared.err)
	}
	return shared.dsn
}

// DSN creates a database with a random name (t_<hex>) on the base server
// and returns a DSN for it. The database is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	base := BaseDSN(t)
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "t_" + hex.EncodeToString(b[:])
	dsn, err := withDatabase(base, name)
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	if err := execSQL(base, "CREATE DATABASE "+name); err != nil {
		unavailable(t, fmt.Errorf("create database on %s: %w", redact(base), err))
	}
	t.Cleanup(func() {
		if err := execSQL(base, "DROP DATABASE IF EXISTS "+name); err != nil {
			t.Logf("chtest: drop database %s: %v", name, err)
		}
	})
	return dsn
}

// Server starts a private managed clickhouse-server under a temporary
// directory, stopped when t ends. Use it for tests that stop or restart
// ClickHouse; other tests should use DSN.
func Server(t testing.TB) *chserver.Server {
	t.Helper()
	dir := t.TempDir() // registered first, so removed after the Stop below
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := chserver.Start(ctx, dir, nil)
	if err != nil {
		unavailable(t, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.Stop(ctx); err != nil {
			t.Logf("chtest: stop clickhouse-server: %v", err)
		}
	})
	return s
}

// unavailable skips t, or fails it under CI=true.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("ClickHouse unavailable (CI=true, not skipping): %v", err)
	}
	t.Skipf("ClickHouse unavailable: %v", err)
}

// withDatabase returns dsn with its database replaced by name.
func withDatabase(dsn, name string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("parse DSN: %w", err)
	}
	u.Path = "/" + name
	q := u.Query()
	if q.Has("database") {
		q.Set("database", name)
		u.RawQuery = q.Encode()
	}
	return u.String(), nil
}

// execSQL runs one statement on the server of dsn.
func execSQL(dsn, query string) error {
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("parse DSN: %w", err)
	}
	if opt.DialTimeout == 0 || opt.DialTimeout > 5*time.Second {
		opt.DialTimeout = 5 * time.Second
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return conn.Exec(ctx, query)
}

// redact hides a DSN's password in messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparseable DSN)"
	}
	return u.Redacted()
}
