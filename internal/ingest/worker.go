// Package ingest is the ingest worker: it fetches raw events from the
// JetStream ingest consumer in batches, validates them, inserts the valid
// ones into ClickHouse and dead-letters the rest, acknowledging messages only
// once they are safely stored.
//
// One process at a time consumes: the holder of the ingest lease (a key in
// the JetStream key-value bucket CF_INGEST_LEASE), while the others stand by
// and take over when its lease expires. The holder acknowledges each stored
// batch with one AckAll acknowledgement of its highest stream sequence,
// instead of one per message, which saves about 15% of the CPU of an
// embedded-NATS process per event; on taking the lease it starts a new
// generation of the consumer (bus.RotateIngest), so that a process that
// lost the lease cannot acknowledge what the new holder has not stored.
// An AckAll covers every message below it, so the worker acknowledges only
// while it holds every delivery of its generation: each message's consumer
// sequence must be the next one. A gap (a fetch that gave up on its timer
// after a pause drops messages the server already sent) ends the
// generation after the batches before it are stored, and a new one
// delivers the missing messages again.
//
// Delivery is at least once: a message whose acknowledgement is lost (crash,
// disconnect, takeover) is delivered again and inserted again. The raw table
// is a ReplacingMergeTree keyed by the event and every query de-duplicates,
// so a redelivery is never counted twice: exactly once in effect.
package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/retry"
	"github.com/commitflow/commitflow/internal/store"
)

// Config tunes a Worker. Zero values take the defaults noted on each field.
type Config struct {
	// BatchSize is the most messages fetched and inserted at once
	// (default 50000). Each insert writes a part into every monthly
	// partition it touches, so ClickHouse spends less per row on larger
	// inserts. The worker fetches and parses the next batch while it
	// stores the current one, so 2 x BatchSize messages may be in flight;
	// the consumer's MaxAckPending (100k) caps them.
	BatchSize int
	// MaxWait is how long a pull request waits for messages (default
	// 500ms). A batch is fetched by requests of up to 10k messages and
	// stored when it is full or a request comes back short: at most
	// MaxWait after the stream ran dry.
	MaxWait time.Duration
	// InsertWriters is how many concurrent INSERTs store one batch, each
	// a share of at least 10k rows (default 2). ClickHouse parses and
	// writes each INSERT on one thread; two keep a second core busy while
	// the worker's own CPU goes to fetching and parsing (bench ingest,
	// 500k events, 5 runs each: 57.5k events/s on average against 52.1k
	// with one INSERT per batch over 6 runs).
	InsertWriters int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// retries of a failed insert, dead-letter publish or fetch (defaults
	// 100ms and 5s).
	MinBackoff, MaxBackoff time.Duration
	// StatsInterval is how often the consumer's pending counts are read
	// for the gauges (default 5s).
	StatsInterval time.Duration
	// LeaseTTL is how long the ingest lease lives without renewal
	// (default 15s): how long a standby process waits to take over from
	// one that died. The holder renews it every LeaseTTL/3.
	LeaseTTL time.Duration
	// Member names this process in the lease (default: a new ksuid).
	Member string
	// Replicas of the lease bucket on a NATS cluster (default 1).
	Replicas int
}

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 {
		c.BatchSize = 50000
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 500 * time.Millisecond
	}
	if c.InsertWriters <= 0 {
		c.InsertWriters = 2
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = 5 * time.Second
	}
	c.LeaseTTL, c.Member = bus.HolderDefaults(c.LeaseTTL, c.Member)
	return c
}

// Worker moves raw events from JetStream into ClickHouse.
type Worker struct {
	js  jetstream.JetStream
	st  *store.Store
	cfg Config
	log *slog.Logger
	m   *metrics
	// leaseM counts what happens to the ingest lease.
	leaseM *bus.LeaseMetrics
	// minShare is minShareRows; tests lower it.
	minShare int
}

