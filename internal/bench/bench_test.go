package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{0.4}, 0.4},
		{[]float64{0.6, 0.4}, 0.5},
		{[]float64{0.5, 0.3, 0.4}, 0.4},
		{[]float64{0.9, 0.1, 0.5, 0.4}, 0.45},
	} {
		xs := append([]float64(nil), tc.xs...)
		if got := median(xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		for i := range xs {
			if xs[i] != tc.xs[i] {
				t.Errorf("median reordered its input: %v", xs)
			}
		}
	}
}

func TestProcCPU(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"plain", "1234 (commitflow) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0", 3 * time.Second, true},
		{"spaces and parentheses in the name", "99 (a (b) c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0", 100 * time.Millisecond, true},
		{"truncated", "99 (x) R 1 1 1", 0, false},
		{"no name", "99 x R", 0, false},
		{"not a number", "99 (x) R 1 1 1 0 -1 0 0 0 0 0 a 3 0 0", 0, false},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, "stat")
		if err := os.WriteFile(p, []byte(tt.stat), 0o644); err != nil {
			t.Fatal(err)
		}
		got, ok := procCPU(p)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: procCPU = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := procCPU(filepath.Join(dir, "missing")); ok {
		t.Error("missing file: ok")
	}
}

func TestFormatCost(t *testing.T) {
	if got := formatCost(-1); got != "n/a" {
		t.Errorf("formatCost(-1) = %q", got)
	}
	if got := formatCost(17.66); got != "17.7" {
		t.Errorf("formatCost(17.66) = %q", got)
	}
}

// TestIngestResultWrite pins the text of bench ingest (the golden outputs
// are those of the harness when it lived in cmd/commitflow).
func TestIngestResultWrite(t *testing.T) {
	phases := []Phase{
		{"raw insert, clickhouse-client (TSV)", 123456.7, Cost{1.5, 8.25, -1}, "same rows, one client"},
		{"raw insert, native protocol, 1 writer(s)", 100000, Cost{3.33, 9.1, -1}, "batches of 50k"},
		{"publish to embedded JetStream", 250000, Cost{-1, -1, -1}, "PublishAsync, Nats-Msg-Id"},
		{"end to end: JetStream -> ingest -> ClickHouse", 61000, Cost{12.34, 7.7, -1}, "batches of 50000 in 2 INSERTs, one AckAll each, backlog drained"},
	}
	const table = `benchmark (1000 events in time order, 2 cores)  rows/s  CPU µs/row: commitflow  clickhouse  
raw insert, clickhouse-client (TSV)             123457  1.5                     8.2         same rows, one client
raw insert, native protocol, 1 writer(s)        100000  3.3                     9.1         batches of 50k
publish to embedded JetStream                   250000  n/a                     n/a         PublishAsync, Nats-Msg-Id
end to end: JetStream -> ingest -> ClickHouse   61000   12.3                    7.7         batches of 50000 in 2 INSERTs, one AckAll each, backlog drained
`
	const ceiling = `CPU per event end to end: commitflow 12.3 µs (JetStream delivery 4.0, sending the row to ClickHouse 2.5, parsing, validation, batching and GC 5.8), ClickHouse 7.7 µs
total CPU per event end to end 20.0 µs, 2.36 x the raw insert from two writers (8.5 µs)
ceiling on 2 cores with parsing, validation, batching and GC free: 140845 events/s, 1.08 of the best raw insert
`
	const unmeasured = "CPU per event: not measured (needs /proc and a local clickhouse-server)\n"
	const heap = "peak Go heap during the drain (process with embedded NATS): 300 MiB in use, 120 MiB live after a collection\n" +
		"Go heap per event in the drain: 2500 bytes allocated, GC CPU 1.5 µs (12 collections)\n"
	one := []IngestRun{{120000, 61000, 0.4942, 0}}
	three := []IngestRun{{120000, 61000, 0.49, 0}, {110000, 60000, 0.5, 0}, {130000, 70000, 0.53, 0}}
	const perRun = `run  raw, 2 writers (rows/s)  end to end (events/s)  ratio to the run's best raw  
1    120000                   61000                  0.49                         
2    110000                   60000                  0.50                         
3    130000                   70000                  0.53                         
end-to-end / best raw insert: median 0.50 over 3 runs, 0.49-0.53 (target >= 0.50)
`
	tests := []struct {
		name  string
		runs  []IngestRun
		drain Cost
		want  string
	}{
		{"one run", one, Cost{12.34, 7.7, -1}, table + ceiling + "end-to-end / best raw insert = 0.49 (target >= 0.50)\n" + heap},
		{"one run, CPU not measured", one, Cost{-1, -1, -1}, table + unmeasured + "end-to-end / best raw insert = 0.49 (target >= 0.50)\n" + heap},
		{"three runs", three, Cost{12.34, 7.7, -1}, table + ceiling + perRun + heap},
		{"three runs, CPU not measured", three, Cost{12.34, -1, -1}, table + unmeasured + perRun + heap},
	}
	for _, tt := range tests {
		r := IngestResult{Events: 1000, Order: "time", Cores: 2, Phases: phases, Runs: tt.runs,
			RawCost: Cost{2.5, 6, -1}, Drain: tt.drain, Delivery: Cost{4, 0, -1}, BestRaw: 130000,
			PeakHeap: 300 << 20, PeakLive: 120 << 20, DrainHeap: heapStats{Allocated: 2500 * 1000, GCs: 12, GCCPU: 1500 * time.Microsecond}}
		var b strings.Builder
		if err := r.Write(&b); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("%s:\n%s\nwant\n%s", tt.name, b.String(), tt.want)
		}
	}
}

