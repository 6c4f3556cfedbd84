// Package gen generates a realistic, reproducible book of business as
// canonical input events: reps in teams, accounts with buying groups, and
// opportunities that climb the commitment ladder with drop-offs, stalls,
// missed commitments, wins, losses and post-sale kickoffs.
//
// Generation streams: one opportunity is simulated at a time and emitted
// before the next, so memory stays flat however many are asked for. The
// same Config always yields the same events, byte for byte.
package gen

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// Config says what to generate.
type Config struct {
	// Seed makes the output reproducible: the same Config gives the same
	// events, byte for byte.
	Seed int64
	// Opportunities is how many opportunities to simulate, over all tenants.
	Opportunities int
	// Tenant names the tenant; with Tenants > 1 the tenants are named
	// Tenant-1 .. Tenant-N. Empty means "demo".
	Tenant string
	// Tenants is the number of tenants; 0 means 1.
	Tenants int
	// End is when the data ends; it spans about a year before End. The zero
	// value means the start of today (UTC), which is not reproducible from
	// one day to the next.
	End time.Time
	// DuplicateRate is the share of events emitted twice (same id, same
	// bytes), the copy a little later in the stream.
	DuplicateRate float64
	// LateRate is the share of events emitted out of order: held back for
	// up to a few thousand events, with received_at days after occurred_at.
	LateRate float64
}

// Tuning of the emitted stream.
const (
	// maxLateDelay is how many events a late event is held back at most.
	maxLateDelay = 2000
	// maxDupDelay is how many events a duplicate follows its original by at
	// most.
	maxDupDelay = 50
	// maxPending bounds the events held back; when it is reached the one
	// due first is released early.
	maxPending = 4096
)

// TenantNames returns the tenant names cfg generates, in order.
func TenantNames(cfg Config) []string {
	base := cfg.Tenant
	if base == "" {
		base = "demo"
	}
	if cfg.Tenants <= 1 {
		return []string{base}
	}
	names := make([]string, cfg.Tenants)
	for i := range names {
		names[i] = base + "-" + strconv.Itoa(i+1)
	}
	return names
}

func (cfg *Config) check() error {
	switch {
	case cfg.Opportunities < 0:
		return fmt.Errorf("opportunities must be >= 0, got %d", cfg.Opportunities)
	case cfg.Tenants < 0 || cfg.Tenants > 256:
		return fmt.Errorf("tenants must be between 0 and 256, got %d", cfg.Tenants)
	case !(cfg.DuplicateRate >= 0 && cfg.DuplicateRate <= 1):
		return fmt.Errorf("duplicate rate must be between 0 and 1, got %v", cfg.DuplicateRate)
	case !(cfg.LateRate >= 0 && cfg.LateRate <= 1):
		return fmt.Errorf("late rate must be between 0 and 1, got %v", cfg.LateRate)
	}
	for _, name := range TenantNames(*cfg) {
		if !event.ValidToken(name) {
			return fmt.Errorf("tenant %q: must be lower-case letters, digits, - and _ (at most 64)", name)
		}
	}
	if y := cfg.End.Year(); !cfg.End.IsZero() && (y < 1973 || y > 2100) {
		return fmt.Errorf("end %s is out of range (1973..2100)", cfg.End.Format(time.DateOnly))
	}
	return nil
}

// generator holds the state of one Generate call.
type generator struct {
	cfg        Config
	key        uint64
	start, end time.Time
	tenants    []*tenant
	nAccounts  uint64 // per tenant
	steps      *[numSteps]stepDef

	pcg      *rand.PCG
	rand     *rand.Rand
	acctPCG  *rand.PCG
	acctRand *rand.Rand
	acct     account
	buf      []event.Event // the current opportunity's events
}

func newGenerator(cfg Config) (*generator, error) {
	if err := cfg.check(); err != nil {
		return nil, fmt.Errorf("gen: %w", err)
	}
	if cfg.End.IsZero() {
		cfg.End = time.Now().UTC().Truncate(24 * time.Hour)
	}
	g := &generator{
		cfg:   cfg,
		key:   mix(uint64(cfg.Seed) ^ 0x636f6d6d6974666c),
		end:   cfg.End.UTC(),
		steps: stepDefs(),
	}
	g.start = g.end.AddDate(-1, 0, 0)
	g.pcg = rand.NewPCG(0, 0)
	g.rand = rand.New(g.pcg)
	g.acctPCG = rand.NewPCG(0, 0)
	g.acctRand = rand.New(g.acctPCG)
	names := TenantNames(cfg)
	perTenant := cfg.Opportunities/len(names) + 1
	nReps := min(240, max(6, perTenant/25))
	for i, name := range names {
		g.tenants = append(g.tenants, newTenant(g.key, i, name, nReps))
	}
	// About three opportunities per account over the year, so accounts
	// come back with a second deal.
	g.nAccounts = uint64(max(50, perTenant/3))
	return g, nil
}