// New returns a Worker that reads the ingest consumer on bus.EventsStream
// (see bus.Declare and bus.RotateIngest) and writes to st. Its metrics are
// registered on reg (none if nil).
func New(js jetstream.JetStream, st *store.Store, cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Worker, error) {
	if js == nil || st == nil {
		return nil, errors.New("ingest: JetStream and store are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	leaseM, err := bus.NewLeaseMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Worker{js: js, st: st, cfg: cfg.withDefaults(), log: logger.With("component", "ingest"), m: m, leaseM: leaseM, minShare: minShareRows}, nil
}

// Config returns the worker's configuration with its defaults filled in.
func (w *Worker) Config() Config { return w.cfg }

// Ready reports whether the worker can reach NATS and the ingest consumer
// exists. A standby worker is ready too.
func (w *Worker) Ready(ctx context.Context) error {
	if s := w.js.Conn().Status(); s != nats.CONNECTED {
		return fmt.Errorf("ingest: nats connection is %v", s)
	}
	if _, err := bus.CurrentIngest(ctx, w.js); err != nil {
		return fmt.Errorf("ingest: %w", err)
	}
	return nil
}

// Run stores events until ctx is cancelled, then returns nil. It takes the
// ingest lease when it is free, or waits for it, and while it holds it
// fetches, stores and acknowledges events, fetching and parsing the next
// batch while it stores the current one. A batch in flight at cancellation,
// or when the lease is lost, is abandoned: its messages are negatively
// acknowledged so that they are delivered again at once. Run returns an
// error only if the lease bucket cannot be opened at start.
func (w *Worker) Run(ctx context.Context) error {
	l, err := openLease(ctx, w.js, w.cfg, w.log, w.leaseM)
	if err != nil {
		return err
	}
	w.log.Info("ingest started", "member", w.cfg.Member, "batch", w.cfg.BatchSize)
	standby := false
	for ctx.Err() == nil {
		holder, err := l.Acquire(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				w.log.Warn("ingest lease", "err", err)
			}
		case !l.Held():
			if !standby {
				w.log.Info("ingest standing by: another process holds the ingest lease", "holder", holder)
				standby = true
			}
		default:
			standby = false
			w.lead(ctx, l)
			continue
		}
		t := time.NewTimer(w.cfg.LeaseTTL / 3)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	w.log.Info("ingest stopped")
	return nil
}

// lead consumes as the lease holder, on a new generation of the ingest
// consumer, until ctx is done or the lease is lost, and then gives the lease
// up.
func (w *Worker) lead(ctx context.Context, l *bus.Lease) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := l.Release(rctx); err != nil {
			w.log.Warn("ingest lease not released; it expires after its TTL", "err", err)
		}
		cancel()
		w.m.leader.Set(0)
	}()
	// The partition count is fixed once CF_EVENTS exists: every message's
	// subject is checked against it.
	parts, err := bus.Partitions(ctx, w.js)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("ingest: reading the partition count failed; retrying", "err", err)
			w.sleep(ctx, 1)
		}
		return
	}
	cons, err := bus.RotateIngest(ctx, w.js)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("ingest consumer rotation failed; retrying", "err", err)
			w.sleep(ctx, 1)
		}
		return
	}
	info := cons.CachedInfo()
	w.log.Info("ingest lease taken", "consumer", info.Name, "from_stream_seq", max(info.Config.OptStartSeq, 1))
	w.m.leader.Set(1)

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Extend the ack deadline of a batch well before it expires.
	progress := info.Config.AckWait / 3
	if progress <= 0 {
		progress = 10 * time.Second
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(w.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
			}
			// Renew retries while NATS is unreachable, the lease held
			// until its deadline; an error is a loss (logged) or lctx's end.
			if err := l.Renew(lctx); err != nil {
				if lctx.Err() == nil {
					w.log.Warn("ingest lease lost; abandoning the batches in flight", "err", err)
				}
				cancel()
				return
			}
		}
	})
	w.consume(lctx, cons, parts, progress)
	cancel()
	wg.Wait()
}

// consume runs loop on cons until ctx is done. When loop stops at a
// delivery gap it moves on to a new generation of the consumer, which
// starts right after the last acknowledged message and so delivers again
// what the gap lost.
func (w *Worker) consume(ctx context.Context, cons jetstream.Consumer, parts int, progress time.Duration) {
	for attempt := 1; ; {
		gctx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { w.watchConsumer(gctx, cons) })
		err := w.loop(gctx, cons, parts, progress)
		stop()
		wg.Wait()
		var gap *gapError
		if ctx.Err() != nil || !errors.As(err, &gap) {
			return
		}
		w.m.gaps.Inc()
		w.log.Error("ingest delivery gap: messages the consumer delivered never reached this worker; "+
			"nothing at or past the gap was acknowledged, and a new consumer generation delivers them again",
			"consumer", cons.CachedInfo().Name, "err", gap)
		for {
			next, err := bus.RotateIngest(ctx, w.js)
			if err == nil {
				cons, attempt = next, 1
				break
			}
			if ctx.Err() != nil {
				return
			}
			w.log.Warn("ingest consumer rotation failed; retrying", "err", err, "attempt", attempt)
			if !w.sleep(ctx, attempt) {
				return
			}
			attempt++
		}
		w.log.Info("ingest resumed on a new consumer generation", "consumer", cons.CachedInfo().Name,
			"from_stream_seq", max(cons.CachedInfo().Config.OptStartSeq, 1))
	}
}