// TestIngestResultWriteExternalNATS pins the text of bench ingest with a
// nats-server of its own and a peer: a column and a share of the drain for
// the server, counted in the total and the ceiling, and the peer's phase
// and ratio.
func TestIngestResultWriteExternalNATS(t *testing.T) {
	r := IngestResult{Events: 1000, Order: "time", Cores: 2, ExternalNATS: true,
		Phases: []Phase{
			{"raw insert, native protocol, 2 writer(s)", 120000, Cost{2.5, 6, -1}, "batches of 50k"},
			{"publish to nats-server", 90000, Cost{-1, -1, -1}, "PublishAsync, Nats-Msg-Id"},
			{"JetStream delivery alone (fetch, AckAll; no parse, no insert)", 200000, Cost{3, 0, 2.5}, "same backlog, other consumer"},
			{"peer: telegraf", 20000, Cost{30, 9.25, 4}, "same stored events; its process's CPU in the commitflow column"},
			{"end to end: JetStream -> ingest -> ClickHouse", 61000, Cost{9, 7.5, 3}, "batches of 50000 in 2 INSERTs, one AckAll each, backlog drained"},
		},
		Runs:    []IngestRun{{120000, 61000, 0.5083, 20000}},
		RawCost: Cost{2.5, 6, -1}, Drain: Cost{9, 7.5, 3}, Delivery: Cost{3, 0, 2.5}, BestRaw: 120000,
		PeakHeap: 300 << 20, PeakLive: 120 << 20, DrainHeap: heapStats{Allocated: 2500 * 1000, GCs: 12, GCCPU: 1500 * time.Microsecond}}
	const want = `benchmark (1000 events in time order, 2 cores)                 rows/s  CPU µs/row: commitflow  nats-server  clickhouse  
raw insert, native protocol, 2 writer(s)                       120000  2.5                     n/a          6.0         batches of 50k
publish to nats-server                                         90000   n/a                     n/a          n/a         PublishAsync, Nats-Msg-Id
JetStream delivery alone (fetch, AckAll; no parse, no insert)  200000  3.0                     2.5          0.0         same backlog, other consumer
peer: telegraf                                                 20000   30.0                    4.0          9.2         same stored events; its process's CPU in the commitflow column
end to end: JetStream -> ingest -> ClickHouse                  61000   9.0                     3.0          7.5         batches of 50000 in 2 INSERTs, one AckAll each, backlog drained
CPU per event end to end: commitflow 9.0 µs (JetStream delivery 3.0, sending the row to ClickHouse 2.5, parsing, validation, batching and GC 3.5), nats-server 3.0 µs (delivery alone 2.5), ClickHouse 7.5 µs
total CPU per event end to end 19.5 µs, 2.29 x the raw insert from two writers (8.5 µs)
ceiling on 2 cores with parsing, validation, batching and GC free: 129032 events/s, 1.08 of the best raw insert
end-to-end / best raw insert = 0.51 (target >= 0.50)
end-to-end / peer = 3.05 (target >= 3)
peak Go heap during the drain (this process; NATS apart): 300 MiB in use, 120 MiB live after a collection
Go heap per event in the drain: 2500 bytes allocated, GC CPU 1.5 µs (12 collections)
`
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	r.Runs = append(r.Runs, IngestRun{110000, 66000, 0.6, 22000})
	const perRun = `run  raw, 2 writers (rows/s)  end to end (events/s)  ratio to the run's best raw  peer (events/s)  
1    120000                   61000                  0.51                         20000            
2    110000                   66000                  0.60                         22000            
end-to-end / best raw insert: median 0.55 over 2 runs, 0.51-0.60 (target >= 0.50)
end-to-end / peer: median 3.02 over 2 runs, 3.00-3.05 (target >= 3)
`
	b.Reset()
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); !strings.Contains(got, perRun) {
		t.Errorf("two runs:\n%s\nwant in it\n%s", got, perRun)
	}
}

