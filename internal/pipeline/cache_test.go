package pipeline

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/importer"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/promtest"
)

// sized returns an opportunity whose estimated size is about n bytes.
func sized(id string, n int) *opp {
	return &opp{tenant: "acme", id: id, raw: max(0, n-oppOverhead) / 2}
}

func TestCacheBoundedByMemory(t *testing.T) {
	b := &cacheBudget{limit: 10 << 20}
	p1, p2 := newCache(b), newCache(b)
	// A backfill of big deals: far more than the budget passes through.
	for i := range 100 {
		p1.put(sized(fmt.Sprint("a", i), 1<<20))
		if used := b.used.Load(); used > b.limit {
			t.Fatalf("after %d deals of 1 MiB: %d bytes cached, budget %d", i+1, used, b.limit)
		}
	}
	if n := p1.order.Len(); n != 10 {
		t.Errorf("%d deals of 1 MiB cached in 10 MiB, want 10", n)
	}
	for i := 90; i < 100; i++ {
		if p1.get("acme", fmt.Sprint("a", i)) == nil {
			t.Errorf("deal a%d, among the 10 most recent, was evicted", i)
		}
	}
	// Another partition's puts evict its own deals, not p1's.
	for i := range 20 {
		p2.put(sized(fmt.Sprint("b", i), 1<<20))
	}
	if n1, n2 := p1.order.Len(), p2.order.Len(); n1 != 10 || n2 != 1 {
		t.Errorf("partitions hold %d and %d deals, want 10 and 1 (the one just put)", n1, n2)
	}
	// Replacing a deal by a bigger copy counts the difference.
	p2.put(sized("b19", 3<<20))
	if got, want := p2.used, sized("", 3<<20).size(); got != want {
		t.Errorf("p2 holds %d bytes after replacing its deal, want %d", got, want)
	}
	// A partition that stops gives its memory back.
	p1.drop()
	if got, want := b.used.Load(), p2.used; got != want {
		t.Errorf("after p1 stopped: %d bytes used, want p2's %d", got, want)
	}
	if p1.get("acme", "a99") != nil {
		t.Error("a dropped cache still holds a deal")
	}
	for i := range 9 {
		p2.put(sized(fmt.Sprint("c", i), 1<<20))
	}
	// 3 MiB and seven of 1 MiB fill the budget; the eighth evicts the
	// deal of 3 MiB, the least recently used.
	if n := p2.order.Len(); n != 9 || p2.get("acme", "b19") != nil {
		t.Errorf("p2 holds %d deals once p1 stopped, want the 9 of 1 MiB", n)
	}
}

// TestOppSizeEstimate checks opp.size against the heap that deals take
// once derived, as a partition caches them: the estimate must neither
// undercount (the process would outgrow its memory limit) nor overcount
// much (the cache would hold less than it could). The deals are a
// generated book of business (calls, activities, contacts: ~24 events a
// deal) and an imported Salesforce OpportunityHistory (five small events
// a deal, fifteen derived events).
func TestOppSizeEstimate(t *testing.T) {
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		events func(t *testing.T) []event.Event
	}{
		{"generated book", func(t *testing.T) []event.Event { return generate(t, 7, 3000, now) }},
		{"OpportunityHistory import", func(t *testing.T) []event.Event { return sfHistory(t, 3000) }},
	} {
		t.Run(tc.name, func(t *testing.T) { checkSizeEstimate(t, tc.events(t), now) })
	}
}

// sfHistory imports an OpportunityHistory export of deals opportunities,
// five rows each, as in the importer's throughput test.
func sfHistory(t *testing.T, deals int) []event.Event {
	var b strings.Builder
	b.WriteString(`"Id","OpportunityId","CreatedById","CreatedDate","StageName","Amount","ExpectedRevenue","CloseDate","Probability","ForecastCategory","IsDeleted","SystemModstamp"` + "\r\n")
	stages := []string{"Prospecting", "Qualification", "Qualification", "Proposal/Price Quote", "Closed Won"}
	base := time.Date(2024, 1, 1, 9, 0, 0, 0, time.UTC)
	for o := range deals {
		for k, stage := range stages {
			at := base.Add(time.Duration(o)*time.Minute + time.Duration(k)*72*time.Hour).Format("2006-01-02T15:04:05.000Z")
			fmt.Fprintf(&b, `"008%07d%d","006%015d","0055g00000USER%03d","%s","%s","%d.00","0","2024-07-31","%d","Pipeline","false","%s"`+"\r\n",
				o, k, o, o%20, at, stage, 1000+k*500, 10+20*k, at)
		}
	}
	rows, err := importer.SalesforceHistory("acme", "USD").Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	for _, r := range rows {
		if r.Err != nil {
			t.Fatalf("line %d: %v", r.Line, r.Err)
		}
		evs = append(evs, r.Events...)
	}
	return evs
}

