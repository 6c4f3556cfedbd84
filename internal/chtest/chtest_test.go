package chtest_test

import (
	"context"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/chtest"
)

func TestMain(m *testing.M) { chtest.Main(m) }

func open(t *testing.T, dsn string) clickhouse.Conn {
	t.Helper()
	opt, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestDSNIsFreshAndDropped(t *testing.T) {
	ctx := context.Background()
	var name string
	t.Run("use", func(t *testing.T) {
		dsn := chtest.DSN(t)
		if other := chtest.DSN(t); other == dsn {
			t.Fatalf("two DSNs are the same: %s", dsn)
		}
		conn := open(t, dsn)
		if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if len(name) != 18 || name[:2] != "t_" {
			t.Fatalf("database %q", name)
		}
		if err := conn.Exec(ctx, "CREATE TABLE x (a UInt8) ENGINE = Memory"); err != nil {
			t.Fatal(err)
		}
	})
	conn := open(t, chtest.BaseDSN(t))
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("database %s still exists after the test", name)
	}
}

func TestServerIsPrivate(t *testing.T) {
	s := chtest.Server(t)
	if s.DSN() == chtest.BaseDSN(t) {
		t.Fatal("Server returned the shared server")
	}
	if err := open(t, s.DSN()).Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
