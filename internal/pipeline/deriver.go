package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"slices"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/retry"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Config tunes a Deriver. Zero values take the defaults.
type Config struct {
	// BatchSize is the most messages fetched from a partition at once.
	BatchSize int // default 2000
	// MaxWait is how long a fetch waits for BatchSize messages.
	MaxWait time.Duration // default 500ms
	// CacheBytes is the memory the histories and derived sets that the
	// partitions keep cached may take together, estimated (opp.size).
	CacheBytes int64 // default DefaultCacheBytes
	// LeaseTTL is how long a partition lease lives without renewal.
	LeaseTTL time.Duration // default 15s
	// Sweep is how often open opportunities are re-derived so that
	// time-based events (stalls, overdue actions) fire without new input.
	Sweep time.Duration // default 10m; < 0 disables
	// Now is the clock; time-based events fire when it passes their time.
	Now func() time.Time // default time.Now
	// Member names this process in the lease bucket (default: a new ksuid).
	Member string
	// Replicas of the lease bucket on a NATS cluster (default 1).
	Replicas int
	// Concurrency is the most batches the partitions derive and write at
	// once (default twice GOMAXPROCS: while some wait for ClickHouse,
	// others derive). Each of the 16 partitions with a batch of its own
	// only held more histories and rows in memory at a time, which a
	// backfill's collector paid for; one per core left ClickHouse fewer
	// batches to insert together.
	Concurrency int
}

// DefaultCacheBytes is the memory a Deriver's caches take by default: a
// quarter of the long-running commands' default memory limit. A deal of a
// few CRM changes and its fifteen derived events takes ~12 KB, so this
// holds about 20k such deals; a miss costs a load from ClickHouse.
const DefaultCacheBytes = 256 << 20

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = 2000
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.CacheBytes <= 0 {
		c.CacheBytes = DefaultCacheBytes
	}
	if c.Sweep == 0 {
		c.Sweep = 10 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 2 * runtime.GOMAXPROCS(0)
	}
	c.LeaseTTL, c.Member = bus.HolderDefaults(c.LeaseTTL, c.Member)
	return c
}

// Deriver is the live derivation worker. It holds leases on a fair share of
// the event stream's partitions and, for each, consumes the partition's
// durable consumer: it waits until the ingest consumer has stored everything
// up to the batch (so ClickHouse holds each opportunity's full history),
// re-derives the touched opportunities, writes the difference, and only then
// acknowledges the batch.
type Deriver struct {
	js         jetstream.JetStream
	w          *writer
	cfg        Config
	partitions int
	log        *slog.Logger
	m          *metrics
	leaseM     *bus.LeaseMetrics
	cache      *cacheBudget  // shared by the partitions' caches
	slots      chan struct{} // one per batch derived at once (Config.Concurrency)
}

// NewDeriver returns a Deriver that derives each tenant's events with its
// ladder in ls. The streams and consumers must have been declared
// (bus.Declare).
func NewDeriver(ctx context.Context, js jetstream.JetStream, st *store.Store, ls ladder.Source, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Deriver, error) {
	n, err := bus.Partitions(ctx, js)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	budget := &cacheBudget{limit: cfg.CacheBytes}
	m, err := newMetrics(reg, budget)
	if err != nil {
		return nil, err
	}
	leaseM, err := bus.NewLeaseMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Deriver{
		js:         js,
		cache:      budget,
		slots:      make(chan struct{}, cfg.Concurrency),
		w:          newWriter(st, js, ls, log, m, false),
		cfg:        cfg,
		partitions: n,
		log:        log.With("component", "derive", "member", cfg.Member),
		m:          m,
		leaseM:     leaseM,
	}, nil
}