// gapError reports a delivery gap: the worker expected the delivery with
// consumer sequence want and received got instead (or a message whose
// metadata does not parse, err).
type gapError struct {
	want, got uint64
	err       error
}

func (e *gapError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("delivery gap: expected consumer sequence %d, got a message without metadata: %v", e.want, e.err)
	}
	return fmt.Sprintf("delivery gap: expected consumer sequence %d, got %d", e.want, e.got)
}

// watchConsumer refreshes the pending gauges until ctx is done.
func (w *Worker) watchConsumer(ctx context.Context, cons jetstream.Consumer) {
	t := time.NewTicker(w.cfg.StatsInterval)
	defer t.Stop()
	for {
		if info, err := cons.Info(ctx); err == nil {
			w.m.pending.Set(float64(info.NumPending))
			w.m.ackPending.Set(float64(info.NumAckPending))
		} else if ctx.Err() == nil {
			w.log.Debug("consumer info", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// loop consumes cons, a consumer generation nothing has been fetched from
// yet, until ctx is done or the fetcher meets a delivery gap: a fetcher
// goroutine fetches and parses the next batch while this goroutine stores
// the previous one, so that ClickHouse is kept busy. Batches are stored and
// acknowledged in the order they were fetched, which AckAll requires. At a
// gap, loop stores and acknowledges the batches fetched before it and
// returns a *gapError.
func (w *Worker) loop(ctx context.Context, cons jetstream.Consumer, parts int, progress time.Duration) error {
	log := w.log
	ready := make(chan *batch) // unbuffered: at most two batches per worker
	// Stored batches go back to the fetcher, which reuses their slices.
	free := make(chan *batch, 1)
	var fetchErr error
	go func() {
		fetchErr = w.fetchLoop(ctx, cons, parts, log, progress, ready, free)
		close(ready)
	}()
	for b := range ready {
		if ctx.Err() != nil {
			w.abandon(log, b, ctx.Err())
			continue
		}
		if err := w.commit(ctx, b); err != nil {
			w.abandon(log, b, err)
			continue
		}
		log.Debug("batch stored", "messages", len(b.replies), "rows", len(b.rows),
			"dead", len(b.dead), "age", time.Since(b.fetched))
		// Emptied here, not when the fetcher takes it back: the
		// stored rows and their payloads are garbage from now on.
		b.reset()
		select {
		case free <- b:
		default:
		}
	}
	return fetchErr
}

// fetchLoop fetches and parses batches and sends them on ready until ctx
// is done (it then returns nil) or a delivery gap shows: a message whose
// consumer sequence is not the next one. The messages of the gap were
// delivered to this consumer and never reached the worker (a fetch that
// ended on its wait time after a pause drops what the server had already
// sent), and AckAll must not cover them: fetchLoop sends the batch fetched
// before the gap and returns a *gapError.
func (w *Worker) fetchLoop(ctx context.Context, cons jetstream.Consumer, parts int, log *slog.Logger, progress time.Duration, ready chan<- *batch, free <-chan *batch) error {
	fails := 0
	next := uint64(1) // consumer sequence of the next delivery
	var b *batch
	for ctx.Err() == nil {
		// An empty batch is kept for the next fetch; a sent one is
		// replaced by a stored one coming back, or a new one.
		if b == nil {
			select {
			case b = <-free:
			default:
				b = w.newBatch()
			}
		}
		gap, err := w.fill(cons, b, &next, parts)
		switch {
		case err != nil:
			fails++
			log.Warn("fetch failed", "err", err, "messages", len(b.replies), "attempt", fails)
			if len(b.replies) == 0 {
				w.sleep(ctx, fails)
				continue
			}
		case gap == nil:
			fails = 0
		}
		if len(b.replies) > 0 {
			w.fetched(b, progress)
			select {
			case ready <- b:
				b = nil
			case <-ctx.Done():
				w.abandon(log, b, ctx.Err())
				return nil
			}
		}
		if gap != nil {
			return gap
		}
	}
	return nil
}

// fetchChunk is the most messages one pull request asks for. The client
// holds what the server has sent until the worker has parsed it, and the
// server sends a request's messages as fast as it can: a request of a whole
// batch (50k) kept up to ~100 MB of messages waiting on the heap beside the
// two batches in flight.
const fetchChunk = 10_000

// fill fetches messages into b, fetchChunk at a time, parsing each as it
// arrives, until b holds BatchSize messages, a fetch comes back short (the
// stream had no more within MaxWait), a fetch fails or a gap shows: a
// message whose consumer sequence is not *next, the consumer sequence of the
// next delivery.
func (w *Worker) fill(cons jetstream.Consumer, b *batch, next *uint64, parts int) (*gapError, error) {
	for len(b.replies) < w.cfg.BatchSize {
		want := min(fetchChunk, w.cfg.BatchSize-len(b.replies))
		fb, err := cons.Fetch(want, jetstream.FetchMaxWait(w.cfg.MaxWait))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range fb.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return &gapError{want: *next, err: err}, nil
			}
			if md.Sequence.Consumer != *next {
				return &gapError{want: *next, got: md.Sequence.Consumer}, nil
			}
			*next++
			w.add(b, m, md, parts)
		}
		if err := fb.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, fmt.Errorf("fetch ended: %w", err)
		}
		if got < want {
			return nil, nil
		}
	}
	return nil, nil
}

// batch is a fetched batch, parsed and on its way to the store.
//
// A batch holds what it needs of its messages and not the messages
// themselves: their decoded headers, metadata and wrappers (about 700
// bytes a message beside its 600-byte body) would otherwise stay on the
// heap, two batches of them, until the batch is stored.
type batch struct {
	// replies are the reply subjects of the batch's messages, in
	// delivery order: where keepAlive and abandon send their "+WPI" and
	// "-NAK" (jetstream.Msg's InProgress and Nak).
	replies []string
	rows    []store.RawEvent
	// subjects[i] is the subject rows[i] was published on, for a
	// dead letter of a row ClickHouse rejects.
	subjects []string
	dead     []deadLetter
	// top is the message with the highest stream sequence, topSeq;
	// acknowledging it (AckAll) acknowledges the batch.
	top     jetstream.Msg
	topSeq  uint64
	fetched time.Time

	consumed, stored, dlq tally

	stopKeepAlive func()
}

// deadLetter is an invalid message on its way to CF_DLQ: its subject,
// body and stream sequence, and why it is refused.
type deadLetter struct {
	subject string
	data    []byte
	seq     uint64
	err     error
	key     labelKey
}

// newBatch returns an empty batch, sized for a quiet stream: an idle fetch
// returns nothing every MaxWait, and a full batch grows it a few times.
func (w *Worker) newBatch() *batch {
	n := min(w.cfg.BatchSize, 1024)
	return &batch{
		replies:  make([]string, 0, n),
		rows:     make([]store.RawEvent, 0, n),
		subjects: make([]string, 0, n),
		consumed: tally{},
		stored:   tally{},
		dlq:      tally{},
	}
}

// reset empties b for reuse, keeping the capacity of its slices and
// dropping its references to the old messages.
func (b *batch) reset() {
	clear(b.replies)
	clear(b.rows)
	clear(b.subjects)
	b.replies, b.rows, b.subjects, b.dead = b.replies[:0], b.rows[:0], b.subjects[:0], nil
	b.top, b.topSeq = nil, 0
	clear(b.consumed)
	clear(b.stored)
	clear(b.dlq)
	b.stopKeepAlive = nil
}

// add parses m, with metadata md, into a row of b, or a dead letter if it
// is invalid or its subject is not the one its event belongs on (with parts
// partitions): a producer allowed to publish on one tenant's subjects must
// not write into another's, and an event on a wrong partition would never
// be derived.
func (w *Worker) add(b *batch, m jetstream.Msg, md *jetstream.MsgMetadata, parts int) {
	b.replies = append(b.replies, m.Reply())
	seq, ts := md.Sequence.Stream, md.Timestamp
	if b.top == nil || seq > b.topSeq {
		b.top, b.topSeq = m, seq
	}
	data, subject := m.Data(), m.Subject()
	ev, err := event.Parse(data)
	if err != nil {
		b.deadLetter(deadLetter{subject: subject, data: data, seq: seq, err: err, key: invalidLabels(data)})
		return
	}
	key := labelKey{ev.Tenant, string(ev.Type)}
	if err := bus.CheckSubject(subject, ev, parts); err != nil {
		b.deadLetter(deadLetter{subject: subject, data: data, seq: seq, err: err, key: key})
		return
	}
	b.consumed[key]++
	b.stored[key]++
	received := ev.ReceivedAt
	if received.IsZero() {
		received = ts
	}
	b.subjects = append(b.subjects, subject)
	b.rows = append(b.rows, store.RawEvent{
		Tenant:        ev.Tenant,
		OpportunityID: ev.OpportunityID,
		Source:        ev.Source,
		EventID:       ev.ID,
		Type:          string(ev.Type),
		OccurredAt:    ev.OccurredAt,
		ReceivedAt:    received,
		StreamSeq:     seq,
		Payload:       data,
	})
}

// deadLetter adds d to b's dead letters.
func (b *batch) deadLetter(d deadLetter) {
	b.consumed[d.key]++
	b.dlq[d.key]++
	b.dead = append(b.dead, d)
}

// fetched marks the end of b's fetch: it counts the batch and starts
// telling the server that its messages are in progress.
func (w *Worker) fetched(b *batch, progress time.Duration) {
	w.m.batchSize.Observe(float64(len(b.replies)))
	b.fetched = time.Now()
	b.stopKeepAlive = keepAlive(w.js.Conn(), b.replies, progress)
	b.consumed.addTo(w.m.consumed)
}

// commit stores and dead-letters a batch, retrying until it succeeds, and
// then acknowledges every message. It returns an error, with nothing
// acknowledged, only if ctx is done first.
func (w *Worker) commit(ctx context.Context, b *batch) error {
	if len(b.rows) > 0 {
		if err := w.store(ctx, b); err != nil {
			return err
		}
	}
	if len(b.dead) > 0 {
		err := w.retry(ctx, "dead-letter", func() error { return w.publishDead(ctx, b.dead) })
		if err != nil {
			return err
		}
	}

	// Stored: acknowledge the batch with its highest stream sequence.
	// Every message of the consumer below it was delivered in this or an
	// earlier batch, all stored (the batches before this one were
	// acknowledged in order). A lost ack means redeliveries, which the
	// store de-duplicates, so a fire-and-forget Ack is enough.
	b.stopKeepAlive()
	if err := b.top.Ack(); err != nil {
		w.log.Warn("ack failed; the batch will be redelivered", "stream_seq", b.topSeq, "err", err)
	}
	b.stored.addTo(w.m.stored)
	b.dlq.addTo(w.m.deadLettered)
	return nil
}

// store inserts b's rows, retrying until they are stored or ctx is done.
// When ClickHouse rejects the batch for its data (an exception other than a
// busy or unreachable server's) rejectAfter times in a row, store isolates
// the rows it rejects on their own: they become dead letters of b with the
// server's reason, and the rest is stored. A batch whose every row is
// rejected is a fault of the table or the server: it is retried, with an
// ERROR line each time, and nothing is dead-lettered.
func (w *Worker) store(ctx context.Context, b *batch) error {
	rejections := 0
	return w.retry(ctx, "insert", func() error {
		start := time.Now()
		err := w.insert(ctx, b.rows)
		if err == nil {
			w.m.insertSecs.Observe(time.Since(start).Seconds())
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		w.m.insertErrs.Inc()
		if _, ok := rejection(err); !ok {
			rejections = 0
			return err
		}
		if rejections++; rejections < rejectAfter {
			return err
		}
		bad, err := w.isolate(ctx, b.rows)
		if errors.Is(err, errSystemic) || (err == nil && len(bad) == len(b.rows) && len(b.rows) > 1) {
			w.log.Error("ClickHouse rejects every part of the batch: the fault is in the table or the server, not in the rows; retrying",
				"rows", len(b.rows), "err", err)
			return fmt.Errorf("every part of the batch rejected: %w", errSystemic)
		}
		if err != nil {
			return err
		}
		w.reject(b, bad)
		return nil
	})
}

// reject turns b's rows at the indexes of bad into dead letters with the
// server's reason, and takes them out of b's stored tally.
func (w *Worker) reject(b *batch, bad map[int]error) {
	for i, err := range bad {
		r := b.rows[i]
		key := labelKey{r.Tenant, r.Type}
		b.stored[key]--
		b.dlq[key]++
		b.dead = append(b.dead, deadLetter{subject: b.subjects[i], data: r.Payload, seq: r.StreamSeq,
			err: fmt.Errorf("clickhouse rejected the row: %w", err), key: key})
		w.m.rejected.Inc()
		w.log.Error("ClickHouse rejects a row; dead-lettered", "tenant", r.Tenant, "source", r.Source,
			"event_id", r.EventID, "stream_seq", r.StreamSeq, "err", err)
	}
}

// insert stores rows as cfg.InsertWriters concurrent INSERTs of equal
// shares, or as one when there are fewer than minShareRows rows per share.
// A failed share fails the whole: the retry inserts every row again, which
// the store de-duplicates.
func (w *Worker) insert(ctx context.Context, rows []store.RawEvent) error {
	n := min(w.cfg.InsertWriters, len(rows)/w.minShare)
	if n <= 1 {
		return w.st.InsertEvents(ctx, rows)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		share := rows[i*len(rows)/n : (i+1)*len(rows)/n]
		wg.Go(func() { errs[i] = w.st.InsertEvents(ctx, share) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// minShareRows is the fewest rows Worker.insert sends in one INSERT of a
// batch split between writers.
const minShareRows = 10000

// publishDead publishes refused messages to CF_DLQ with their original
// bytes and the reason, and waits until the stream has every one of them
// (bus.PublishMsgs: each attempt bounded, what is not acknowledged sent
// again under the same Nats-Msg-Id).
func (w *Worker) publishDead(ctx context.Context, dead []deadLetter) error {
	msgs := make([]*nats.Msg, len(dead))
	for i, d := range dead {
		msgs[i] = bus.DeadLetter(d.subject, d.seq, d.data, reason(d.err))
	}
	if err := bus.PublishMsgs(ctx, w.js, msgs, bus.PublishOptions{Logger: w.log}); err != nil {
		return fmt.Errorf("dead-letter: %w", err)
	}
	return nil
}

// retry calls op until it succeeds or ctx is done, backing off
// exponentially between attempts.
func (w *Worker) retry(ctx context.Context, what string, op func() error) error {
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil {
			if attempt > 1 {
				w.log.Info(what+" succeeded after retries", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.log.Warn(what+" failed; retrying without acking", "err", err, "attempt", attempt)
		if !w.sleep(ctx, attempt) {
			return ctx.Err()
		}
	}
}

// sleep waits the backoff for the given attempt (1-based); false if ctx
// ended first.
func (w *Worker) sleep(ctx context.Context, attempt int) bool {
	p := retry.Policy{Initial: w.cfg.MinBackoff, Max: w.cfg.MaxBackoff, Jitter: 0.5}
	return retry.Sleep(ctx, p.Delay(attempt)) == nil
}

// abandon gives back a batch that was not stored.
func (w *Worker) abandon(log *slog.Logger, b *batch, cause error) {
	b.stopKeepAlive()
	// Nak fails if the connection is gone; the server then redelivers
	// after AckWait.
	nc := w.js.Conn()
	failed := 0
	for _, reply := range b.replies {
		if err := nc.Publish(reply, ackNak); err != nil {
			failed++
		}
	}
	log.Warn("abandoned batch; negatively acknowledged for redelivery",
		"messages", len(b.replies), "nak_failed", failed, "cause", cause)
}

// The bodies of a negative acknowledgement and of a work-in-progress
// signal, sent to a message's reply subject, as jetstream.Msg's Nak and
// InProgress send them.
var (
	ackNak      = []byte("-NAK")
	ackProgress = []byte("+WPI")
)

// keepAlive tells the server every interval, on nc, that the messages of
// replies (their reply subjects) are still being worked on, so that a
// slow or retried insert does not exceed AckWait. The returned stop
// function may be called more than once.
func keepAlive(nc *nats.Conn, replies []string, interval time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, reply := range replies {
					_ = nc.Publish(reply, ackProgress)
				}
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() { close(done); wg.Wait() })
	}
}

// reason returns the dead-letter reason for a parse error. Parse errors
// name their field, or "body" for JSON that does not parse.
func reason(err error) string { return err.Error() }

// invalidLabels picks metric labels for an invalid message: its tenant if
// it reads as a valid token, else "unknown"; its type if it is a known
// type, else "invalid". This keeps label cardinality bounded.
func invalidLabels(data []byte) labelKey {
	var head struct {
		Tenant string `json:"tenant"`
		Type   string `json:"type"`
	}
	k := labelKey{"unknown", "invalid"}
	if json.Unmarshal(data, &head) != nil {
		return k
	}
	if event.ValidToken(head.Tenant) {
		k.tenant = head.Tenant
	}
	if event.NewPayload(event.Type(head.Type)) != nil {
		k.typ = head.Type
	}
	return k
}
