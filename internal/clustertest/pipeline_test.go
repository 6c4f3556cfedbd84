//go:build cluster

package clustertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
)

// TestPipeline migrates an empty database on the cluster, runs commitflow
// run on it with the NATS cluster (streams with 3 replicas), publishes a
// few thousand generated events with commitflow gen --publish, and checks
// that ClickHouse stores every one of them once, and that derivation
// stores derived events and a state for the deals (issue 19 item 2: it
// stored nothing on a cluster).
func TestPipeline(t *testing.T) {
	e := env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	db := newDatabase(t, e)
	migrate(t, ctx, e, db)

	cfg := gen.Config{Seed: 7, Opportunities: 300, Tenant: "t-" + db, End: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	keys := map[[3]string]bool{}
	opps := map[string]bool{}
	if err := gen.Generate(ctx, cfg, func(ev event.Event) error {
		keys[[3]string{ev.OpportunityID, ev.Source, ev.ID}] = true
		opps[ev.OpportunityID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	addr := freeAddr(t)
	logPath := filepath.Join(dir, "run.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	logs := func() string {
		b, _ := os.ReadFile(logPath)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		return "tail of commitflow run's log:\n" + string(b)
	}
	run := exec.Command(binary, "run", "--clickhouse", dsn(db, e.hosts...), "--clickhouse-cluster", e.cluster,
		"--nats", e.nats, "--nats-replicas", "3", "--http", addr, "--data", dir,
		"--tokens", "clustertest-token-0123456789="+cfg.Tenant, "--compact-every", "0", "--log-level", "warn")
	run.Stdout, run.Stderr = logFile, logFile
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- run.Wait() }()
	t.Cleanup(func() {
		run.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			run.Process.Kill()
			<-exited
		}
	})
	readyCtx, readyCancel := context.WithTimeout(ctx, 2*time.Minute)
	waitReady(t, readyCtx, "http://"+addr+"/readyz", exited, logs)
	readyCancel()

	start := time.Now()
	commitflow(t, ctx, "gen", "--publish", "--nats", e.nats, "--seed", strconv.FormatInt(cfg.Seed, 10),
		"--opportunities", strconv.Itoa(cfg.Opportunities), "--tenant", cfg.Tenant, "--end", cfg.End.Format(time.DateOnly))
	t.Logf("published %d events of %d opportunities in %s", len(keys), len(opps), time.Since(start).Round(time.Millisecond))

	st := openStore(t, ctx, e, db)
	nc, js, err := bus.Connect(ctx, e.nats, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, name := range []string{bus.EventsStream, bus.DerivedStream} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if r := s.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, r)
		}
	}

	// Stored: every event once, as soon as ingest catches up.
	var stored uint64
	for {
		if stored, err = st.CountEvents(ctx, cfg.Tenant); err != nil {
			t.Fatal(err)
		}
		if stored >= uint64(len(keys)) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d events stored\n%s", stored, len(keys), logs())
		case <-time.After(time.Second):
		}
	}
	t.Logf("stored %d events in %s", stored, time.Since(start).Round(time.Millisecond))
	if stored != uint64(len(keys)) {
		t.Errorf("stored %d events, published %d", stored, len(keys))
	}

	// Derived: wait until the derive consumers have nothing left.
	deriveCtx, deriveCancel := context.WithTimeout(ctx, 3*time.Minute)
	defer deriveCancel()
	for {
		bs, err := bus.ReadStatus(ctx, js)
		if err != nil {
			t.Fatal(err)
		}
		if bs.Derive.Consumers > 0 && bs.Derive.Pending == 0 && bs.Derive.AckPending == 0 {
			break
		}
		select {
		case <-deriveCtx.Done():
			t.Fatalf("derivation never caught up: %+v\n%s", bs.Derive, logs())
		case <-time.After(time.Second):
		}
	}
	t.Logf("derived in %s", time.Since(start).Round(time.Millisecond))
	syncReplicas(t, ctx, e, db, "events", "derived_events", "opportunity_state")
	var derivedRows, derivedOpps, states uint64
	if err := st.Conn().QueryRow(ctx, `SELECT count(), uniqExact(opportunity_id) FROM derived_events WHERE tenant = ?`,
		cfg.Tenant).Scan(&derivedRows, &derivedOpps); err != nil {
		t.Fatal(err)
	}
	if err := st.Conn().QueryRow(ctx, `SELECT uniqExact(opportunity_id) FROM opportunity_state WHERE tenant = ?`,
		cfg.Tenant).Scan(&states); err != nil {
		t.Fatal(err)
	}
	t.Logf("derived_events: %d rows of %d opportunities; opportunity_state: %d opportunities; %d opportunities published",
		derivedRows, derivedOpps, states, len(opps))
	if derivedRows == 0 || states == 0 {
		t.Fatalf("derivation stored %d derived events and %d states\n%s", derivedRows, states, logs())
	}
	if states != derivedOpps {
		t.Errorf("%d opportunities have derived events, %d a state", derivedOpps, states)
	}
}