func TestAPIResultWrite(t *testing.T) {
	r := APIResult{Events: 5000, Endpoints: []Latency{
		{"funnel", 1500 * time.Microsecond, 2600 * time.Microsecond, 9 * time.Millisecond, 5000, 2048, Cost{Self: 1200, ClickHouse: 2600, NATS: -1}},
		{"forecast back-test", 150 * time.Millisecond, 180 * time.Millisecond, 200 * time.Millisecond, 1 << 22, 1 << 18, Cost{Self: 90_000, ClickHouse: -1, NATS: -1}},
	}}
	const want = `endpoint (5000 raw events)  p50 ms  p95 ms  max ms  KiB   KiB sent  CPU ms a request: commitflow  ClickHouse  
funnel                      2       3       9       4     2         1                             3           
forecast back-test          150     180     200     4096  256       90                            n/a         
`
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestDeriveResultWrite(t *testing.T) {
	r := DeriveResult{Derived: 100, Events: 1000, Opportunities: 50, Elapsed: 1234567 * time.Microsecond}
	const want = "derived 100 events from 1000 input events of 50 opportunities in 1.235s on one goroutine: 810 input events/s\n"
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestConcurrentResultWrite(t *testing.T) {
	r := APIResult{Events: 1000000, Concurrent: &Concurrent{Clients: 200, Duration: 30 * time.Second, Cache: true,
		Requests: 60000, OK: 59000, Busy: 990, Errors: 10,
		P50: 40 * time.Millisecond, P95: 120 * time.Millisecond, P99: 250 * time.Millisecond, Max: 2 * time.Second,
		OKP50: 41 * time.Millisecond, OKP95: 130 * time.Millisecond, OKP99: 260 * time.Millisecond}}
	const want = `1000000 raw events, the dashboard's 8 requests in turn
clients  seconds  cache  requests/s  p50 ms  p95 ms  p99 ms  max ms  200    503  errors  200s' p50/p95/p99 ms  
200      30       on     2000        40      120     250     2000    59000  990  10      41/130/260            
`
	var b strings.Builder
	if err := r.Write(&b); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}
