//go:build faults

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chserver"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/verify"
)

// The fault suite's input and pace: ~105k events (4,500 opportunities of
// two tenants, 1% published twice, 2% late), published over about
// publishFor while the faults are injected.
const (
	faultOpportunities = 4500
	publishFor         = 100 * time.Second
	// faultReserve events per fault are held back until the fault has
	// ended, so that events arrive after every fault even when the
	// publisher is ahead of the schedule: recovery is the time until
	// ingest stores them.
	faultReserve = 1000
	// recoverWithin bounds the wait for ingest to resume after a fault,
	// drainWithin the wait for ingest and derive to finish at the end.
	recoverWithin = 2 * time.Minute
	drainWithin   = 5 * time.Minute
)

// TestFaults is issue 17's fault suite (make test-faults; build tag
// TestFaults is issue 17's fault suite (make test-faults; build tag
// faults). It runs the real binaries on loopback: `commitflow run` built
// from this package, a nats-server built from the module's dependency (a
// process of its own, killed with SIGKILL and restarted on the same port
// and store), and a private clickhouse-server (chserver). While the test
// publishes ~105k generated events through its own NATS connection
// (retrying each with the same Nats-Msg-Id until the stream acknowledges
// it), with a busy-loop process per core loading the CPU until the end of
// the drain, it injects in turn: 10 pauses of commitflow (SIGSTOP 2s,
// SIGCONT), kill -9 of commitflow and a restart, kill -9 of ClickHouse and
// a restart, a ClickHouse freeze (SIGSTOP 10s, SIGCONT) and kill -9 of
// nats-server and a restart; after each it measures how long ingest takes
// to resume (the ingest consumer's acknowledgement floor moves again).
//
// Once ingest and derive have drained it checks, against oracles computed
// from what it published: every published event key (tenant,
// opportunity_id, source, event_id) is in events FINAL (none lost), none
// twice, none unknown; CF_DLQ is empty (every generated event is valid);
// `commitflow verify` finds no stream range missing.
//
// The derivation oracle is in-process and pure: the published events, one
// copy of each, are inserted into a database of their own and derived there
// by pipeline.Replay (internal/derive through the store's writer, the batch
// path of `commitflow replay`). derived_events (FINAL, not retracted) and
// opportunity_state (FINAL) of the faulty run must equal the oracle's row
// for row and column for column, except the version column (a timestamp of
// the derivation batch). This is cheaper than a second, fault-free
// `commitflow run` (seconds instead of minutes) and at least as strong: the
// live pipeline under faults must match the pure function of its whole
// input (derived events are a pure function of the input events, in any
// arrival order), not merely another live run that could be wrong the same
// way. The figures are printed as a table at the end.
//
// COMMITFLOW_FAULT_LOGS, if set, is a directory to keep the processes'
// logs in (by default they go with the test's temporary directory).
func TestFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 25*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	logs := tmp
	if d := os.Getenv("COMMITFLOW_FAULT_LOGS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		logs = d
	}
	start := time.Now()
	cfBin, natsBin := buildBinaries(t, tmp)
	t.Logf("binaries built in %s; logs in %s", time.Since(start).Round(time.Second), logs)

	ch := chtest.Server(t)
	evs := generateEvents(t)
	want := keysOf(evs)

	ns := startNATS(t, natsBin, filepath.Join(tmp, "nats"), filepath.Join(logs, "nats.log"))
	cfArgs := []string{"run", "--clickhouse", dbDSN(ch, "faulty"), "--nats", ns.url, "--data", filepath.Join(tmp, "run"),
		"--http", "127.0.0.1:0", "--tokens", "fault-suite-token-0001=faults-1"}
	cfLog := filepath.Join(logs, "commitflow.log")
	cf := startCommitflow(t, cfBin, cfArgs, cfLog)
	_, js := bustest.Connect(t, ns.url) // reconnects forever, as bus.Connect does
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		t.Fatal(err)
	}

	hogs := startHogs(t, runtime.NumCPU())
	pub := &pacedPublisher{js: js, parts: parts, evs: evs, rate: float64(len(evs)) / publishFor.Seconds()}
	faults := faultSchedule(t, ch, ns, &cf, cfBin, cfArgs, cfLog)
	pub.limit.Store(int64(len(evs) - faultReserve*len(faults)))
	pubDone := make(chan error, 1)
	go func() { pubDone <- pub.run(ctx) }()

	time.Sleep(10 * time.Second) // ingest and derive under way
	var results []faultResult
	for _, f := range faults {
		r := f.run(ctx, t)
		pub.limit.Add(faultReserve)
		r.recovery, r.err = ingestResumes(ctx, js, recoverWithin)
		if r.err != nil {
			t.Errorf("%s: ingest did not resume: %v", r.name, r.err)
		}
		t.Logf("fault %-30s at %5.1fs: ingest resumed after %s", r.name, r.at.Sub(start).Seconds(), r.recovery.Round(10*time.Millisecond))
		results = append(results, r)
		time.Sleep(time.Second)
	}
	if err := <-pubDone; err != nil {
		t.Fatalf("publish: %v", err)
	}
	published := time.Since(pub.started)
	t.Logf("published %d events (%d distinct) in %s, %d publishes retried", len(evs), len(want), published.Round(time.Second), pub.retries.Load())
	drainStart := time.Now()
	faultyDB := openDB(t, ch, "faulty")
	if err := waitIdle(ctx, t, js, faultyDB, drainWithin); err != nil {
		t.Errorf("faulty run: %v", err)
		if err := cf.signal(syscall.SIGQUIT); err == nil { // its goroutines, in its log
			<-cf.done
		}
		t.Logf("%s, its own goroutines and its last warnings:\n%s", cfLog, stuck(cfLog))
	}
	drained := time.Since(drainStart)
	hogs.stop()

	got := compareKeys(want, stored(t, faultyDB))
	dead := streamMsgs(t, js, bus.DLQStream)
	verifyStart := time.Now()
	vrep := runVerify(t, cfBin, ns.url, ch, "faulty", streamLast(t, js))
	verifyTook := time.Since(verifyStart)
	cf.stop()

	oracleStart := time.Now()
	oracleDB := deriveOracle(t, ch, "oracle", evs)
	oracleTook := time.Since(oracleStart)
	derived, err := compareTables(ctx, faultyDB, oracleDB, "derived_events", "WHERE retracted = 0", []string{"tenant", "opportunity_id", "id"})
	if err != nil {
		t.Fatal(err)
	}
	states, err := compareTables(ctx, faultyDB, oracleDB, "opportunity_state", "", []string{"tenant", "opportunity_id"})
	if err != nil {
		t.Fatal(err)
	}

	// The figures, then the verdicts.
	var sum strings.Builder
	tw := tabwriter.NewWriter(&sum, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "fault\tat\tingest resumed after\n")
	for _, r := range results {
		rec := r.recovery.Round(10 * time.Millisecond).String()
		if r.err != nil {
			rec = "NOT within " + recoverWithin.String()
		}
		fmt.Fprintf(tw, "%s\t%.0fs\t%s\n", r.name, r.at.Sub(start).Seconds(), rec)
	}
	tw.Flush()
	fmt.Fprintf(&sum, "events published: %d (%d distinct keys) in %s, %d publishes retried; CPU hogs: %d; faults injected: %d\n",
		len(evs), len(want), published.Round(time.Second), pub.retries.Load(), runtime.NumCPU(), len(results))
	fmt.Fprintf(&sum, "stored %d: lost %d, doubled %d, unknown %d; dead letters %d; drained %s after the last publish\n",
		got.stored, got.lost, got.doubled, got.unknown, dead, drained.Round(time.Second))
	fmt.Fprintf(&sum, "commitflow verify: %d messages checked, %d missing, in %s\n", vrep.Messages, vrep.Missing, verifyTook.Round(100*time.Millisecond))
	fmt.Fprintf(&sum, "derived events (not retracted): %d, oracle %d, %d differ; opportunity states: %d, oracle %d, %d differ (oracle derived in %s)\n",
		derived.rowsA, derived.rowsB, derived.differ(), states.rowsA, states.rowsB, states.differ(), oracleTook.Round(100*time.Millisecond))
	fmt.Fprintf(&sum, "ERROR log lines: %d; whole suite %s\n", countErrors(t, cfLog), time.Since(start).Round(time.Second))
	t.Logf("fault suite summary:\n%s", sum.String())

	if got.lost+got.doubled+got.unknown > 0 {
		t.Errorf("%d events lost (e.g. %v), %d doubled, %d unknown", got.lost, got.lostExamples, got.doubled, got.unknown)
	}
	if dead > 0 {
		t.Errorf("%d dead letters, want none (every generated event is valid)", dead)
	}
	if vrep.Missing > 0 {
		t.Errorf("commitflow verify: %d messages missing in ranges %v", vrep.Missing, vrep.MissingRanges[:min(len(vrep.MissingRanges), 10)])
	}
	if d := derived.differ(); d > 0 {
		t.Errorf("derived events differ from the oracle's in %d rows, e.g.:\n%s", d, strings.Join(derived.examples, "\n"))
	}
	if d := states.differ(); d > 0 {
		t.Errorf("opportunity states differ from the oracle's in %d rows, e.g.:\n%s", d, strings.Join(states.examples, "\n"))
	}
	if t.Failed() {
		t.Logf("ERROR lines of %s (first 20):\n%s", cfLog, errorLines(t, cfLog, 20))
	}
}

