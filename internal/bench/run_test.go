package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/store"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// serverDSN returns a fresh database of the test ClickHouse server and a
// prefix of database names of the test's own.
func serverDSN(t *testing.T) (dsn, prefix string) {
	t.Helper()
	dsn = chtest.DSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return dsn, strings.TrimPrefix(u.Path, "/") + "_bench"
}

// dropTestDatabase drops database db of the server of dsn.
func dropTestDatabase(t *testing.T, dsn, db string) {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
		t.Fatal(err)
	}
}

// databases lists the databases of the server of dsn whose name starts
// with prefix.
func databases(t *testing.T, dsn, prefix string) []string {
	t.Helper()
	st, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.Conn().Query(context.Background(), "SELECT name FROM system.databases WHERE startsWith(name, ?)", prefix)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	return names
}

// TestIngest runs bench ingest small, twice, against the test server: every
// phase is measured, the drain stores every event, and the databases are
// dropped at the end.
func TestIngest(t *testing.T) {
	dsn, prefix := serverDSN(t)
	res, err := Ingest(context.Background(), IngestConfig{DSN: dsn, Prefix: prefix, Events: 3000, Runs: 2, Order: "time"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 2 || res.Phases[len(res.Phases)-1].Name != "end to end: JetStream -> ingest -> ClickHouse" {
		t.Fatalf("result: %+v", res)
	}
	for _, p := range res.Phases {
		if p.Rate <= 0 {
			t.Errorf("phase %q: rate %v", p.Name, p.Rate)
		}
	}
	for _, r := range res.Runs {
		if r.Raw <= 0 || r.EndToEnd <= 0 || r.Ratio <= 0 {
			t.Errorf("run: %+v", r)
		}
	}
	if dbs := databases(t, dsn, prefix); len(dbs) > 0 {
		t.Errorf("databases left behind: %v", dbs)
	}
	if _, err := Ingest(context.Background(), IngestConfig{DSN: dsn, Prefix: prefix, Events: 10, Runs: 1, Order: "random"}); err == nil {
		t.Error("order random: no error")
	}
	if _, err := Ingest(context.Background(), IngestConfig{DSN: dsn, Prefix: prefix, Events: 10, Runs: 1, Order: "time", Peer: "  "}); err == nil || !strings.Contains(err.Error(), "no command") {
		t.Errorf("a blank peer: %v", err)
	}
}

// TestIngestExternalNATS runs bench ingest small against a nats-server
// process built from go.mod, with a peer (testdata/peer) draining the same
// stored events: the drain stores every event, the server's CPU is
// measured apart, the peer is timed, and the server, the peer and its
// database are gone at the end. A peer that fails is an error with its
// output.
func TestIngestExternalNATS(t *testing.T) {
	dsn, prefix := serverDSN(t)
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("needs the go command to build nats-server")
		}
		t.Skip("needs the go command to build nats-server")
	}
	dir := t.TempDir()
	bin, peer := filepath.Join(dir, "nats-server"), filepath.Join(dir, "peer")
	for _, b := range [][2]string{{bin, "github.com/nats-io/nats-server/v2"}, {peer, "./testdata/peer"}} {
		if out, err := exec.Command(goBin, "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b[1], err, out)
		}
	}
	res, err := Ingest(context.Background(), IngestConfig{DSN: dsn, Prefix: prefix, Events: 3000, Runs: 1, Order: "time", NATSServer: bin, Peer: peer})
	if err != nil {
		t.Fatal(err)
	}
	if !res.ExternalNATS || res.Phases[len(res.Phases)-1].Name != "end to end: JetStream -> ingest -> ClickHouse" {
		t.Fatalf("result: %+v", res)
	}
	for _, p := range res.Phases {
		if p.Rate <= 0 {
			t.Errorf("phase %q: rate %v", p.Name, p.Rate)
		}
	}
	if res.Drain.NATS < 0 || res.Delivery.NATS < 0 {
		t.Errorf("nats-server CPU not measured: drain %+v, delivery %+v", res.Drain, res.Delivery)
	}
	if p := res.Phases[len(res.Phases)-2]; p.Name != "peer: peer" || p.Cost.Self < 0 || p.Cost.NATS < 0 || res.Runs[0].Peer != p.Rate {
		t.Errorf("peer phase %+v, run %+v", p, res.Runs[0])
	}
	if dbs := databases(t, dsn, prefix); len(dbs) > 0 {
		t.Errorf("databases left behind: %v", dbs)
	}
	// Stopped: no process runs the binary any more.
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		if b, err := os.ReadFile(c); err == nil && strings.HasPrefix(string(b), bin+"\x00") {
			t.Errorf("nats-server still runs: %s", c)
		}
	}
	if _, err := Ingest(context.Background(), IngestConfig{DSN: dsn, Prefix: prefix, Events: 10, Runs: 1, Order: "time",
		NATSServer: filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("a nats-server that does not exist: %v", err)
	}
	sh := filepath.Join(dir, "failing-peer")
	if err := os.WriteFile(sh, []byte("#!/bin/sh\necho no ClickHouse driver here >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Ingest(context.Background(), IngestConfig{DSN: dsn, Prefix: prefix, Events: 10, Runs: 1, Order: "time", Peer: sh})
	if err == nil || !strings.Contains(err.Error(), "exited after storing 0 of 10 events") || !strings.Contains(err.Error(), "no ClickHouse driver here") {
		t.Errorf("a failing peer: %v", err)
	}
}

// TestAPI loads a small book of business and times every endpoint, then
// times them again on the data it kept (Reuse), compacted.
func TestAPI(t *testing.T) {
	dsn, prefix := serverDSN(t)
	ctx := context.Background()
	t.Cleanup(func() { dropTestDatabase(t, dsn, prefix+"_api_2000") })
	res, err := API(ctx, APIConfig{DSN: dsn, Prefix: prefix, Events: 2000, Requests: 2, Rewrite: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Endpoints) != len(apiQueries(genEnd)) {
		t.Fatalf("timed %d endpoints, want %d", len(res.Endpoints), len(apiQueries(genEnd)))
	}
	for _, e := range res.Endpoints {
		if e.Bytes == 0 || e.P50 <= 0 || e.P50 > e.P95 || e.P95 > e.Max || e.CPU.Self < 0 {
			t.Errorf("%+v", e)
		}
	}
	res, err = API(ctx, APIConfig{DSN: dsn, Prefix: prefix, Events: 2000, Requests: 1, Reuse: true, Compact: true, Only: "forecast"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Endpoints) != 2 || res.Endpoints[0].Name != "forecast" {
		t.Errorf("only forecast: %+v", res.Endpoints)
	}
	if dbs := databases(t, dsn, prefix); len(dbs) != 1 || dbs[0] != prefix+"_api_2000" {
		t.Errorf("databases: %v, want the one kept for --reuse", dbs)
	}
}

func TestDerive(t *testing.T) {
	res, err := Derive(context.Background(), 2000)
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 2000 || res.Opportunities == 0 || res.Derived == 0 {
		t.Errorf("%+v", res)
	}
}

// TestAPIConcurrent replays the dashboard's requests from many clients,
// with the answer cache and without: every answer is a 200 or a 503.
func TestAPIConcurrent(t *testing.T) {
	dsn, prefix := serverDSN(t)
	ctx := context.Background()
	t.Cleanup(func() { dropTestDatabase(t, dsn, prefix+"_api_2000") })
	for i, cache := range []bool{true, false} {
		res, err := API(ctx, APIConfig{DSN: dsn, Prefix: prefix, Events: 2000, Reuse: i > 0, Clients: 20, Duration: 2 * time.Second,
			Cache: cache, CacheBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		c := res.Concurrent
		if c == nil || c.Requests == 0 || c.OK == 0 || c.Errors != 0 || c.OK+c.Busy != c.Requests || c.Cache != cache {
			t.Errorf("cache %v: %+v", cache, c)
		}
		if c != nil && (c.P50 > c.P95 || c.P95 > c.P99 || c.P99 > c.Max || c.OKP50 > c.OKP95 || c.OKP95 > c.OKP99 || c.OKP99 > c.Max) {
			t.Errorf("cache %v: quantiles %+v", cache, c)
		}
		t.Logf("cache %v: %+v", cache, *c)
	}
}

// TestImport runs bench import small: every event is stored, and the deals
// closed won and lost are those the export's last row of each deal says
// (read here with encoding/csv, not the importer).
func TestImport(t *testing.T) {
	dsn, prefix := serverDSN(t)
	ctx := context.Background()
	t.Cleanup(func() { dropTestDatabase(t, dsn, prefix+"_import") })
	const rows = 2000
	res, err := Import(ctx, ImportConfig{DSN: dsn, Prefix: prefix, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rows != rows || res.Events <= rows || res.Published <= 0 || res.Published > res.Stored || res.Stored > res.Derived || res.Cost.Self < 0 {
		t.Fatalf("%+v", res)
	}
	var out strings.Builder
	if err := res.Write(&out); err != nil || !strings.Contains(out.String(), "derived after") {
		t.Errorf("Write: %v\n%s", err, out.String())
	}

	recs, err := csv.NewReader(bytes.NewReader(gen.SalesforceHistory(rows))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	last := map[string]string{} // deal -> stage of its last row; rows are in date order
	for _, r := range recs[1:] {
		last[r[1]] = r[4]
	}
	want := map[string]uint64{}
	for _, stage := range last {
		switch stage {
		case "Closed Won":
			want["won"]++
		case "Closed Lost":
			want["lost"]++
		}
	}

	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	db := prefix + "_import"
	var stored uint64
	if err := st.Conn().QueryRow(ctx, "SELECT uniqExact(event_id) FROM "+db+".events WHERE tenant = ?", tenant).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != uint64(res.Events) {
		t.Errorf("%d distinct events stored, want %d", stored, res.Events)
	}
	got := map[string]uint64{}
	q, err := st.Conn().Query(ctx, "SELECT status, uniqExact(opportunity_id) FROM "+db+".derived_events FINAL WHERE tenant = ? AND type = 'deal.closed' AND NOT retracted GROUP BY status", tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	for q.Next() {
		var s string
		var n uint64
		if err := q.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		got[s] = n
	}
	if !maps.Equal(got, want) || want["won"] == 0 || want["lost"] == 0 {
		t.Errorf("deals closed: %v, want %v", got, want)
	}
}