// opportunity simulates opportunity idx into g.buf, sorted by time.
func (g *generator) opportunity(idx int) {
	clear(g.buf)
	g.buf = g.buf[:0]
	g.pcg.Seed(g.key^nsDeal, uint64(idx))
	r := g.rand
	t := g.tenants[idx%len(g.tenants)]
	seg := segSMB
	switch x := r.Float64(); {
	case x < 0.2:
		seg = segEnt
	case x < 0.55:
		seg = segMid
	}
	// An account of the segment: account j has segment accountSegment(j).
	j := r.Uint64N(g.nAccounts/10+1) * 10
	switch seg {
	case segSMB:
		j += r.Uint64N(5)
	case segMid:
		j += 5 + r.Uint64N(3)
	default:
		j += 8 + r.Uint64N(2)
	}
	g.fillAccount(&g.acct, t, j)
	reps := t.bySegment[seg]
	d := deal{
		g:      g,
		r:      r,
		idx:    uint64(idx),
		t:      t,
		crm:    srcSalesforce,
		seg:    seg,
		rep:    reps[r.IntN(len(reps))],
		acct:   &g.acct,
		single: r.Float64() < 0.22,
	}
	oppKey := mix(g.key ^ nsOpp ^ uint64(idx))
	if r.Float64() < 0.2 {
		d.crm = srcHubSpot
		d.oppID = numID(oppKey)
	} else {
		d.oppID = sfID("006", oppKey)
	}
	d.amount = dealAmount(r, seg)
	d.engaged = 1
	if !d.single && r.Float64() < 0.4 {
		d.engaged = 2
	}
	d.run()
	slices.SortStableFunc(g.buf, func(a, b event.Event) int { return a.OccurredAt.Compare(b.OccurredAt) })
}

// Generate simulates cfg.Opportunities opportunities and calls emit with
// each event: by opportunity, roughly chronological within one, with the
// duplicates and late events cfg asks for. It stops at the first error from
// emit or when ctx is done.
func Generate(ctx context.Context, cfg Config, emit func(event.Event) error) error {
	g, err := newGenerator(cfg)
	if err != nil {
		return err
	}
	out := newEmitter(g.key, cfg.DuplicateRate, cfg.LateRate, emit)
	for i := range cfg.Opportunities {
		if i&63 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		g.opportunity(i)
		for k := range g.buf {
			if err := out.push(g.buf[k]); err != nil {
				return err
			}
		}
	}
	return out.flush()
}

// GenerateToWriter writes the events of Generate to w as NDJSON, one
// event.Marshal encoding per line, and returns how many it wrote. Events are
// encoded in batches on all CPUs and written in order, in chunks of a few
// hundred kilobytes.
func GenerateToWriter(ctx context.Context, cfg Config, w io.Writer) (n int, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := max(1, runtime.GOMAXPROCS(0))
	type batch struct {
		evs  []event.Event
		buf  []byte
		err  error
		done chan struct{}
	}
	todo := make(chan *batch, workers)
	ordered := make(chan *batch, 2*workers)
	free := make(chan *batch, 4*workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range todo {
				b.buf, b.err = encode(b.buf, b.evs)
				close(b.done)
			}
		}()
	}
	written := make(chan error, 1)
	go func() {
		var err error
		for b := range ordered {
			<-b.done
			if err != nil {
				continue
			}
			err = b.err
			if err == nil {
				if _, werr := w.Write(b.buf); werr != nil {
					err = fmt.Errorf("gen: write: %w", werr)
				}
			}
			if err != nil {
				cancel(err)
				continue
			}
			n += len(b.evs)
			select {
			case free <- b: // reuse its slices
			default:
			}
		}
		written <- err
	}()

	const batchSize = 1024
	next := func() *batch {
		select {
		case b := <-free:
			clear(b.evs)
			b.evs, b.buf, b.err, b.done = b.evs[:0], b.buf[:0], nil, make(chan struct{})
			return b
		default:
			return &batch{evs: make([]event.Event, 0, batchSize), done: make(chan struct{})}
		}
	}
	cur := next()
	submit := func() error {
		select {
		case ordered <- cur:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		todo <- cur // workers drain todo until it is closed
		cur = next()
		return nil
	}
	err = Generate(ctx, cfg, func(ev event.Event) error {
		cur.evs = append(cur.evs, ev)
		if len(cur.evs) == batchSize {
			return submit()
		}
		return nil
	})
	if err == nil && len(cur.evs) > 0 {
		err = submit()
	}
	close(todo)
	close(ordered)
	wg.Wait()
	if werr := <-written; werr != nil {
		err = werr
	}
	return n, err
}

