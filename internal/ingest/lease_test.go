package ingest

import (
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/promtest"
)

// TestIngestTakesBackOwnLease: a worker that finds the ingest lease's key
// under its own member name (its renewal was written but the answer lost,
// or the key survived a NATS restart or leader change) takes the lease back
// at once instead of standing by until the key expires.
func TestIngestTakesBackOwnLease(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, chtest.DSN(t))
	_, js := bustest.Start(t, bus.Options{})
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: bus.IngestLeaseBucket, TTL: 15 * time.Second, History: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, leaseKey, []byte("m1")); err != nil {
		t.Fatal(err)
	}
	if err := bus.NewPublisher(js, bus.DefaultPartitions).PublishBatch(ctx, genEvents(500, 3)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	w, err := New(js, st, Config{MaxWait: 50 * time.Millisecond, LeaseTTL: 15 * time.Second, Member: "m1"}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	runWorker(t, w)
	waitDrained(t, js, 5*time.Second) // the key expires only after 15s
	t.Logf("stored everything %v after start", time.Since(start).Round(time.Millisecond))
	if got := promtest.Sum(t, reg, "commitflow_lease_taken_back_total"); got != 1 {
		t.Errorf("leases taken back: %v, want 1", got)
	}
}

// TestIngestLeaseSurvivesNATSRestart: right after the lease holder
// renewed, NATS restarts and at first answers without JetStream (no
// responders, as while JetStream recovers or elects a leader), for longer
// than the renewal interval but shorter than the lease. The holder keeps
// the lease (the same generation of the consumer, no loss counted) and
// stores what is published after the restart.
func TestIngestLeaseSurvivesNATSRestart(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, chtest.DSN(t))
	// Started by hand, not with bustest: the test stops the server, puts a
	// server without JetStream on its port, then starts it again on the
	// same port and store directory, which bustest.Server (a free port, a
	// server shut down only when the test ends) does not give.
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	listen := "127.0.0.1:" + strconv.Itoa(port)
	srv, err := bus.StartEmbedded(ctx, dir, listen, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Shutdown() }()
	_, js := bustest.Connect(t, srv.ClientURL())
	if err := bus.Declare(ctx, js, bus.Options{}); err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, bus.DefaultPartitions)
	evs := genEvents(2000, 5)
	if err := pub.PublishBatch(ctx, evs[:1000]); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	_, wjs := bustest.Connect(t, srv.ClientURL())
	const ttl = 10 * time.Second // renewed every 3.3s
	w, err := New(wjs, st, Config{MaxWait: 50 * time.Millisecond, LeaseTTL: ttl}, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runWorker(t, w)
	waitDrained(t, js, 30*time.Second)
	before := currentInfo(t, js).Name

	kv, err := js.KeyValue(ctx, bus.IngestLeaseBucket)
	if err != nil {
		t.Fatal(err)
	}
	watch, err := kv.Watch(ctx, leaseKey, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	for renewed := false; !renewed; {
		select {
		case e := <-watch.Updates():
			renewed = e != nil
		case <-time.After(ttl):
			t.Fatal("the lease was not renewed within its TTL")
		}
	}
	_ = watch.Stop()
	srv.Shutdown()
	plain, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	plain.Start()
	if !plain.ReadyForConnections(5 * time.Second) {
		t.Fatal("the server without JetStream did not start")
	}
	time.Sleep(4 * time.Second)
	plain.Shutdown()
	plain.WaitForShutdown()
	if srv, err = bus.StartEmbedded(ctx, dir, listen, nil); err != nil {
		t.Fatal(err)
	}

	if err := pub.PublishBatch(ctx, evs[1000:]); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, js, 30*time.Second)
	if after := currentInfo(t, js).Name; after != before {
		t.Errorf("consumer generation %s after the restart, %s before: the lease was lost and taken again", after, before)
	}
	if got := promtest.Sum(t, reg, "commitflow_lease_lost_total"); got != 0 {
		t.Errorf("leases lost: %v, want 0", got)
	}
	if got := promtest.Sum(t, reg, "commitflow_lease_renew_failures_total"); got == 0 {
		t.Error("no renewal failed: the outage was not observed")
	}
	if got := promtest.Sum(t, reg, "commitflow_ingest_lease_held"); got != 1 {
		t.Errorf("lease held gauge %v, want 1", got)
	}
	if n, err := st.CountEvents(ctx, "acme"); err != nil || n != 1000 {
		t.Errorf("acme events stored: %d, %v; want 1000", n, err)
	}
}