func checkSizeEstimate(t *testing.T, evs []event.Event, now time.Time) {
	heap := func() float64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return float64(m.HeapAlloc)
	}
	withEvents := heap()
	byOpp := map[string][][]byte{}
	var ids []string
	for _, ev := range evs {
		if ev.OpportunityID == "" {
			continue
		}
		b, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := byOpp[ev.OpportunityID]; !ok {
			ids = append(ids, ev.OpportunityID)
		}
		byOpp[ev.OpportunityID] = append(byOpp[ev.OpportunityID], b)
	}
	messages := heap() - withEvents
	runtime.KeepAlive(evs)
	before := heap() - messages // evs are gone
	l := ladder.Default()
	b := &cacheBudget{limit: 1 << 40}
	c := newCache(b)
	for i, id := range ids {
		o := &opp{tenant: "acme", id: id}
		for j, data := range byOpp[id] {
			ev, err := event.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			o.events = append(o.events, derive.Copy{Event: ev, Seq: uint64(i*1000 + j + 1)})
			o.raw += len(data)
		}
		o.events, _ = derive.Latest(o.events)
		o.derived = derive.Derive(o.tenant, o.id, o.inputs(), l, now)
		c.put(o)
	}
	// The messages the events were parsed from are gone by the time a
	// partition caches them.
	clear(byOpp)
	actual := heap() - before
	runtime.KeepAlive(c)
	estimated := float64(b.used.Load())
	var events, derived int
	for e := c.order.Front(); e != nil; e = e.Next() {
		events += len(e.Value.(*cached).o.events)
		derived += len(e.Value.(*cached).o.derived)
	}
	t.Logf("%d deals, %d events (%.0f bytes of messages), %d derived: %.0f bytes in the heap (%.0f a deal), estimated %.0f (ratio %.2f)",
		len(ids), events, messages, derived, actual, actual/float64(len(ids)), estimated, estimated/actual)
	if r := estimated / actual; r < 0.8 || r > 1.5 {
		t.Errorf("estimate %.0f bytes for %.0f in the heap: ratio %.2f, want 0.8 to 1.5", estimated, actual, r)
	}
}

// TestCacheBytesGauge: commitflow_derive_cache_bytes is what a running
// deriver's partitions hold cached, within --derive-cache, and 0 once it
// stops: a partition that stops gives its cache back.
func TestCacheBytesGauge(t *testing.T) {
	const partitions = 2
	e := newEnv(t, partitions)
	js := e.ingest(t)
	reg := prometheus.NewRegistry()
	const limit = 256 << 10
	d, err := NewDeriver(t.Context(), js, e.st, ladder.Default(), Config{BatchSize: 200, MaxWait: 100 * time.Millisecond, Sweep: -1, CacheBytes: limit}, reg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	end := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if err := bus.NewPublisher(js, partitions).PublishBatch(t.Context(), generate(t, 3, 60, end)); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, js, partitions)
	cached := func() float64 { return promtest.Sum(t, reg, "commitflow_derive_cache_bytes") }
	// 60 deals of ~30 KB do not fit in 256 KiB: the partitions keep the
	// most recent ones, each partition at least one.
	if got := cached(); got <= 0 || got > limit+200<<10 {
		t.Errorf("commitflow_derive_cache_bytes %v after deriving 60 deals, want above 0 and within %d (and one deal)", got, limit)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := cached(); got != 0 {
		t.Errorf("commitflow_derive_cache_bytes %v after the deriver stopped, want 0", got)
	}
}