// Run works until ctx is cancelled, then finishes the batches in flight,
// releases its leases and returns.
func (d *Deriver) Run(ctx context.Context) error {
	leases, err := NewLeases(ctx, d.js, d.partitions, bus.LeaseConfig{
		Member: d.cfg.Member, TTL: d.cfg.LeaseTTL, Replicas: d.cfg.Replicas, Logger: d.log, Metrics: d.leaseM,
	})
	if err != nil {
		return err
	}
	type running struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	workers := map[int]running{}
	start := func(p int) {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		workers[p] = running{cancel, done}
		go func() {
			defer close(done)
			if err := d.runPartition(pctx, p); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Error("partition worker stopped", "partition", p, "err", err)
			}
		}()
	}
	stop := func(p int) {
		if r, ok := workers[p]; ok {
			r.cancel()
			<-r.done
			delete(workers, p)
		}
	}
	defer func() {
		for p := range workers {
			stop(p)
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		leases.Leave(lctx)
		cancel()
		d.m.owned.Set(0)
	}()

	tick := time.NewTicker(d.cfg.LeaseTTL / 3)
	defer tick.Stop()
	for {
		lost, err := leases.Heartbeat(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("lease heartbeat failed", "err", err)
		}
		for _, p := range lost {
			d.log.Warn("partition lease lost", "partition", p)
			stop(p)
		}
		// Restart workers that stopped by themselves (an error they logged).
		for p, r := range workers {
			select {
			case <-r.done:
				delete(workers, p)
				if leases.Owned(p) && ctx.Err() == nil {
					start(p)
				}
			default:
			}
		}
		if share, err := leases.Share(ctx); err == nil {
			if surplus := leases.Surplus(share); len(surplus) > 0 {
				for _, p := range surplus {
					stop(p)
					if err := leases.Release(ctx, p); err != nil {
						d.log.Warn("release failed", "partition", p, "err", err)
					}
				}
				d.log.Info("partitions released for rebalance", "partitions", surplus, "share", share)
			}
			gained, err := leases.Claim(ctx, share)
			if err != nil && ctx.Err() == nil {
				d.log.Warn("claim failed", "err", err)
			}
			if len(gained) > 0 {
				for _, p := range gained {
					start(p)
				}
				d.log.Info("partitions claimed", "partitions", gained, "share", share)
			}
		}
		d.m.owned.Set(float64(len(workers)))
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// runPartition consumes one partition until ctx is cancelled.
func (d *Deriver) runPartition(ctx context.Context, p int) error {
	// The partition is this process's alone now: what an earlier holder
	// fetched and never acknowledged (it died, or stopped with its batch
	// in flight and an embedded server forgot the negative
	// acknowledgements) is delivered again from the acknowledgement floor
	// at once rather than after the consumer's AckWait. A server without
	// consumer reset (before 2.14) does not answer; it redelivers after
	// AckWait as before.
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := d.js.ResetConsumer(rctx, bus.EventsStream, bus.DeriveConsumer(p))
	cancel()
	if err != nil && ctx.Err() == nil {
		d.log.Info("derive consumer not reset: unacknowledged messages come back after AckWait", "partition", p, "err", err)
	}
	cons, err := d.js.Consumer(ctx, bus.EventsStream, bus.DeriveConsumer(p))
	if err != nil {
		return fmt.Errorf("partition %d consumer: %w", p, err)
	}
	ingest := &ingestFloor{js: d.js}
	c := newCache(d.cache)
	defer c.drop()
	lastSweep := time.Now()
	for ctx.Err() == nil {
		if d.cfg.Sweep > 0 && time.Since(lastSweep) >= d.cfg.Sweep {
			if err := d.sweep(ctx, p, c); err != nil && ctx.Err() == nil {
				d.log.Warn("sweep failed", "partition", p, "err", err)
			}
			lastSweep = time.Now()
		}
		batch, err := cons.Fetch(d.cfg.BatchSize, jetstream.FetchMaxWait(d.cfg.MaxWait))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Warn("fetch failed", "partition", p, "err", err)
			_ = retry.Sleep(ctx, time.Second)
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) == 0 {
			continue
		}
		if err := d.process(ctx, p, ingest, c, msgs); err != nil {
			// Leave the batch unacknowledged: it is redelivered after the
			// consumer's AckWait, or to the next owner of the partition.
			for _, m := range msgs {
				_ = m.Nak()
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Warn("derive batch failed; retrying", "partition", p, "err", err)
			_ = retry.Sleep(ctx, time.Second)
		}
	}
	return ctx.Err()
}

// process derives one batch and acknowledges it.
func (d *Deriver) process(ctx context.Context, p int, ingest *ingestFloor, c *cache, msgs []jetstream.Msg) error {
	start := time.Now()
	var last uint64
	for _, m := range msgs {
		if md, err := m.Metadata(); err == nil && md.Sequence.Stream > last {
			last = md.Sequence.Stream
		}
	}
	if err := ingest.wait(ctx, last); err != nil {
		return err
	}
	d.m.barrier.Observe(time.Since(start).Seconds())
	select {
	case d.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-d.slots }()

	// Group the batch's valid events by opportunity. Invalid ones, and
	// those on a subject that is not theirs, are the ingest worker's to
	// dead-letter; events without an opportunity derive nothing.
	fresh := map[string][]derive.Copy{}
	raw := map[string]int{} // the JSON bytes of each opportunity's fresh copies
	var keys []string
	for _, m := range msgs {
		ev, err := event.Parse(m.Data())
		if err != nil || ev.OpportunityID == "" || bus.CheckSubject(m.Subject(), ev, d.partitions) != nil {
			continue
		}
		k := oppKey(ev.Tenant, ev.OpportunityID)
		if _, ok := fresh[k]; !ok {
			keys = append(keys, k)
		}
		var seq uint64
		if md, err := m.Metadata(); err == nil {
			seq = md.Sequence.Stream
		}
		fresh[k] = append(fresh[k], derive.Copy{Event: ev, Seq: seq})
		raw[k] += len(m.Data())
	}
	opps, conflicts, err := d.load(ctx, c, keys, fresh, raw)
	if err != nil {
		return err
	}
	if err := d.report(ctx, conflicts, msgs); err != nil {
		return err
	}
	if err := d.w.apply(ctx, opps, d.cfg.Now()); err != nil {
		return err
	}
	for _, o := range opps {
		c.put(o)
	}
	// Acknowledged without waiting for the server to confirm: a confirmed
	// acknowledgement (DoubleAck) waits for a reply the server does not
	// always send — it skips the reply to an acknowledgement above the
	// consumer's delivery pointer, as after a restart that lost the
	// consumer's latest state — and with the partition's context, which has
	// no deadline, the partition waited for ever. An acknowledgement lost
	// on the way only brings the message back after AckWait, and
	// redelivery is harmless: the derivation is idempotent.
	for _, m := range msgs {
		if err := m.Ack(); err != nil {
			d.log.Warn("ack failed", "partition", p, "err", err)
		}
	}
	d.m.input.Add(float64(len(msgs)))
	d.m.batch.Observe(time.Since(start).Seconds())
	return nil
}

// load returns the opportunities named by keys with their full history, one
// copy per event by stream sequence (derive.Latest): the cached history plus
// the fresh events, or, on a miss, the stored copies (which by the barrier
// include the fresh events) plus the fresh ones. It also returns the
// conflicting duplicates that involve a fresh copy; the others were found
// when their later copy was fresh. The cached opportunities are left as
// they were: process puts the returned ones in their place once derived.
func (d *Deriver) load(ctx context.Context, c *cache, keys []string, fresh map[string][]derive.Copy, raw map[string]int) ([]*opp, []derive.Conflict, error) {
	out := make([]*opp, 0, len(keys))
	var conflicts []derive.Conflict
	missing := map[string][]string{} // tenant -> opportunity ids
	for _, k := range keys {
		evs := fresh[k]
		t, id := evs[0].Event.Tenant, evs[0].Event.OpportunityID
		if o := c.get(t, id); o != nil {
			// The cache holds one copy per event: every conflict is
			// with a fresh one.
			events, cs := derive.Latest(append(slices.Clip(o.events), evs...))
			conflicts = append(conflicts, cs...)
			out = append(out, &opp{tenant: t, id: id, events: events, derived: o.derived, raw: o.raw + raw[k]})
			continue
		}
		missing[t] = append(missing[t], id)
	}
	for t, ids := range missing {
		loaded, cs, err := loadOpps(ctx, d.w, t, ids, fresh, raw)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, loaded...)
		conflicts = append(conflicts, cs...)
	}
	return out, conflicts, nil
}

// loadOpps reads the stored history and derived sets of a tenant's
// opportunities. The history is the latest copy of each event among the
// stored copies (superseded ones included, until merged away) and the
// fresh ones of the opportunity (keyed by oppKey); the conflicts returned
// are those that involve a fresh copy.
//
// Often most opportunities of a batch are new (an import, a day's new
// deals): their only stored copies are their fresh ones, which the
// barrier saw stored, and nothing was derived from them. Loading a
// thousand opportunities spread over a tenant's tables reads about every
// granule of each, so loadOpps first asks which ones have stored copies
// besides their fresh ones, and which have derived events, reading a few
// narrow columns (store.StoredCopies, store.WithDerived), and loads the
// history and the derived set of those alone, the history from the months
// its copies are in (store.LoadEventCopiesIn).
func loadOpps(ctx context.Context, w *writer, tenant string, ids []string, fresh map[string][]derive.Copy, raw map[string]int) ([]*opp, []derive.Conflict, error) {
	stored, err := w.st.StoredCopies(ctx, tenant, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("load history: %w", err)
	}
	withDerived, err := w.st.WithDerived(ctx, tenant, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("load derived: %w", err)
	}
	var historyOf, derivedOf []string
	inMonth := map[uint32]bool{}
	for _, id := range ids {
		if !onlyFresh(stored[id], fresh[oppKey(tenant, id)]) {
			historyOf = append(historyOf, id)
			for _, c := range stored[id] {
				inMonth[c.Month] = true
			}
		}
		if withDerived[id] {
			derivedOf = append(derivedOf, id)
		}
	}
	// Copies stored after StoredCopies are all of later stream sequences
	// than the batch's (the barrier saw every earlier one stored): left out
	// when in another month, they are derived when they arrive, as for a
	// cached opportunity.
	latest, superseded, err := w.st.LoadEventCopiesIn(ctx, tenant, historyOf, slices.Sorted(maps.Keys(inMonth)))
	if err != nil {
		return nil, nil, fmt.Errorf("load history: %w", err)
	}
	derived := map[string][]derive.Derived{}
	if len(derivedOf) > 0 {
		if derived, err = w.st.LoadDerived(ctx, tenant, derivedOf); err != nil {
			return nil, nil, fmt.Errorf("load derived: %w", err)
		}
	}
	byOpp := map[string][]store.RawEvent{}
	for _, r := range latest {
		byOpp[r.OpportunityID] = append(byOpp[r.OpportunityID], r)
	}
	for _, r := range superseded {
		byOpp[r.OpportunityID] = append(byOpp[r.OpportunityID], r)
	}
	out := make([]*opp, 0, len(ids))
	var conflicts []derive.Conflict
	for _, id := range ids {
		k := oppKey(tenant, id)
		evs := fresh[k]
		events, cs := derive.Latest(append(parseEvents(w.log, byOpp[id]), evs...))
		conflicts = append(conflicts, withFresh(cs, evs)...)
		n := raw[k]
		for _, r := range byOpp[id] {
			n += len(r.Payload)
		}
		out = append(out, &opp{tenant: tenant, id: id, events: events, derived: derived[id], raw: n})
	}
	return out, conflicts, nil
}

// onlyFresh reports whether every stored copy of an opportunity's events
// is one of its fresh copies, by stream sequence: then its stored history
// is what fresh holds. A stream sequence names one message, and a copy
// without one (0) is never taken for a fresh one.
func onlyFresh(stored []store.StoredCopy, fresh []derive.Copy) bool {
	if len(stored) == 0 {
		return true
	}
	in := make(map[uint64]bool, len(fresh))
	for _, c := range fresh {
		if c.Seq != 0 {
			in[c.Seq] = true
		}
	}
	for _, c := range stored {
		if !in[c.Seq] {
			return false
		}
	}
	return true
}

// ingestFloor follows the acknowledgement floor of the current generation
// of the ingest consumer (see bus.RotateIngest).
type ingestFloor struct {
	js       jetstream.JetStream
	cons     jetstream.Consumer
	resolved time.Time // when cons was found to be the current generation
}

// floorRecheck is how long wait trusts that the generation of the ingest
// consumer it follows is the current one.
const floorRecheck = 5 * time.Second

// wait blocks until the ingest consumer has acknowledged every message up
// to stream sequence seq, i.e. until they are stored in ClickHouse. A new
// generation starts at its predecessor's floor, so the floor only grows
// across generations. wait looks for the current generation again when
// the one it follows is deleted, and when that one, found current
// floorRecheck or longer ago, is short of seq: an older generation that
// lingers (its deletion lost to a server restart, say) keeps a floor that
// never moves again.
func (f *ingestFloor) wait(ctx context.Context, seq uint64) error {
	r := retry.Policy{Initial: 20 * time.Millisecond, Max: 640 * time.Millisecond}.Start()
	for {
		if f.cons == nil {
			c, err := bus.CurrentIngest(ctx, f.js)
			if err != nil {
				return err
			}
			f.cons, f.resolved = c, time.Now()
		}
		info, err := f.cons.Info(ctx)
		switch {
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			f.cons = nil
			continue
		case err != nil:
			return fmt.Errorf("ingest consumer info: %w", err)
		case info.AckFloor.Stream >= seq:
			return nil
		}
		if time.Since(f.resolved) >= floorRecheck {
			f.cons = nil
		}
		wait, _ := r.Next()
		if err := retry.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// sweep re-derives the partition's open opportunities with the current
// clock, so that stalls and overdue actions fire without new input.
func (d *Deriver) sweep(ctx context.Context, p int, c *cache) error {
	open, err := d.w.st.OpenOpportunities(ctx)
	if err != nil {
		return err
	}
	byTenant := map[string][]string{}
	for _, o := range open {
		if bus.Partition(o.Tenant, o.OpportunityID, d.partitions) == p {
			byTenant[o.Tenant] = append(byTenant[o.Tenant], o.OpportunityID)
		}
	}
	for t, ids := range byTenant {
		for len(ids) > 0 {
			n := min(len(ids), 1000)
			chunk := ids[:n]
			ids = ids[n:]
			var opps []*opp
			var missing []string
			for _, id := range chunk {
				if o := c.get(t, id); o != nil {
					opps = append(opps, o)
				} else {
					missing = append(missing, id)
				}
			}
			loaded, _, err := loadOpps(ctx, d.w, t, missing, nil, nil)
			if err != nil {
				return err
			}
			opps = append(opps, loaded...)
			if err := d.w.apply(ctx, opps, d.cfg.Now()); err != nil {
				return err
			}
		}
	}
	return nil
}

// metrics are the derivation's Prometheus metrics.
type metrics struct {
	input   prometheus.Counter
	derived *prometheus.CounterVec
	owned   prometheus.Gauge
	batch   prometheus.Histogram
	barrier prometheus.Histogram
	// conflicts counts conflicting duplicates (see Deriver.report).
	conflicts prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, cache *cacheBudget) (*metrics, error) {
	m := &metrics{
		input: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commitflow_derive_input_events_total", Help: "Input events derived from."}),
		derived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_derive_events_written_total", Help: "Derived events written, by type and change (added or retracted)."},
			[]string{"type", "change"}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "commitflow_derive_partitions_owned", Help: "Partitions this process derives."}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "commitflow_derive_batch_seconds", Help: "Time to derive and write one batch.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		barrier: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "commitflow_derive_ingest_wait_seconds", Help: "Time a batch waited for ingest to store its events.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "commitflow_derive_conflicting_duplicates_total",
			Help: "Copies of an event id with content other than the copy of a higher stream sequence, which wins; each was dead-lettered."}),
	}
	if reg != nil {
		cached := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "commitflow_derive_cache_bytes",
			Help: "Memory the derive partitions' cached deal histories and derived events take, estimated; at most run --derive-cache (and one deal)."},
			func() float64 { return float64(cache.used.Load()) })
		for _, c := range []prometheus.Collector{m.input, m.derived, m.owned, m.batch, m.barrier, m.conflicts, cached} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register derive metrics: %w", err)
			}
		}
	}
	return m, nil
}
