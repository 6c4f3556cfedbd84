//go:build cluster

package clustertest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
)

// token is the API token of the runs, for the tenant of the test.
const token = "clustertest-token-0123456789"

// runProc is a `commitflow run` process on the cluster.
type runProc struct {
	name   string
	dir    string // its --data directory
	cmd    *exec.Cmd
	addr   string // its HTTP API, host:port
	log    string // its log file
	exited chan error
}

// startRun starts `commitflow run` on database db of the cluster (a DSN
// with every ClickHouse host, the NATS cluster with R3 streams), serving
// tenant's token, and waits until it is ready. It is stopped when the test
// ends unless killed before.
func startRun(t *testing.T, ctx context.Context, e environment, db, tenant, name string) *runProc {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &runProc{name: name, dir: dir, addr: freeAddr(t), log: filepath.Join(dir, "run.log"), exited: make(chan error, 1)}
	logFile, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	r.cmd = exec.Command(binary, "run", "--clickhouse", dsn(db, e.hosts...), "--clickhouse-cluster", e.cluster,
		"--nats", e.nats, "--nats-replicas", "3", "--http", r.addr, "--data", dir,
		"--tokens", token+"="+tenant, "--compact-every", "0", "--log-level", "warn")
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState != nil {
			return
		}
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			r.cmd.Process.Kill()
			<-r.exited
		}
	})
	readyCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	waitReady(t, readyCtx, "http://"+r.addr+"/readyz", r.exited, r.logs)
	return r
}

// kill kills the process with SIGKILL and waits until it is gone.
func (r *runProc) kill() {
	r.cmd.Process.Kill()
	<-r.exited
}

// member is the name the process holds its leases under: stable for the
// host and the data directory (see claimMember in cmd/commitflow).
func (r *runProc) member(t *testing.T) string {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	clean := []byte(host)
	for i, c := range clean {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			clean[i] = '_'
		}
	}
	sum := sha256.Sum256([]byte(r.dir))
	return "host-" + string(clean) + "-" + hex.EncodeToString(sum[:6])
}

// ingestHolder returns the one of runs that holds the ingest lease.
func ingestHolder(t *testing.T, ctx context.Context, js jetstream.JetStream, runs ...*runProc) *runProc {
	t.Helper()
	kv, err := js.KeyValue(ctx, bus.IngestLeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "holder")
	if err != nil {
		t.Fatalf("ingest lease: %v", err)
	}
	for _, r := range runs {
		if r.member(t) == string(e.Value()) {
			return r
		}
	}
	t.Fatalf("ingest lease held by %q, none of the runs", e.Value())
	return nil
}

// logs returns the tail of the process's log.
func (r *runProc) logs() string {
	b, _ := os.ReadFile(r.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Sprintf("tail of commitflow run %s's log:\n%s", r.name, b)
}

// generate returns the events gen makes of cfg.
func generate(t *testing.T, ctx context.Context, cfg gen.Config) []event.Event {
	t.Helper()
	var evs []event.Event
	if err := gen.Generate(ctx, cfg, func(ev event.Event) error {
		evs = append(evs, ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return evs
}

// keysOf returns the distinct keys of evs.
func keysOf(evs []event.Event) map[eventKey]bool {
	keys := map[eventKey]bool{}
	for _, ev := range evs {
		keys[eventKey{ev.Tenant, ev.OpportunityID, ev.Source, ev.ID}] = true
	}
	return keys
}

// storedKeys returns how many rows of events FINAL hold each key of
// tenant's events.
func storedKeys(t *testing.T, ctx context.Context, conn driver.Conn, tenant string) map[eventKey]int {
	t.Helper()
	rows, err := conn.Query(ctx, `SELECT opportunity_id, source, event_id, count() FROM events FINAL WHERE tenant = ?
GROUP BY opportunity_id, source, event_id`, tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[eventKey]int{}
	for rows.Next() {
		k := eventKey{tenant: tenant}
		var n uint64
		if err := rows.Scan(&k.opportunity, &k.source, &k.id, &n); err != nil {
			t.Fatal(err)
		}
		out[k] = int(n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// lostDoubled counts the published keys not stored, and those stored more
// than once, or stored without having been published.
func lostDoubled(want map[eventKey]bool, got map[eventKey]int) (lost, doubled, unknown int) {
	for k := range want {
		if got[k] == 0 {
			lost++
		}
	}
	for k, n := range got {
		if !want[k] {
			unknown++
		}
		if n > 1 {
			doubled++
		}
	}
	return lost, doubled, unknown
}

// ingestFloor returns the acknowledgement floor of the current ingest
// consumer: the last stream sequence up to which ingest stored everything.
func ingestFloor(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := bus.CurrentIngest(actx, js)
	if err != nil {
		return 0, err
	}
	info, err := c.Info(actx)
	if err != nil {
		return 0, err
	}
	return info.AckFloor.Stream, nil
}

// streamLast returns the last sequence of CF_EVENTS.
func streamLast(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	s, err := js.Stream(actx, bus.EventsStream)
	if err != nil {
		return 0, err
	}
	return s.CachedInfo().State.LastSeq, nil
}

// waitDrained waits until ingest has stored the whole stream, the derive
// consumers have nothing pending nor unacknowledged, and the tables' row
// counts have stayed the same for 3 seconds.
func waitDrained(t *testing.T, ctx context.Context, js jetstream.JetStream, conn driver.Conn, within time.Duration, logs func() string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last string
	stable := 0
	for {
		st, err := bus.ReadStatus(ctx, js)
		idle := err == nil && st.Ingest != nil && st.Ingest.Pending == 0 && st.Ingest.AckPending == 0 &&
			st.Derive.Consumers > 0 && st.Derive.Pending == 0 && st.Derive.AckPending == 0
		if idle {
			floor, ferr := ingestFloor(ctx, js)
			lastSeq, lerr := streamLast(ctx, js)
			idle = ferr == nil && lerr == nil && floor >= lastSeq
		}
		var counts string
		if idle {
			var e, d, s uint64
			err := conn.QueryRow(ctx, `SELECT (SELECT count() FROM events), (SELECT count() FROM derived_events), (SELECT count() FROM opportunity_state)`).Scan(&e, &d, &s)
			idle = err == nil
			counts = fmt.Sprint(e, d, s)
		}
		if idle && counts == last {
			if stable++; stable >= 3 {
				return
			}
		} else {
			stable = 0
		}
		last = counts
		select {
		case <-ctx.Done():
			t.Fatalf("not drained within %s: %+v (%v)\n%s", within, st, err, logs())
		case <-time.After(time.Second):
		}
	}
}

// clusterCtl runs deploy/cluster/cluster.sh with args (kill NAME, start
// NAME) on the test's environment.
func clusterCtl(t *testing.T, ctx context.Context, e environment, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "../../deploy/cluster/cluster.sh", args...)
	cmd.Env = append(os.Environ(), "CF_CLUSTER_DIR="+e.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cluster.sh %v: %v\n%s", args, err, out)
	}
}
