// Package bench is commitflow's benchmark harness: Ingest times the raw
// ClickHouse insert of generated events next to the end-to-end drain from
// an embedded JetStream through the ingest worker, Derive times the
// derivation core alone, and API times every metrics endpoint over HTTP on
// a loaded book of business. Each works in databases of its own, created
// beside the one its DSN names, and returns a result that writes itself as
// the text `commitflow bench` prints.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/store"
)

// tenant is the tenant of every generated benchmark event.
const tenant = "bench"

// genEnd is the end of the generated data.
var genEnd = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// events generates n events (about 23 per opportunity).
func events(ctx context.Context, n int, seed int64) ([]event.Event, error) {
	evs := make([]event.Event, 0, n)
	cfg := gen.Config{Seed: seed, Opportunities: max(1, n/20), Tenant: tenant, End: genEnd}
	errEnough := errors.New("enough")
	err := gen.Generate(ctx, cfg, func(ev event.Event) error {
		if len(evs) == n {
			return errEnough
		}
		evs = append(evs, ev)
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return evs, nil
}

// rawRow is the events table row of ev at stream sequence seq.
func rawRow(ev event.Event, seq uint64) (store.RawEvent, error) {
	b, err := event.Marshal(ev)
	if err != nil {
		return store.RawEvent{}, err
	}
	return store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source, EventID: ev.ID,
		Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: seq, Payload: b}, nil
}

// rawRows are the events table rows of evs, at stream sequences 1, 2, ...
func rawRows(evs []event.Event) ([]store.RawEvent, error) {
	rows := make([]store.RawEvent, len(evs))
	for i, ev := range evs {
		r, err := rawRow(ev, uint64(i+1))
		if err != nil {
			return nil, err
		}
		rows[i] = r
	}
	return rows, nil
}

// withDatabase returns dsn pointing at database db.
func withDatabase(dsn, db string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("dsn: %w", err)
	}
	u.Path = "/" + db
	return u.String(), nil
}

// server is the ClickHouse server a benchmark works on, in databases
// whose names start with prefix, and where it reports.
type server struct {
	admin    *store.Store // on the database of dsn
	dsn      string
	prefix   string
	progress io.Writer
	log      *slog.Logger
}

// connect connects to the server of dsn; prefix, progress and log may be
// zero (commitflow_bench, discard, discard).
func connect(ctx context.Context, dsn, prefix string, progress io.Writer, log *slog.Logger) (*server, error) {
	s := &server{dsn: dsn, prefix: prefix, progress: progress, log: log}
	if s.prefix == "" {
		s.prefix = "commitflow_bench"
	}
	if s.progress == nil {
		s.progress = io.Discard
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	admin, err := store.Open(ctx, dsn, store.Options{Logger: s.log})
	if err != nil {
		return nil, err
	}
	s.admin = admin
	return s, nil
}

func (s *server) close() { s.admin.Close() }

// database opens a migrated store on database <prefix>_<name>, dropping
// what it held first unless keep is set (store.Open creates a database it
// does not find), and returns its DSN too.
func (s *server) database(ctx context.Context, name string, keep bool) (*store.Store, string, error) {
	db := s.prefix + "_" + name
	if !keep {
		if err := s.admin.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+db); err != nil {
			return nil, "", err
		}
	}
	dsn, err := withDatabase(s.dsn, db)
	if err != nil {
		return nil, "", err
	}
	st, err := store.Open(ctx, dsn, store.Options{Logger: s.log})
	if err != nil {
		return nil, "", err
	}
	if _, err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, "", err
	}
	return st, dsn, nil
}

// drop closes st and drops its database.
func (s *server) drop(st *store.Store) {
	st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.admin.Conn().Exec(ctx, "DROP DATABASE IF EXISTS "+st.Database())
}

// median returns the median of xs (not empty); xs is not modified.
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// settle waits, up to two minutes, until the server runs no merge.
func settle(ctx context.Context, st *store.Store) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var n uint64
		if err := st.Conn().QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&n); err != nil {
			return fmt.Errorf("settle: %w", err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// heapStats is what watchHeap saw of the Go heap while it watched.
type heapStats struct {
	// PeakInuse is the largest heap in use (runtime.MemStats.HeapInuse):
	// what the process holds, garbage not yet collected included.
	PeakInuse uint64
	// PeakLive is the largest heap a collection found live (the runtime's
	// /gc/heap/live:bytes): what the peak would be with no garbage.
	PeakLive uint64
	// Allocated is the bytes allocated on the heap, GCs the collections
	// completed and GCCPU the CPU time the collector took (the runtime's
	// estimate), all while watching.
	Allocated, GCs uint64
	GCCPU          time.Duration
}

// heapMetrics are the runtime/metrics samples watchHeap reads, in the
// order it reads them.
var heapMetrics = []string{"/gc/heap/live:bytes", "/gc/heap/allocs:bytes", "/gc/cycles/total:gc-cycles", "/cpu/classes/gc/total:cpu-seconds"}

// watchHeap samples the Go heap until the returned function is called,
// which returns what it saw.
func watchHeap() (stop func() heapStats) {
	done := make(chan struct{})
	result := make(chan heapStats)
	samples := make([]metrics.Sample, len(heapMetrics))
	for i, name := range heapMetrics {
		samples[i].Name = name
	}
	read := func() (live, allocs, gcs uint64, gcCPU float64) {
		metrics.Read(samples)
		return samples[0].Value.Uint64(), samples[1].Value.Uint64(), samples[2].Value.Uint64(), samples[3].Value.Float64()
	}
	_, allocs0, gcs0, cpu0 := read()
	go func() {
		var m runtime.MemStats
		var st heapStats
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&m)
			live, allocs, gcs, cpu := read()
			st.PeakInuse = max(st.PeakInuse, m.HeapInuse)
			// The live heap of a collection before the watch began
			// is not the drain's.
			if gcs > gcs0 {
				st.PeakLive = max(st.PeakLive, live)
			}
			st.Allocated, st.GCs, st.GCCPU = allocs-allocs0, gcs-gcs0, time.Duration((cpu-cpu0)*float64(time.Second))
			select {
			case <-done:
				result <- st
				return
			case <-t.C:
			}
		}
	}()
	return func() heapStats { close(done); return <-result }
}

// startCPUProfile starts a CPU profile written to path, if path is not
// empty, and returns the function that stops it.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// writeHeapProfile writes a heap profile to path, if path is not empty.
func writeHeapProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return f.Close()
}