// encode appends the NDJSON encoding of evs to b.
func encode(b []byte, evs []event.Event) ([]byte, error) {
	for i := range evs {
		line, err := event.Marshal(evs[i])
		if err != nil {
			return b, fmt.Errorf("gen: encode event %s: %w", evs[i].ID, err)
		}
		b = append(b, line...)
		b = append(b, '\n')
	}
	return b, nil
}

// pending is an event held back until the stream reaches position at.
type pending struct {
	at, order uint64
	ev        event.Event
}

// emitter adds duplicates and late arrivals to the stream, holding back at
// most maxPending events.
type emitter struct {
	emit      func(event.Event) error
	r         *rand.Rand
	dup, late float64
	pos       uint64 // events emitted so far
	order     uint64 // events held back so far
	held      []pending
}

func newEmitter(key uint64, dup, late float64, emit func(event.Event) error) *emitter {
	return &emitter{emit: emit, r: rand.New(rand.NewPCG(key^nsEmit, 1)), dup: dup, late: late}
}

// push emits ev now, or holds it back if it is picked to arrive late, and
// may schedule a duplicate; first it releases what has come due.
func (e *emitter) push(ev event.Event) error {
	for len(e.held) > 0 && e.held[0].at <= e.pos {
		if err := e.out(e.pop()); err != nil {
			return err
		}
	}
	late := e.late > 0 && e.r.Float64() < e.late
	if late {
		ev.ReceivedAt = ev.OccurredAt.Add(24*time.Hour + time.Duration(e.r.Int64N(int64(9*24*time.Hour))))
		ev.ReceivedAt = ev.ReceivedAt.Truncate(time.Second)
	}
	dup := e.dup > 0 && e.r.Float64() < e.dup
	if late {
		e.hold(ev, 1+e.r.Uint64N(maxLateDelay))
	} else if err := e.out(ev); err != nil {
		return err
	}
	if dup {
		e.hold(ev, 1+e.r.Uint64N(maxDupDelay))
	}
	for len(e.held) > maxPending {
		if err := e.out(e.pop()); err != nil {
			return err
		}
	}
	return nil
}

func (e *emitter) out(ev event.Event) error {
	e.pos++
	return e.emit(ev)
}

// flush emits everything still held back, in order.
func (e *emitter) flush() error {
	for len(e.held) > 0 {
		if err := e.out(e.pop()); err != nil {
			return err
		}
	}
	return nil
}

func (e *emitter) less(i, j int) bool {
	a, b := &e.held[i], &e.held[j]
	return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.order, b.order)) < 0
}

// hold puts ev on the min-heap of held events, due delay events from now.
func (e *emitter) hold(ev event.Event, delay uint64) {
	e.order++
	e.held = append(e.held, pending{at: e.pos + delay, order: e.order, ev: ev})
	for i := len(e.held) - 1; i > 0; {
		p := (i - 1) / 2
		if !e.less(i, p) {
			break
		}
		e.held[i], e.held[p] = e.held[p], e.held[i]
		i = p
	}
}

// pop removes and returns the held event due first.
func (e *emitter) pop() event.Event {
	ev := e.held[0].ev
	last := len(e.held) - 1
	e.held[0] = e.held[last]
	e.held[last] = pending{}
	e.held = e.held[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < last && e.less(l, m) {
			m = l
		}
		if l+1 < last && e.less(l+1, m) {
			m = l + 1
		}
		if m == i {
			break
		}
		e.held[i], e.held[m] = e.held[m], e.held[i]
		i = m
	}
	return ev
}