// deriveOracle stores one copy of each of evs in database db of ch, as
// ingest would, and derives them there with pipeline.Replay: the pure
// derivation of the whole input. It returns a connection to db.
func deriveOracle(t *testing.T, ch *chserver.Server, db string, evs []event.Event) driver.Conn {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, dbDSN(ch, db), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[eventKey]bool{}
	var rows []store.RawEvent
	for i, ev := range evs {
		k := eventKey{ev.Tenant, ev.OpportunityID, ev.Source, ev.ID}
		if seen[k] {
			continue
		}
		seen[k] = true
		data, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source, EventID: ev.ID,
			Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: uint64(i + 1), Payload: data})
	}
	if err := st.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Replay(ctx, st, ladder.Default(), pipeline.ReplayOptions{Now: time.Now()}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("oracle: replay: %v", err)
	}
	return st.Conn()
}

// buildBinaries builds commitflow from this package and nats-server from
// the module's dependency into dir.
func buildBinaries(t *testing.T, dir string) (commitflow, natsServer string) {
	t.Helper()
	commitflow, natsServer = filepath.Join(dir, "commitflow"), filepath.Join(dir, "nats-server")
	for _, b := range [][]string{{commitflow, "."}, {natsServer, "github.com/nats-io/nats-server/v2"}} {
		out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return commitflow, natsServer
}

// generateEvents returns the suite's input, in generation order.
func generateEvents(t *testing.T) []event.Event {
	t.Helper()
	cfg := gen.Config{Seed: 17, Opportunities: faultOpportunities, Tenant: "faults", Tenants: 2,
		End: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), DuplicateRate: 0.01, LateRate: 0.02}
	var evs []event.Event
	err := gen.Generate(t.Context(), cfg, func(ev event.Event) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// keysOf returns the distinct keys of evs.
func keysOf(evs []event.Event) map[eventKey]bool {
	keys := make(map[eventKey]bool, len(evs))
	for _, ev := range evs {
		keys[eventKey{ev.Tenant, ev.OpportunityID, ev.Source, ev.ID}] = true
	}
	return keys
}

// child is a process the suite starts, signals and kills. It is killed
// when the thread that started it exits (the test process dies) and when
// the test ends.
type child struct {
	name string
	proc *os.Process
	done chan struct{}
}

// startChild starts bin with args, its stdout and stderr appended to
// logPath.
func startChild(t *testing.T, name, logPath, bin string, args ...string) *child {
	t.Helper()
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	c := &child{name: name, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the forking thread exits: keep it.
		runtime.LockOSThread()
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		c.proc = cmd.Process
		started <- nil
		_ = cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(c.stop)
	return c
}

// signal sends sig to the process (through its handle, which refuses
// once the process has been waited for: a reused pid is never signalled).
func (c *child) signal(sig syscall.Signal) error {
	if err := c.proc.Signal(sig); err != nil {
		return fmt.Errorf("%s: signal %v to %d: %w", c.name, sig, c.proc.Pid, err)
	}
	return nil
}

// stop kills the process (kill -9) and waits for it to exit.
func (c *child) stop() {
	_ = c.proc.Signal(syscall.SIGKILL)
	<-c.done
}

// natsProc is a nats-server process with JetStream, its store in dir.
type natsProc struct {
	*child
	url               string
	bin, dir, logPath string
	port              int
}

func startNATS(t *testing.T, bin, dir, logPath string) *natsProc {
	t.Helper()
	n := &natsProc{bin: bin, dir: dir, logPath: logPath, port: freePort(t)}
	n.url = fmt.Sprintf("nats://127.0.0.1:%d", n.port)
	n.start(t)
	return n
}

// start runs the server and returns once it accepts connections with
// JetStream enabled.
func (n *natsProc) start(t *testing.T) {
	t.Helper()
	n.child = startChild(t, "nats-server", n.logPath, n.bin, "-js", "-sd", n.dir, "-a", "127.0.0.1", "-p", fmt.Sprint(n.port), "-n", "faults")
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		nc, err := nats.Connect(n.url, nats.Timeout(time.Second))
		if err == nil {
			var js jetstream.JetStream
			if js, err = jetstream.New(nc); err == nil {
				_, err = js.AccountInfo(t.Context())
			}
			nc.Close()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nats-server on %s not ready after 30s: %v", n.url, err)
		}
	}
}

func dbDSN(ch *chserver.Server, db string) string {
	return fmt.Sprintf("clickhouse://127.0.0.1:%d/%s", ch.TCPPort(), db)
}

// startCommitflow starts `commitflow args` and returns once it logs that
// it is running.
func startCommitflow(t *testing.T, bin string, args []string, logPath string) *child {
	t.Helper()
	before := logSize(logPath)
	c := startChild(t, "commitflow", logPath, bin, args...)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(logPath)
		if int64(len(b)) > before && bytes.Contains(b[before:], []byte("commitflow is running")) {
			return c
		}
		select {
		case <-c.done:
			t.Fatalf("commitflow exited during start; log %s:\n%s", logPath, tail(b, 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("commitflow not running after 60s; log %s:\n%s", logPath, tail(b, 20))
		}
	}
}

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// stuck returns, from the log at path of a process that quit on SIGQUIT,
// the stacks of its goroutines that run commitflow's own code (where a
// stalled worker waits) and its last 40 warnings and errors.
func stuck(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	log, dump, ok := strings.Cut(string(b), "SIGQUIT: quit")
	if !ok {
		dump = log
	}
	var own []string
	for _, g := range strings.Split(dump, "\n\n") {
		if strings.Contains(g, "commitflow/internal/") || strings.Contains(g, "commitflow/cmd/") {
			own = append(own, strings.TrimSpace(g))
		}
	}
	var warn []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			warn = append(warn, l)
		}
	}
	return strings.Join(own, "\n\n") + "\n\nlast warnings and errors:\n" + strings.Join(warn[max(0, len(warn)-40):], "\n")
}

func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// hogs are busy-loop processes, one per core.
type hogs []*child

func startHogs(t *testing.T, n int) hogs {
	t.Helper()
	var h hogs
	for range n {
		h = append(h, startChild(t, "cpu hog", os.DevNull, "/bin/sh", "-c", "while :; do :; done"))
	}
	return h
}

func (h hogs) stop() {
	for _, c := range h {
		c.stop()
	}
}

// pacedPublisher publishes evs at rate events per second from 32
// goroutines (synchronous publishes: each waits for its acknowledgement), never beyond the first limit events, each event retried with
// its Nats-Msg-Id until the stream acknowledges it.
type pacedPublisher struct {
	js      jetstream.JetStream
	parts   int
	evs     []event.Event
	rate    float64
	limit   atomic.Int64
	retries atomic.Int64
	started time.Time
}

func (p *pacedPublisher) run(ctx context.Context) error {
	p.started = time.Now()
	idx := make(chan int)
	errc := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range idx {
				if err := p.publish(ctx, p.evs[i]); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	interval := time.Duration(float64(time.Second) / p.rate)
	due := time.Now()
	var err error
feed:
	for i := range p.evs {
		for int64(i) >= p.limit.Load() {
			if err = sleepCtx(ctx, 50*time.Millisecond); err != nil {
				break feed
			}
		}
		due = due.Add(interval)
		if now := time.Now(); due.Before(now) {
			due = now
		} else if d := due.Sub(now); d > 10*time.Millisecond {
			if err = sleepCtx(ctx, d); err != nil {
				break feed
			}
		}
		select {
		case idx <- i:
		case err = <-errc:
			break feed
		}
	}
	close(idx)
	wg.Wait()
	if err == nil && len(errc) > 0 {
		err = <-errc
	}
	return err
}

// publish publishes ev until the stream acknowledges it (or reports it a
// duplicate), each attempt with the same Nats-Msg-Id.
func (p *pacedPublisher) publish(ctx context.Context, ev event.Event) error {
	data, err := event.Marshal(ev)
	if err != nil {
		return err
	}
	for {
		m := nats.NewMsg(bus.Subject(ev, p.parts))
		m.Data = data
		m.Header.Set(jetstream.MsgIDHeader, bus.MsgID(ev))
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := p.js.PublishMsg(actx, m)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p.retries.Add(1)
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// fault is one injection: inject returns once the fault is over (the
// process continued or restarted).
type fault struct {
	name   string
	inject func(ctx context.Context) error
}

// faultResult is what happened to one fault.
type faultResult struct {
	name     string
	at       time.Time // when the fault ended
	recovery time.Duration
	err      error
}

func (f fault) run(ctx context.Context, t *testing.T) faultResult {
	t.Helper()
	if err := f.inject(ctx); err != nil {
		t.Fatalf("%s: %v", f.name, err)
	}
	return faultResult{name: f.name, at: time.Now()}
}

// faultSchedule lists the faults in the order they are injected. cf is
// replaced when commitflow is restarted.
func faultSchedule(t *testing.T, ch *chserver.Server, ns *natsProc, cf **child, cfBin string, cfArgs []string, cfLog string) []fault {
	var fs []fault
	for i := range 10 {
		fs = append(fs, fault{fmt.Sprintf("pause commitflow 2s (%d/10)", i+1), func(ctx context.Context) error {
			if err := (*cf).signal(syscall.SIGSTOP); err != nil {
				return err
			}
			serr := sleepCtx(ctx, 2*time.Second)
			if err := (*cf).signal(syscall.SIGCONT); err != nil {
				return err
			}
			return serr
		}})
	}
	fs = append(fs,
		fault{"kill -9 commitflow, restart", func(context.Context) error {
			(*cf).stop()
			*cf = startCommitflow(t, cfBin, cfArgs, cfLog)
			return nil
		}},
		fault{"kill -9 ClickHouse, restart", func(ctx context.Context) error {
			if err := ch.Signal(syscall.SIGKILL); err != nil {
				return err
			}
			return ch.Restart(ctx)
		}},
		fault{"freeze ClickHouse 10s", func(ctx context.Context) error {
			if err := ch.Signal(syscall.SIGSTOP); err != nil {
				return err
			}
			serr := sleepCtx(ctx, 10*time.Second)
			if err := ch.Signal(syscall.SIGCONT); err != nil {
				return err
			}
			return serr
		}},
		fault{"kill -9 nats-server, restart", func(context.Context) error {
			ns.stop()
			ns.start(t)
			return nil
		}},
	)
	return fs
}

// ingestResumes waits until the acknowledgement floor of the current
// ingest consumer moves past where it is now (read again until NATS
// answers), and returns how long that took.
func ingestResumes(ctx context.Context, js jetstream.JetStream, within time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var floor0 uint64
	first := true
	for {
		if f, err := ingestFloor(ctx, js); err == nil {
			if first {
				floor0, first = f, false
			} else if f > floor0 {
				return time.Since(start), nil
			}
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return time.Since(start), fmt.Errorf("acknowledgement floor still %d after %s", floor0, within)
		}
	}
}

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

// openDB opens database db of ch (a store, for its connection pool).
func openDB(t *testing.T, ch *chserver.Server, db string) driver.Conn {
	t.Helper()
	st, err := store.Open(t.Context(), dbDSN(ch, db), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.Conn()
}

// waitIdle waits until ingest has acknowledged the stream's last message
// with nothing pending, every derive consumer has nothing pending nor
// unacknowledged, and the table row counts have stayed the same for 3
// seconds meanwhile. It logs where the consumers stand every 30 seconds.
func waitIdle(ctx context.Context, t *testing.T, js jetstream.JetStream, conn driver.Conn, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last string
	var stable int
	start, logged := time.Now(), time.Now()
	for {
		st, err := bus.ReadStatus(ctx, js)
		if time.Since(logged) >= 30*time.Second && err == nil && st.Ingest != nil {
			logged = time.Now()
			t.Logf("draining for %s: ingest %d to deliver, %d unacknowledged; derive %d to deliver, %d unacknowledged",
				time.Since(start).Round(time.Second), st.Ingest.Pending, st.Ingest.AckPending, st.Derive.Pending, st.Derive.AckPending)
		}
		idle := err == nil && st.Ingest != nil && st.Ingest.Pending == 0 && st.Ingest.AckPending == 0 &&
			st.Derive.Pending == 0 && st.Derive.AckPending == 0
		if idle {
			floor, ferr := ingestFloor(ctx, js)
			idle = ferr == nil && len(st.Streams) > 0 && floor >= streamLastOf(ctx, js)
		}
		var counts string
		if idle {
			var e, d, s uint64
			err := conn.QueryRow(ctx, `SELECT (SELECT count() FROM events), (SELECT count() FROM derived_events), (SELECT count() FROM opportunity_state)`).Scan(&e, &d, &s)
			idle = err == nil
			counts = fmt.Sprint(e, d, s)
		}
		switch {
		case idle && counts == last:
			if stable++; stable >= 3 {
				return nil
			}
		default:
			stable = 0
		}
		last = counts
		if err := sleepCtx(ctx, time.Second); err != nil {
			return fmt.Errorf("not drained within %s: status %+v (%v)", within, st, err)
		}
	}
}

func streamLastOf(ctx context.Context, js jetstream.JetStream) uint64 {
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return ^uint64(0)
	}
	return s.CachedInfo().State.LastSeq
}

func streamLast(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.LastSeq
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().State.Msgs
}

// eventKey is the key of a row of the events table.
type eventKey struct{ tenant, opportunity, source, id string }

// stored counts the rows of every key in events FINAL.
func stored(t *testing.T, conn driver.Conn) map[eventKey]int {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT tenant, opportunity_id, source, event_id FROM events FINAL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[eventKey]int{}
	for rows.Next() {
		var k eventKey
		if err := rows.Scan(&k.tenant, &k.opportunity, &k.source, &k.id); err != nil {
			t.Fatal(err)
		}
		got[k]++
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// keyDiff compares the stored keys with the published ones.
type keyDiff struct {
	stored, lost, doubled, unknown int
	lostExamples                   []eventKey
}

func compareKeys(want map[eventKey]bool, got map[eventKey]int) keyDiff {
	var d keyDiff
	for k, n := range got {
		d.stored++
		if n > 1 {
			d.doubled++
		}
		if !want[k] {
			d.unknown++
		}
	}
	for k := range want {
		if got[k] == 0 {
			d.lost++
			if len(d.lostExamples) < 5 {
				d.lostExamples = append(d.lostExamples, k)
			}
		}
	}
	return d
}

// runVerify runs `commitflow verify` on the faulty run's stream and store
// up to stream sequence to, and returns its report.
func runVerify(t *testing.T, bin, natsURL string, ch *chserver.Server, db string, to uint64) verify.Report {
	t.Helper()
	cmd := exec.Command(bin, "verify", "--nats", natsURL, "--clickhouse", dbDSN(ch, db), "--to", fmt.Sprint(to), "--format", "json")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var rep verify.Report
	if jerr := json.Unmarshal(out.Bytes(), &rep); jerr != nil {
		t.Fatalf("commitflow verify: %v, %v\n%s%s", err, jerr, out.String(), errOut.String())
	}
	if (err != nil) != (rep.Missing > 0) {
		t.Errorf("commitflow verify: exit %v with %d missing", err, rep.Missing)
	}
	if rep.Messages == 0 {
		t.Errorf("commitflow verify checked nothing: %+v", rep)
	}
	return rep
}

// tableDiff is how two databases' versions of a table differ.
type tableDiff struct {
	rowsA, rowsB         int
	onlyA, onlyB, change int
	examples             []string
}

func (d tableDiff) differ() int { return d.onlyA + d.onlyB + d.change }

func (d *tableDiff) example(format string, args ...any) {
	if len(d.examples) < 10 {
		d.examples = append(d.examples, fmt.Sprintf(format, args...))
	}
}

// compareTables reads table FINAL from a (the run) and b (the oracle),
// ordered by key (its first columns), and compares them row by row and
// column by column, except the version column.
func compareTables(ctx context.Context, a, b driver.Conn, table, where string, key []string) (tableDiff, error) {
	q := fmt.Sprintf("SELECT * FROM %s FINAL %s ORDER BY %s", table, where, strings.Join(key, ", "))
	ra, err := openRows(ctx, a, q, len(key))
	if err != nil {
		return tableDiff{}, err
	}
	defer ra.rows.Close()
	rb, err := openRows(ctx, b, q, len(key))
	if err != nil {
		return tableDiff{}, err
	}
	defer rb.rows.Close()
	var d tableDiff
	okA, okB := ra.next(), rb.next()
	for okA || okB {
		switch {
		case okA && (!okB || ra.key < rb.key):
			d.rowsA++
			d.onlyA++
			d.example("%s %s: only in the run", table, keyText(ra.key))
			okA = ra.next()
		case okB && (!okA || rb.key < ra.key):
			d.rowsB++
			d.onlyB++
			d.example("%s %s: only in the oracle", table, keyText(rb.key))
			okB = rb.next()
		default:
			d.rowsA++
			d.rowsB++
			var cols []string
			for i, name := range ra.names {
				if name != "version" && ra.vals[i] != rb.vals[i] {
					cols = append(cols, fmt.Sprintf("%s: %.200s != %.200s", name, ra.vals[i], rb.vals[i]))
				}
			}
			if len(cols) > 0 {
				d.change++
				d.example("%s %s: %s (run != oracle)", table, keyText(ra.key), strings.Join(cols, "; "))
			}
			okA, okB = ra.next(), rb.next()
		}
	}
	for _, r := range []*tableRows{ra, rb} {
		if r.err != nil {
			return d, fmt.Errorf("read %s: %w", table, r.err)
		}
	}
	return d, nil
}

// keyText shows a tableRows key.
func keyText(key string) string { return strings.ReplaceAll(key, "\x00", " ") }

// tableRows reads any table's rows as text.
type tableRows struct {
	rows  driver.Rows
	names []string
	ptrs  []any
	vals  []string
	key   string // the first keyCols values, NUL-separated
	nkey  int
	err   error
}

func openRows(ctx context.Context, conn driver.Conn, q string, keyCols int) (*tableRows, error) {
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	r := &tableRows{rows: rows, names: rows.Columns(), nkey: keyCols}
	for _, ct := range rows.ColumnTypes() {
		r.ptrs = append(r.ptrs, reflect.New(ct.ScanType()).Interface())
	}
	r.vals = make([]string, len(r.ptrs))
	return r, nil
}

func (r *tableRows) next() bool {
	if r.err != nil || !r.rows.Next() {
		if r.err == nil {
			r.err = r.rows.Err()
		}
		return false
	}
	if r.err = r.rows.Scan(r.ptrs...); r.err != nil {
		return false
	}
	for i, p := range r.ptrs {
		v := reflect.ValueOf(p).Elem().Interface()
		if tm, ok := v.(time.Time); ok {
			v = tm.UTC()
		}
		r.vals[i] = fmt.Sprint(v)
	}
	r.key = strings.Join(r.vals[:r.nkey], "\x00")
	return true
}

// countErrors counts the ERROR lines of a commitflow log.
func countErrors(t *testing.T, path string) int {
	return strings.Count(errorLines(t, path, -1), "\n")
}

// errorLines returns the first n (all if n < 0) ERROR lines of a
// commitflow JSON log, one per line.
func errorLines(t *testing.T, path string, n int) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var b strings.Builder
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for k := 0; sc.Scan() && (n < 0 || k < n); {
		if strings.Contains(sc.Text(), `"level":"ERROR"`) {
			b.WriteString(sc.Text())
			b.WriteByte('\n')
			k++
		}
	}
	return b.String()
}
