//go:build cluster

package clustertest

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/gen"
)

// The kill suite's input and pace: about killOpportunities deals' events
// (~23 each), published killBatch at a time every killPace while the
// faults are injected, and as fast as ingest takes them afterwards.
const (
	killOpportunities = 600
	killBatch         = 50
	killPace          = 500 * time.Millisecond
	// killDown is how long a killed server stays down.
	killDown = 5 * time.Second
	// resumeWithin bounds the wait for ingest to catch up after a fault.
	resumeWithin = 2 * time.Minute
)

// TestKills runs two commitflow run processes on the cluster (a DSN
// listing the four ClickHouse hosts, the NATS cluster with R3 streams)
// while publishing generated events, and kills with SIGKILL in turn: a
// ClickHouse replica (ch4, not in the DSN's lead), the ClickHouse host the
// DSN names first (ch1, which the processes are connected to), the NATS
// node leading CF_EVENTS, and the commitflow process holding the ingest
// lease. A killed server is started again after killDown; the killed
// commitflow process is not, the other takes its work over. After each kill it
// measures how long until ingest has stored everything published before
// the kill (work resumed). Once published and drained: no event lost, none
// doubled (events FINAL and commitflow verify), and derived events, states
// and the API's answers equal a single server's on the same input.
func TestKills(t *testing.T) {
	e := env(t)
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	db := newDatabase(t, e)
	migrate(t, ctx, e, db)
	cfg := gen.Config{Seed: 11, Opportunities: killOpportunities, Tenant: "t-" + db, End: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	evs := generate(t, ctx, cfg)

	a := startRun(t, ctx, e, db, cfg.Tenant, "a")
	b := startRun(t, ctx, e, db, cfg.Tenant, "b")
	logs := func() string { return a.logs() + "\n" + b.logs() }
	// a and b are swapped when the kill of the ingest lease holder picks
	// b, so that b is the process that survives.
	nc, js, err := bus.Connect(ctx, e.nats, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, parts)

	first, err := streamLast(ctx, js) // the stream holds earlier tests' events too
	if err != nil {
		t.Fatal(err)
	}
	first++

	// The publisher: paced while faults run, then the rest at once.
	var published atomic.Int64 // events acknowledged by the stream
	var paced atomic.Bool
	paced.Store(true)
	pubDone := make(chan error, 1)
	start := time.Now()
	go func() {
		for i := 0; i < len(evs); i += killBatch {
			batch := evs[i:min(i+killBatch, len(evs))]
			if err := pub.PublishBatch(ctx, batch); err != nil {
				pubDone <- err
				return
			}
			published.Store(int64(i + len(batch)))
			if paced.Load() {
				select {
				case <-ctx.Done():
					pubDone <- ctx.Err()
					return
				case <-time.After(killPace):
				}
			}
		}
		pubDone <- nil
	}()
	time.Sleep(5 * time.Second)

	restart := func(name string) func() {
		return func() {
			time.Sleep(killDown)
			clusterCtl(t, ctx, e, "start", name)
		}
	}
	natsLeader := "nats1"
	faults := []struct {
		name    string
		kill    func()
		restart func()
	}{
		{"ClickHouse replica ch4 (shard 2)", func() { clusterCtl(t, ctx, e, "kill", "ch4") }, restart("ch4")},
		{"ClickHouse ch1, the DSN's first host", func() { clusterCtl(t, ctx, e, "kill", "ch1") }, restart("ch1")},
		{"NATS node leading CF_EVENTS", func() {
			s, err := js.Stream(ctx, bus.EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			if c := s.CachedInfo().Cluster; c != nil && strings.HasPrefix(c.Leader, "n") {
				natsLeader = "nats" + strings.TrimPrefix(c.Leader, "n")
			}
			clusterCtl(t, ctx, e, "kill", natsLeader)
		}, func() { restart(natsLeader)() }},
		{"commitflow run holding the ingest lease (of two)", func() {
			victim := ingestHolder(t, ctx, js, a, b)
			if victim == b {
				a, b = b, a // b is the survivor
			}
			victim.kill()
		}, func() {}},
	}
	var report strings.Builder
	for _, f := range faults {
		before, err := streamLast(ctx, js)
		if err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		f.kill()
		f.restart()
		err = waitFloor(ctx, js, before, resumeWithin)
		took := time.Since(killed).Round(100 * time.Millisecond)
		down := "down " + killDown.String()
		if f.name == faults[len(faults)-1].name {
			down = "not restarted"
		}
		line := fmt.Sprintf("kill -9 %-38s at %5.1fs (%s): ingest stored everything published before the kill after %s",
			f.name, killed.Sub(start).Seconds(), down, took)
		if err != nil {
			t.Errorf("%s: ingest did not resume: %v\n%s", f.name, err, logs())
			line += ", NOT RESUMED"
		}
		t.Log(line)
		report.WriteString(line + "\n")
	}
	paced.Store(false)
	if err := <-pubDone; err != nil {
		t.Fatalf("publish: %v", err)
	}
	evs = evs[:published.Load()]
	t.Logf("published %d events (%d distinct) in %s", len(evs), len(keysOf(evs)), time.Since(start).Round(time.Second))

	st := openStore(t, ctx, e, db)
	waitDrained(t, ctx, js, st.Conn(), 3*time.Minute, b.logs)
	lost, doubled, unknown := lostDoubled(keysOf(evs), storedKeys(t, ctx, st.Conn(), cfg.Tenant))
	fmt.Fprintf(&report, "events: lost %d, doubled %d, unknown %d\n", lost, doubled, unknown)
	if lost+doubled+unknown > 0 {
		t.Errorf("%d events lost, %d doubled, %d unknown", lost, doubled, unknown)
	}
	last, err := streamLast(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	out, err := commitflowErr(ctx, "verify", "--nats", e.nats, "--clickhouse", dsn(db, e.hosts...),
		"--from", fmt.Sprint(first), "--to", fmt.Sprint(last))
	if err != nil {
		t.Errorf("commitflow verify: %v\n%s", err, out)
		// Repeated in the summary, the tail of the output that CI keeps.
		fmt.Fprintf(&report, "commitflow verify FAILED: %v\n%s\n", err, out)
	} else {
		fmt.Fprintf(&report, "commitflow verify: every message from %d to %d stored or dead-lettered\n", first, last)
	}

	syncReplicas(t, ctx, e, db, "opportunity_state")
	ref := reference(t, ctx, evs)
	deals := compareDerivation(t, ctx, st.Conn(), ref, cfg.Tenant)
	answers := compareAPI(t, ctx, "http://"+b.addr, token, ref, cfg.Tenant, cfg.End.AddDate(-1, 0, 0), cfg.End, cfg.End)
	fmt.Fprintf(&report, "deals derived otherwise than on a single server: %d; API answers differing: %d of %d\n", deals, answers, len(api.Endpoints()))
	t.Logf("kill suite summary (%s):\n%s", time.Since(start).Round(time.Second), report.String())
}

// waitFloor waits until ingest has stored the stream up to sequence seq.
func waitFloor(ctx context.Context, js jetstream.JetStream, seq uint64, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var floor uint64
	for {
		f, err := ingestFloor(ctx, js)
		if err == nil {
			if floor = f; floor >= seq {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("acknowledgement floor %d, not %d, after %s", floor, seq, within)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
