package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/logtest"
	"github.com/commitflow/commitflow/internal/promtest"
)

// openTestLeases opens bucket "TEST_LEASES" for member on its own
// connection to url, logging into a buffer.
func openTestLeases(t *testing.T, url, member string, ttl time.Duration, reg prometheus.Registerer) (*Leases, *logtest.Buffer) {
	t.Helper()
	nc, js, err := Connect(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	m, err := NewLeaseMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var buf logtest.Buffer
	ls, err := OpenLeases(t.Context(), js, LeaseConfig{
		Bucket: "TEST_LEASES", Member: member, TTL: ttl, Metrics: m,
		Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return ls, &buf
}

func mustHold(t *testing.T, l *Lease, member string) {
	t.Helper()
	holder, err := l.Acquire(t.Context())
	if err != nil || holder != member || !l.Held() {
		t.Fatalf("Acquire = %q, %v (held %v); want %q", holder, err, l.Held(), member)
	}
}

// freePort returns a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestLeaseSurvivesNATSRestart: a renewal that cannot reach NATS (the
// server is down for a second) is retried, and the lease is kept: only a
// deadline passed without an answer would lose it.
func TestLeaseSurvivesNATSRestart(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	listen := "127.0.0.1:" + strconv.Itoa(freePort(t))
	srv, err := StartEmbedded(ctx, dir, listen, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ls, logs := openTestLeases(t, srv.ClientURL(), "m1", 5*time.Second, reg)
	l := ls.Lease("holder")
	mustHold(t, l, "m1")

	srv.Shutdown()
	renewed := make(chan error, 1)
	go func() { renewed <- l.Renew(ctx) }()
	time.Sleep(time.Second)
	srv, err = StartEmbedded(ctx, dir, listen, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if err := <-renewed; err != nil {
		t.Fatalf("Renew across a NATS restart = %v\n%s", err, logs)
	}
	if !l.Held() || time.Until(l.Deadline()) < 3*time.Second {
		t.Fatalf("after the restart: held %v, deadline in %v", l.Held(), time.Until(l.Deadline()))
	}
	if got := promtest.Sum(t, reg, "commitflow_lease_renew_failures_total", "bucket", "TEST_LEASES"); got < 1 {
		t.Errorf("renew failures counted: %v, want >= 1", got)
	}
	if got := promtest.Sum(t, reg, "commitflow_lease_lost_total", "bucket", "TEST_LEASES"); got != 0 {
		t.Errorf("losses counted: %v, want 0", got)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"lease renewal failed; still held, retrying\"") {
		t.Errorf("no WARN about the failed renewal:\n%s", logs)
	}
	if err := l.Renew(ctx); err != nil {
		t.Fatalf("Renew after the restart = %v", err)
	}
}

// TestLeaseUnreachablePastDeadline: a lease that could not be renewed
// before its deadline is lost, counted as unreachable.
func TestLeaseUnreachablePastDeadline(t *testing.T) {
	srv, _ := startServer(t)
	reg := prometheus.NewRegistry()
	ls, logs := openTestLeases(t, srv.ClientURL(), "m1", time.Second, reg)
	l := ls.Lease("holder")
	mustHold(t, l, "m1")
	srv.Shutdown()
	start := time.Now()
	err := l.Renew(t.Context())
	if !errors.Is(err, ErrLeaseLost) || l.Held() {
		t.Fatalf("Renew with NATS down = %v (held %v), want ErrLeaseLost", err, l.Held())
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("Renew returned after %v, past the TTL", waited)
	}
	if got := promtest.Sum(t, reg, "commitflow_lease_lost_total", "bucket", "TEST_LEASES", "reason", "unreachable"); got != 1 {
		t.Errorf("lost unreachable = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"lease lost\"") {
		t.Errorf("no ERROR line for the loss:\n%s", logs)
	}
}

// TestLeaseTakenByAnother: a key another member holds is lost at once,
// with an ERROR naming the holder and a metric.
func TestLeaseTakenByAnother(t *testing.T) {
	srv, js := startServer(t)
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	a, logs := openTestLeases(t, srv.ClientURL(), "m1", 10*time.Second, reg)
	b, _ := openTestLeases(t, srv.ClientURL(), "m2", 10*time.Second, reg)
	la, lb := a.Lease("holder"), b.Lease("holder")
	mustHold(t, la, "m1")
	if holder, err := lb.Acquire(ctx); err != nil || holder != "m1" || lb.Held() {
		t.Fatalf("second member's Acquire = %q, %v (held %v); want m1, not held", holder, err, lb.Held())
	}
	// The key goes (an operator deletes it) and m2 takes it.
	kv, err := js.KeyValue(ctx, "TEST_LEASES")
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "holder"); err != nil {
		t.Fatal(err)
	}
	mustHold(t, lb, "m2")
	err = la.Renew(ctx)
	if !errors.Is(err, ErrLeaseLost) || la.Held() || !strings.Contains(err.Error(), "held by m2") {
		t.Fatalf("Renew of a key m2 holds = %v (held %v)", err, la.Held())
	}
	if got := promtest.Sum(t, reg, "commitflow_lease_lost_total", "bucket", "TEST_LEASES", "reason", "taken"); got != 1 {
		t.Errorf("lost taken = %v, want 1", got)
	}
	if line := logs.String(); !strings.Contains(line, "level=ERROR msg=\"lease lost\"") || !strings.Contains(line, "holder=m2") {
		t.Errorf("no ERROR line naming the holder:\n%s", line)
	}
	if err := lb.Renew(ctx); err != nil {
		t.Fatalf("the holder's Renew = %v", err)
	}
	// Released, the key is gone: its former holder's renewal finds it so.
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
	mustHold(t, la, "m1")
	if err := kv.Delete(ctx, "holder"); err != nil {
		t.Fatal(err)
	}
	if err := la.Renew(ctx); !errors.Is(err, ErrLeaseLost) || !strings.Contains(err.Error(), "expired or was deleted") {
		t.Fatalf("Renew of a deleted key = %v", err)
	}
}

// TestLeaseTakenBack: a key found under this member's own name — written
// by a request whose answer was lost, or surviving a NATS restart the
// holder took for a loss — is taken back at once instead of waiting for it
// to expire; so is a renewal whose answer was lost.
func TestLeaseTakenBack(t *testing.T) {
	srv, js := startServer(t)
	ctx := t.Context()
	reg := prometheus.NewRegistry()
	ls, logs := openTestLeases(t, srv.ClientURL(), "m1", time.Minute, reg)
	kv, err := js.KeyValue(ctx, "TEST_LEASES")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "holder", []byte("m1")); err != nil {
		t.Fatal(err)
	}
	l := ls.Lease("holder")
	mustHold(t, l, "m1")
	if got := promtest.Sum(t, reg, "commitflow_lease_taken_back_total", "bucket", "TEST_LEASES"); got != 1 {
		t.Errorf("taken back = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "lease taken back") {
		t.Errorf("no log line for the take-back:\n%s", logs)
	}
	// A renewal written whose answer was lost: the key's revision moved on
	// under our name.
	if _, err := kv.Put(ctx, "holder", []byte("m1")); err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx); err != nil || !l.Held() {
		t.Fatalf("Renew after a lost answer = %v (held %v)", err, l.Held())
	}
	// Another member finds it held.
	other, _ := openTestLeases(t, srv.ClientURL(), "m2", time.Minute, nil)
	if holder, err := other.Lease("holder").Acquire(ctx); err != nil || holder != "m1" {
		t.Fatalf("m2's Acquire = %q, %v; want m1", holder, err)
	}
}

// TestLeaseMembers: members announce themselves and count each other.
func TestLeaseMembers(t *testing.T) {
	srv, _ := startServer(t)
	ctx := t.Context()
	a, _ := openTestLeases(t, srv.ClientURL(), "m1", time.Minute, nil)
	b, _ := openTestLeases(t, srv.ClientURL(), "m2", time.Minute, nil)
	if n, err := a.Members(ctx); err != nil || n != 0 {
		t.Fatalf("Members of an empty bucket = %d, %v", n, err)
	}
	for _, ls := range []*Leases{a, b} {
		if err := ls.Announce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Lease("partition.1").Release(ctx); err != nil { // not held: nothing to do
		t.Fatal(err)
	}
	mustHold(t, a.Lease("partition.1"), "m1")
	if n, err := b.Members(ctx); err != nil || n != 2 {
		t.Fatalf("Members = %d, %v; want 2", n, err)
	}
	if err := b.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Members(ctx); err != nil || n != 1 {
		t.Fatalf("Members after a withdrawal = %d, %v; want 1", n, err)
	}
}

// TestLeaseExclusive is a property test: members on their own connections
// acquire, renew, release, stall past the TTL and crash (forget a lease
// without releasing it), at random, for a few seconds. Each records the
// intervals in which it acted as holder (from Acquire until its Deadline,
// extended by each renewal, cut short by a release). No two members'
// intervals may overlap.
func TestLeaseExclusive(t *testing.T) {
	srv, _ := startServer(t)
	const members = 4
	ttl := time.Second
	type interval struct {
		member     string
		start, end time.Time
	}
	var mu sync.Mutex
	var held []interval
	record := func(iv interval) {
		mu.Lock()
		held = append(held, iv)
		mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range members {
		member := fmt.Sprintf("m%d", i)
		ls, _ := openTestLeases(t, srv.ClientURL(), member, ttl, nil)
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		wg.Go(func() {
			l := ls.Lease("holder")
			var cur *interval
			end := func() {
				if cur != nil {
					record(*cur)
					cur = nil
				}
			}
			defer end()
			for ctx.Err() == nil {
				if !l.Held() {
					end()
					if _, err := l.Acquire(ctx); err == nil && l.Held() {
						cur = &interval{member: member, start: time.Now(), end: l.Deadline()}
					} else {
						time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
					}
					continue
				}
				switch r := rng.IntN(10); {
				case r < 2: // release, and give the others a chance
					cur.end = minTime(cur.end, time.Now())
					end()
					_ = l.Release(ctx)
					time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
				case r == 2: // stall past the TTL, then find the lease lost
					time.Sleep(ttl + 200*time.Millisecond)
					if err := l.Renew(ctx); err == nil {
						t.Errorf("%s: Renew after a stall past the TTL succeeded", member)
					}
				case r == 3: // crash: forget the lease; the key is ours until it expires
					cur.end = minTime(cur.end, time.Now())
					end()
					l = ls.Lease("holder")
				default:
					time.Sleep(time.Duration(rng.IntN(int(ttl/3/time.Millisecond))) * time.Millisecond)
					if err := l.Renew(ctx); err == nil {
						cur.end = l.Deadline()
					}
				}
			}
		})
	}
	wg.Wait()
	slices.SortFunc(held, func(a, b interval) int { return a.start.Compare(b.start) })
	holders := map[string]bool{}
	for i, a := range held {
		holders[a.member] = true
		for _, b := range held[i+1:] {
			if b.start.After(a.end) {
				break
			}
			if b.member != a.member {
				t.Errorf("%s held the lease %v–%v and %s from %v", a.member, a.start.Format("15:04:05.000"),
					a.end.Format("15:04:05.000"), b.member, b.start.Format("15:04:05.000"))
			}
		}
	}
	if len(held) < 5 || len(holders) < 2 {
		t.Errorf("%d holding intervals among %d members: the test did not exercise takeovers", len(held), len(holders))
	}
	t.Logf("%d holding intervals among %d members", len(held), len(holders))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// TestLeaseMetricsShared: both workers of a process register the lease
// counters on one registry; the second gets the first's.
func TestLeaseMetricsShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := NewLeaseMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewLeaseMetrics(reg)
	if err != nil || a.lost != b.lost || a.renewFailures != b.renewFailures || a.takenBack != b.takenBack {
		t.Fatalf("second registration: %v, shared %v", err, a.lost == b.lost)
	}
	if _, err := OpenLeases(t.Context(), jetstream.JetStream(nil), LeaseConfig{}); err == nil {
		t.Error("OpenLeases without bucket and member succeeded")
	}
}

// TestLeaseMemberNames: a member name that cannot be part of a key is
// refused when the bucket is opened, naming it, instead of every
// announcement failing later; the names runs use announce.
func TestLeaseMemberNames(t *testing.T) {
	srv, _ := startServer(t)
	nc, js, err := Connect(t.Context(), srv.ClientURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for _, name := range []string{"host:vm:0a1b2c", "a.b", "a b", "x/y", "*", ">", ""} {
		if _, err := OpenLeases(t.Context(), js, LeaseConfig{Bucket: "TEST_LEASES", Member: name}); err == nil {
			t.Errorf("member %q accepted", name)
		} else if name != "" && !strings.Contains(err.Error(), name) {
			t.Errorf("member %q: error %v does not name it", name, err)
		}
	}
	for _, name := range []string{"host-vm-0a1b2c3d4e5f", "host-ip_10_0_0_1-00ff", "2Ux8zq7t0VnKc0Wn1hJ7b3nq9Yd"} {
		ls, _ := openTestLeases(t, srv.ClientURL(), name, time.Minute, nil)
		if err := ls.Announce(t.Context()); err != nil {
			t.Errorf("member %q: %v", name, err)
		}
	}
}
