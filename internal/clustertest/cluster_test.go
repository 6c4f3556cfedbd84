//go:build cluster

package clustertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/store"
)

// binary is the commitflow binary TestMain builds for the suite: the
// tests run it as an operator would. A package-level value is unavoidable
// here: the build happens once, in TestMain, for every test.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "clustertest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "commitflow")
	build := exec.Command("go", "build", "-o", binary, "github.com/commitflow/commitflow/cmd/commitflow")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build commitflow:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// environment is the cluster the script started.
type environment struct {
	hosts   []string // host:port of the ClickHouse hosts, shard by shard
	cluster string   // the remote_servers cluster name
	nats    string   // the NATS URLs, comma-separated
	dir     string   // the environment's directory (cluster.sh's CF_CLUSTER_DIR)
}

// env returns the environment of deploy/cluster/cluster.sh; it skips the
// test (fails it under CI=true) when there is none.
func env(t *testing.T) environment {
	t.Helper()
	e := environment{
		hosts:   strings.Split(os.Getenv("COMMITFLOW_CLUSTER_CLICKHOUSE_HOSTS"), ","),
		cluster: os.Getenv("COMMITFLOW_CLUSTER_NAME"),
		nats:    os.Getenv("COMMITFLOW_CLUSTER_NATS"),
		dir:     os.Getenv("COMMITFLOW_CLUSTER_DIR"),
	}
	if len(e.hosts) != 4 || e.cluster == "" || e.nats == "" || e.dir == "" {
		msg := "no cluster environment (COMMITFLOW_CLUSTER_*): run make test-cluster, or deploy/cluster/cluster.sh up and source its env"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return e
}

// dsn is the DSN of database db on the given hosts.
func dsn(db string, hosts ...string) string {
	return "clickhouse://" + strings.Join(hosts, ",") + "/" + db
}

// newDatabase returns the name of a database no test used yet; it is
// dropped on the whole cluster when the test ends.
func newDatabase(t *testing.T, e environment) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	db := "cf_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		conn := connect(t, e.hosts[0], "default")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := conn.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s ON CLUSTER %s", db, e.cluster)); err != nil {
			t.Logf("drop database %s: %v", db, err)
		}
	})
	return db
}

// connect opens a connection to the one host addr, database db.
func connect(t *testing.T, addr, db string) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, Auth: clickhouse.Auth{Database: db}, MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// commitflow runs the binary with args and returns its output; it fails
// the test when the command fails.
func commitflow(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := commitflowErr(ctx, args...)
	if err != nil {
		t.Fatalf("commitflow %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// commitflowErr runs the binary with args and returns its combined output
// and error.
func commitflowErr(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// migrate applies every migration to db through the first host.
func migrate(t *testing.T, ctx context.Context, e environment, db string) {
	t.Helper()
	commitflow(t, ctx, "migrate", "--clickhouse", dsn(db, e.hosts[0]), "--clickhouse-cluster", e.cluster, "--log-level", "warn")
}

// openStore opens db on every host of the cluster.
func openStore(t *testing.T, ctx context.Context, e environment, db string) *store.Store {
	t.Helper()
	st, err := store.Open(ctx, dsn(db, e.hosts...), store.Options{Cluster: e.cluster})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitReady waits until GET url answers 200, or the process whose exit
// exited reports has ended.
func waitReady(t *testing.T, ctx context.Context, url string, exited <-chan error, logs func() string) {
	t.Helper()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("exited before %s answered 200: %v\n%s", url, err, logs())
		case <-ctx.Done():
			t.Fatalf("%s never answered 200: %v\n%s", url, err, logs())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// syncReplicas waits until every replica of each table of db has fetched
// what its shard's other replica took. The inserts of events and derived
// events wait for every replica (issue 19 item 3), but opportunity_state
// and inserts made otherwise are acknowledged once one replica per shard
// has them, and a read may go to the other one.
func syncReplicas(t *testing.T, ctx context.Context, e environment, db string, tables ...string) {
	t.Helper()
	for _, host := range e.hosts {
		conn := connect(t, host, db)
		for _, table := range tables {
			if err := conn.Exec(ctx, "SYSTEM SYNC REPLICA "+db+"."+table+"_local"); err != nil {
				t.Fatalf("%s: sync replica %s: %v", host, table, err)
			}
		}
	}
}
