package ingest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/promtest"
)

// malformed is a message the worker must dead-letter.
type malformed struct {
	subject string
	data    []byte
	field   string // must appear in the Commitflow-Error header
}

// malformedEvents returns n distinct malformed messages: bad JSON, missing
// fields and bad enum values.
func malformedEvents(t testing.TB, n int) []malformed {
	t.Helper()
	at := time.Date(2025, 2, 1, 10, 0, 0, 0, time.UTC)
	enc := func(ev event.Event) []byte {
		b, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	call := func(i int, side event.Side) *event.Call {
		return &event.Call{CallID: fmt.Sprint("bad-call-", i), StartedAt: at, Participants: []event.Participant{{Email: "x@y.example", Side: side}}}
	}
	out := make([]malformed, n)
	for i := range out {
		id := fmt.Sprintf("bad-%03d", i)
		subj := fmt.Sprintf("cf.events.acme.salesforce.opportunity_stage_changed.%d", i%16)
		ok := event.Event{ID: id, Tenant: "acme", Source: "salesforce", Type: event.StageChanged,
			OccurredAt: at, OpportunityID: "006BAD", Payload: &event.StageChange{To: "Proposal"}}
		var m malformed
		switch i % 7 {
		case 0: // truncated JSON
			m = malformed{subj, []byte(fmt.Sprintf(`{"id":%q,"tenant":"acme","source":`, id)), "body: invalid JSON"}
		case 1: // not JSON at all
			m = malformed{"cf.events.garbage", []byte(fmt.Sprintf("garbage %d \x00\xff", i)), "body: invalid JSON"}
		case 2: // missing tenant
			ev := ok
			ev.Tenant = ""
			m = malformed{subj, enc(ev), "tenant"}
		case 3: // missing occurred_at
			ev := ok
			ev.OccurredAt = time.Time{}
			m = malformed{subj, enc(ev), "occurred_at"}
		case 4: // missing payload field
			ev := ok
			ev.Payload = &event.StageChange{From: "Discovery"}
			m = malformed{subj, enc(ev), "payload.to"}
		case 5: // bad enum in a nested list
			ev := ok
			ev.Source, ev.Type, ev.Payload = "gong", event.CallCompleted, call(i, "vendor")
			m = malformed{"cf.events.acme.gong.call_completed.3", enc(ev), "payload.participants[0].side"}
		case 6: // unknown event type
			raw := strings.Replace(string(enc(ok)), `"opportunity.stage_changed"`, `"opportunity.teleported"`, 1)
			m = malformed{subj, []byte(raw), "type"}
		}
		out[i] = m
	}
	return out
}

// TestIngestCrashRestart is the acceptance test of issue 2: 10,000
// messages with duplicates and malformed ones; the worker is killed mid-
// stream (connection gone, batches fetched and never acknowledged) and a
// new one finishes. ClickHouse then holds exactly the unique valid events
// and CF_DLQ exactly the malformed ones, with their reasons and bytes.
func TestIngestCrashRestart(t *testing.T) {
	ctx := t.Context()
	natsSrv, js := bustest.Start(t, bus.Options{AckWait: 3 * time.Second})
	url := natsSrv.ClientURL()
	st := openStore(t, chtest.DSN(t))
	n, err := bus.Partitions(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, n)

	const unique, dups, bad = 9400, 500, 100
	evs := genEvents(unique, 42)
	bads := malformedEvents(t, bad)
	// The 10,000 messages, in shuffled order: unique events, duplicates
	// published under another Nats-Msg-Id (so they really reach the
	// stream twice, as after the duplicate window), and malformed ones.
	type item struct {
		ev  *event.Event
		dup bool
		bad *malformed
	}
	r := rand.New(rand.NewPCG(7, 7))
	var items []item
	for i := range evs {
		items = append(items, item{ev: &evs[i]})
	}
	for range dups {
		items = append(items, item{ev: &evs[r.IntN(unique)], dup: true})
	}
	for i := range bads {
		items = append(items, item{bad: &bads[i]})
	}
	r.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	if len(items) != 10000 {
		t.Fatalf("%d messages, want 10000", len(items))
	}

	publish := func(part []item) {
		var batch []event.Event
		for i, it := range part {
			switch {
			case it.bad != nil:
				err = pub.PublishRaw(ctx, it.bad.subject, fmt.Sprint("bad:", i, ":", it.bad.field, len(it.bad.data)), it.bad.data)
			case it.dup:
				data, err2 := event.Marshal(*it.ev)
				if err2 != nil {
					t.Error(err2)
					return
				}
				err = pub.PublishRaw(ctx, bus.Subject(*it.ev, n), "replay:"+bus.MsgID(*it.ev)+fmt.Sprint(":", i), data)
			default:
				batch = append(batch, *it.ev)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
		if err := pub.PublishBatch(ctx, batch); err != nil {
			t.Error(err)
		}
		// Same Nats-Msg-Id again: dropped by the server's duplicate window.
		if err := pub.PublishBatch(ctx, batch[:len(batch)/10]); err != nil {
			t.Error(err)
		}
	}

	// First worker, on its own connection, started with a third published;
	// the rest is published while it runs.
	publish(items[:3000])
	nc1, js1 := bustest.Connect(t, url)
	// Batches of 500 stored as 3 concurrent INSERTs.
	// Its lease, never released, expires after 2s.
	w1, err := New(js1, st, Config{BatchSize: 500, MaxWait: 100 * time.Millisecond, InsertWriters: 3, LeaseTTL: 2 * time.Second}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	w1.minShare = 100
	stop1 := runWorker(t, w1)
	var pubWG sync.WaitGroup
	pubWG.Go(func() { publish(items[3000:]) })

	// Crash it once something is stored: the connection drops with batches
	// in flight, so their acknowledgements never arrive.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := st.CountEvents(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if c > 500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("first worker stored nothing within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	nc1.Close()
	if err := stop1(); err != nil {
		t.Fatalf("first worker: %v", err)
	}
	pubWG.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// A process that fetched a batch and died before acking it.
	ncDead, jsDead := bustest.Connect(t, url)
	cons, err := bus.CurrentIngest(ctx, jsDead)
	if err != nil {
		t.Fatal(err)
	}
	fetched, err := cons.FetchNoWait(300)
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for range fetched.Messages() {
		lost++
	}
	ncDead.Close()
	_, ackPending := consumerState(t, js)
	t.Logf("after the crash: %d messages fetched by the dead process, %d unacknowledged in all", lost, ackPending)
	if ackPending == 0 {
		t.Fatal("no unacknowledged messages after the crash; the test would prove nothing")
	}

	// Second worker finishes the job, including every redelivery.
	_, js2 := bustest.Connect(t, url)
	reg := prometheus.NewRegistry()
	w2, err := New(js2, st, Config{BatchSize: 2000, MaxWait: 100 * time.Millisecond, StatsInterval: 50 * time.Millisecond, LeaseTTL: 2 * time.Second}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop2 := runWorker(t, w2)
	waitDrained(t, js, 60*time.Second)
	if err := stop2(); err != nil {
		t.Fatalf("second worker: %v", err)
	}

	var stored uint64
	want := map[string]uint64{}
	for _, ev := range evs {
		want[ev.Tenant]++
	}
	for tenant, w := range want {
		c, err := st.CountEvents(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		if c != w {
			t.Errorf("tenant %s: %d events stored, want exactly %d", tenant, c, w)
		}
		stored += c
	}
	if stored != unique {
		t.Errorf("%d events stored, want %d", stored, unique)
	}
	if c, err := bus.CurrentIngest(ctx, js); err == nil {
		info := c.CachedInfo()
		t.Logf("ingest consumer %s (start seq %d) delivered %d messages, ack floor %d, for %d in the stream",
			info.Name, info.Config.OptStartSeq, info.Delivered.Consumer, info.AckFloor.Stream, len(items))
	}

	checkDLQ(t, js, bads)
	checkMetrics(t, reg)
}

// checkDLQ asserts that CF_DLQ holds exactly the malformed messages, each
// once, with its original bytes and a reason naming the bad field.
func checkDLQ(t *testing.T, js jetstream.JetStream, bads []malformed) {
	t.Helper()
	ctx := t.Context()
	s, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(len(bads)) {
		t.Errorf("CF_DLQ holds %d messages, want %d", info.State.Msgs, len(bads))
	}
	want := map[string]malformed{}
	for _, b := range bads {
		want[string(b.data)] = b
	}
	seen := map[string]bool{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("CF_DLQ message %d: %v", seq, err)
		}
		b, ok := want[string(m.Data)]
		if !ok {
			t.Errorf("CF_DLQ message %d has bytes that were never published: %q", seq, m.Data)
			continue
		}
		if seen[string(m.Data)] {
			t.Errorf("CF_DLQ holds %q twice", m.Data)
		}
		seen[string(m.Data)] = true
		reason := m.Header.Get(bus.ErrorHeader)
		if !strings.Contains(reason, b.field) {
			t.Errorf("CF_DLQ message %d: reason %q does not name %q", seq, reason, b.field)
		}
		if got := m.Header.Get(bus.SubjectHeader); got != b.subject {
			t.Errorf("CF_DLQ message %d: %s = %q, want %q", seq, bus.SubjectHeader, got, b.subject)
		}
		if m.Subject != bus.DLQSubject(b.subject) {
			t.Errorf("CF_DLQ message %d on %q, want %q", seq, m.Subject, bus.DLQSubject(b.subject))
		}
		if m.Header.Get(bus.StreamSeqHeader) == "" || m.Header.Get(jetstream.MsgIDHeader) != "dlq:"+m.Header.Get(bus.StreamSeqHeader) {
			t.Errorf("CF_DLQ message %d: seq %q, msg id %q", seq, m.Header.Get(bus.StreamSeqHeader), m.Header.Get(jetstream.MsgIDHeader))
		}
	}
	if len(seen) != len(bads) {
		t.Errorf("CF_DLQ holds %d of the %d malformed messages", len(seen), len(bads))
	}
}

// checkMetrics asserts that the worker exposes its metric families.
func checkMetrics(t *testing.T, reg *prometheus.Registry) {
	t.Helper()
	for _, name := range []string{
		"commitflow_ingest_events_consumed_total",
		"commitflow_ingest_events_stored_total",
		"commitflow_ingest_batch_size",
		"commitflow_ingest_insert_seconds",
		"commitflow_ingest_insert_errors_total",
		"commitflow_ingest_consumer_pending",
		"commitflow_ingest_consumer_ack_pending",
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n == 0 {
			t.Errorf("metric %s not exported (%v)", name, err)
		}
	}
}

// TestIngestClickHouseOutage stops ClickHouse while events keep arriving
// and restarts it: nothing is lost.
func TestIngestClickHouseOutage(t *testing.T) {
	ctx := t.Context()
	srv := chtest.Server(t)
	st := openStore(t, srv.DSN())
	_, js := bustest.Start(t, bus.Options{})
	pub := bus.NewPublisher(js, bus.DefaultPartitions)
	reg := prometheus.NewRegistry()
	w, err := New(js, st, Config{BatchSize: 1000, MaxWait: 100 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runWorker(t, w)

	evs := genEvents(4000, 3)
	var pubWG sync.WaitGroup
	pubWG.Go(func() {
		for i := 0; i < len(evs); i += 100 {
			if err := pub.PublishBatch(ctx, evs[i:i+100]); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(40 * time.Millisecond)
		}
	})
	time.Sleep(300 * time.Millisecond)
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	pubWG.Wait()
	waitDrained(t, js, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var total uint64
	for _, tenant := range []string{"acme", "globex"} {
		c, err := st.CountEvents(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		total += c
	}
	if total != uint64(len(evs)) {
		t.Errorf("%d events stored after the outage, want %d", total, len(evs))
	}
	if errs := promtest.Sum(t, reg, "commitflow_ingest_insert_errors_total"); errs == 0 {
		t.Error("no insert failed: the outage was not observed")
	} else {
		t.Logf("%v inserts failed during the outage and were retried", errs)
	}
}

// TestIngestCancel checks that a cancelled worker returns promptly, and
// that a batch it could not store is handed back (Nak) for another worker
// at once rather than after AckWait.
func TestIngestCancel(t *testing.T) {
	ctx := t.Context()
	dsn := chtest.DSN(t)
	st := openStore(t, dsn)
	_, js := bustest.Start(t, bus.Options{}) // AckWait 60s
	pub := bus.NewPublisher(js, bus.DefaultPartitions)
	evs := genEvents(2000, 5)
	if err := pub.PublishBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}

	// Make inserts fail: hide the table.
	execSQL(t, dsn, "RENAME TABLE events TO events_hidden")
	w, err := New(js, st, Config{BatchSize: 5000, MaxWait: 100 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := runWorker(t, w)
	// Wait until the worker holds messages it cannot store. Usually one
	// fetch takes all 2000; on a loaded machine the first fetch may end at
	// MaxWait with part of them, and the worker then holds two partial
	// batches (one storing, one fetched) and fetches no more, by design.
	deadline := time.Now().Add(30 * time.Second)
	for {
		info := currentInfo(t, js)
		if info.NumAckPending > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker holds no messages after 30s (consumer %s: %d pending)", info.Name, info.NumPending)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a few failed attempts
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("worker took %v to stop", d)
	}
	// Table back; a new worker gets every message long before the 60s
	// AckWait, because the abandoned batch was negatively acknowledged.
	execSQL(t, dsn, "RENAME TABLE events_hidden TO events")
	w2, err := New(js, st, Config{MaxWait: 100 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	stop2 := runWorker(t, w2)
	waitDrained(t, js, 20*time.Second)
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	t.Logf("abandoned batch redelivered and stored in %v", time.Since(start).Round(time.Millisecond))
	var total uint64
	for _, tenant := range []string{"acme", "globex"} {
		c, err := st.CountEvents(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		total += c
	}
	if total != uint64(len(evs)) {
		t.Errorf("%d events stored, want %d", total, len(evs))
	}
}

// TestIngestIdleCancel checks a clean stop with nothing in flight.
func TestIngestIdleCancel(t *testing.T) {
	st := openStore(t, chtest.DSN(t))
	_, js := bustest.Start(t, bus.Options{})
	w, err := New(js, st, Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Ready(t.Context()); err != nil {
		t.Errorf("Ready: %v", err)
	}
	stop := runWorker(t, w)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("idle worker took %v to stop", d)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(nil, nil, Config{}, nil, nil); err == nil {
		t.Error("New without JetStream and store succeeded")
	}
}

func TestInvalidLabels(t *testing.T) {
	tests := []struct {
		data string
		want labelKey
	}{
		{`{"tenant":"acme","type":"call.completed","id":""}`, labelKey{"acme", "call.completed"}},
		{`{"tenant":"acme","type":"call.exploded"}`, labelKey{"acme", "invalid"}},
		{`{"tenant":"Not A Token!","type":"call.completed"}`, labelKey{"unknown", "call.completed"}},
		{`{"tenant":`, labelKey{"unknown", "invalid"}},
		{`garbage`, labelKey{"unknown", "invalid"}},
		{`{"tenant":7}`, labelKey{"unknown", "invalid"}},
	}
	for _, tt := range tests {
		if got := invalidLabels([]byte(tt.data)); got != tt.want {
			t.Errorf("invalidLabels(%s) = %v, want %v", tt.data, got, tt.want)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	if c.BatchSize != 50000 || c.MaxWait != 500*time.Millisecond || c.InsertWriters != 2 ||
		c.MinBackoff != 100*time.Millisecond || c.MaxBackoff != 5*time.Second || c.LeaseTTL != 15*time.Second || c.Member == "" {
		t.Errorf("defaults: %+v", c)
	}
	c = Config{MinBackoff: time.Second, MaxBackoff: time.Millisecond}.withDefaults()
	if c.MaxBackoff != time.Second {
		t.Errorf("MaxBackoff below MinBackoff not raised: %+v", c)
	}
}

// execSQL runs one statement on dsn's database.
func execSQL(t *testing.T, dsn, query string) {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(context.Background(), query); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// FuzzInvalidLabels checks that labels stay within a bounded set whatever
// the bytes: a valid tenant token or "unknown", a known type or "invalid".
func FuzzInvalidLabels(f *testing.F) {
	f.Add([]byte(`{"tenant":"acme","type":"call.completed"}`))
	f.Add([]byte(`{"tenant":"ACME","type":"x"}`))
	f.Add([]byte(`garbage`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k := invalidLabels(data)
		if k.tenant != "unknown" && !event.ValidToken(k.tenant) {
			t.Errorf("tenant label %q", k.tenant)
		}
		if k.typ != "invalid" && event.NewPayload(event.Type(k.typ)) == nil {
			t.Errorf("type label %q", k.typ)
		}
	})
}

func TestReason(t *testing.T) {
	_, syntax := event.Parse([]byte(`{"id":`))
	tests := []struct {
		err  error
		want string
	}{
		{&event.FieldError{Field: "payload.to", Reason: "missing"}, "payload.to: missing"},
		{syntax, "body: invalid JSON at byte 6: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		if got := reason(tt.err); got != tt.want {
			t.Errorf("reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestIngestTakeover runs two workers: one holds the ingest lease and
// stores everything, the other stands by, and takes over when the first
// stops. A process that fetched from an older generation of the consumer
// and acknowledges late cannot acknowledge anything of the current one.
func TestIngestTakeover(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, chtest.DSN(t))
	natsSrv, js := bustest.Start(t, bus.Options{})
	url := natsSrv.ClientURL()
	pub := bus.NewPublisher(js, bus.DefaultPartitions)
	evs := genEvents(6000, 11)
	if err := pub.PublishBatch(ctx, evs[:2000]); err != nil {
		t.Fatal(err)
	}

	// A stale process fetched 500 messages of generation 1 and stalled.
	_, jsStale := bustest.Connect(t, url)
	gen1, err := bus.CurrentIngest(ctx, jsStale)
	if err != nil {
		t.Fatal(err)
	}
	fetched, err := gen1.Fetch(500, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var staleTop jetstream.Msg
	for m := range fetched.Messages() {
		staleTop = m
	}
	if staleTop == nil {
		t.Fatal("the stale process fetched nothing")
	}

	cfg := Config{BatchSize: 700, MaxWait: 50 * time.Millisecond, LeaseTTL: time.Second}
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	var stops []func() error
	for i, reg := range regs {
		_, wjs := bustest.Connect(t, url)
		w, err := New(wjs, st, cfg, reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, runWorker(t, w))
		if i == 0 {
			time.Sleep(200 * time.Millisecond) // let the first take the lease
		}
	}
	waitDrained(t, js, 30*time.Second)
	held := func(reg *prometheus.Registry) float64 { return promtest.Sum(t, reg, "commitflow_ingest_lease_held") }
	if held(regs[0]) != 1 || held(regs[1]) != 0 {
		t.Fatalf("lease held: first %v, second %v; want 1, 0", held(regs[0]), held(regs[1]))
	}
	if _, err := gen1.Info(ctx); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("generation 1 after the lease holder started: %v, want deleted", err)
	}

	// The holder stops; the standby takes over within a lease period and
	// stores what is published next.
	if err := stops[0](); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishBatch(ctx, evs[2000:4000]); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, js, 30*time.Second)
	if held(regs[1]) != 1 {
		t.Fatal("the standby did not take the lease over")
	}

	// With no worker running, 2000 more events wait in the current
	// generation; the stale process's late AckAll, of a message at a lower
	// sequence in a deleted generation, must not touch them.
	if err := stops[1](); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishBatch(ctx, evs[4000:]); err != nil {
		t.Fatal(err)
	}
	if err := staleTop.DoubleAck(ctx); err == nil {
		t.Error("the stale process's acknowledgement of a deleted generation succeeded")
	}
	if pending, ackPending := consumerState(t, js); pending != 2000 || ackPending != 0 {
		t.Fatalf("after the stale acknowledgement: %d pending, %d ack pending; want 2000, 0", pending, ackPending)
	}
	drain(t, js, st, cfg, nil, 30*time.Second)
	want := map[string]uint64{}
	for _, ev := range evs {
		want[ev.Tenant]++
	}
	for tenant, n := range want {
		if c, err := st.CountEvents(ctx, tenant); err != nil || c != n {
			t.Errorf("tenant %s: %d events stored (%v), want %d", tenant, c, err, n)
		}
	}
}
