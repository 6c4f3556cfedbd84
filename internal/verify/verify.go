// Package verify checks that every message of the CF_EVENTS stream in a
// range of sequences is stored in ClickHouse or dead-lettered in CF_DLQ,
// and finds the source event ids stored under more than one opportunity.
// It changes nothing.
package verify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/dlq"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/store"
)

// Report is what Run finds.
type Report struct {
	// From and To are the CF_EVENTS stream sequences checked, inclusive;
	// To < From when there was nothing to check.
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
	// AckFloor is the ingest consumer's acknowledgement floor, the default
	// of To (0 without an ingest consumer).
	AckFloor uint64 `json:"ingest_ack_floor"`
	// LastSeq is the stream's last sequence: the messages after To were not
	// checked.
	LastSeq uint64 `json:"stream_last_seq"`
	// Messages were read from the stream; each is stored, dead-lettered
	// or missing.
	Messages     uint64 `json:"messages"`
	Stored       uint64 `json:"stored"`
	DeadLettered uint64 `json:"dead_lettered"`
	Missing      uint64 `json:"missing"`
	// MissingRanges are the missing messages as ranges of stream
	// sequences: a range runs on while the messages read are missing, so
	// it may span sequences the stream no longer holds.
	MissingRanges []SeqRange `json:"missing_ranges"`
	// SharedIDs counts the source event ids stored under more than one
	// opportunity of a tenant (both copies stored and derived: the store
	// cannot tell which is right); SharedIDSamples lists the first of them.
	SharedIDs       uint64                `json:"shared_ids"`
	SharedIDSamples []store.SharedEventID `json:"shared_id_samples,omitempty"`
}

// SeqRange is an inclusive range of stream sequences and how many messages
// of the stream it holds.
type SeqRange struct {
	From     uint64 `json:"from"`
	To       uint64 `json:"to"`
	Messages uint64 `json:"messages"`
}

// DefaultChunk is how many stream messages Run holds and checks against
// ClickHouse at a time by default.
const DefaultChunk = 50_000

// Options are what Run checks.
type Options struct {
	// From and To are the first and last CF_EVENTS stream sequences to
	// check. From 0 is the stream's first; To 0 is the ingest consumer's
	// acknowledgement floor (what ingest says it has stored), or the
	// stream's last without an ingest consumer.
	From, To uint64
	// Chunk is how many messages are checked against ClickHouse at a time
	// (0: DefaultChunk). Memory holds one chunk's event keys and the
	// CF_EVENTS sequences of the dead letters in the range (8 bytes each).
	Chunk int
	// SharedSamples is how many of the event ids stored under more than
	// one opportunity Report.SharedIDSamples lists.
	SharedSamples int
}

// Run checks, for every message of CF_EVENTS from o.From to o.To, that
// its event is in st's events table (events FINAL, by key) or that the
// message is dead-lettered in CF_DLQ, and counts the event ids st holds
// under more than one opportunity.
func Run(ctx context.Context, js jetstream.JetStream, st *store.Store, o Options) (Report, error) {
	if o.Chunk == 0 {
		o.Chunk = DefaultChunk
	}
	if o.Chunk < 0 || o.To > 0 && o.From > o.To {
		return Report{}, fmt.Errorf("range %d..%d with chunk %d: want From <= To and a chunk of at least 1", o.From, o.To, o.Chunk)
	}
	rep, err := stream(ctx, js, st.Conn(), o.From, o.To, o.Chunk)
	if err != nil {
		return rep, err
	}
	if rep.SharedIDs, rep.SharedIDSamples, err = st.SharedEventIDs(ctx, o.SharedSamples); err != nil {
		return rep, err
	}
	return rep, nil
}

// stream checks the CF_EVENTS messages from..to (0: the defaults of
// Options) against the events table of conn and CF_DLQ, chunk messages at
// a time.
func stream(ctx context.Context, js jetstream.JetStream, conn driver.Conn, from, to uint64, chunk int) (Report, error) {
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return Report{}, err
	}
	state := s.CachedInfo().State
	rep := Report{LastSeq: state.LastSeq, From: max(from, state.FirstSeq, 1), To: to}
	c, err := bus.CurrentIngest(ctx, js)
	switch {
	case err == nil:
		info, err := c.Info(ctx)
		if err != nil {
			return rep, fmt.Errorf("ingest consumer: %w", err)
		}
		rep.AckFloor = info.AckFloor.Stream
		if to == 0 {
			rep.To = rep.AckFloor
		}
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if to == 0 {
			rep.To = state.LastSeq
		}
	default:
		return rep, err
	}
	rep.To = min(rep.To, state.LastSeq)
	if rep.To < rep.From || state.Msgs == 0 {
		return rep, nil
	}

	dead := map[uint64]bool{}
	err = dlq.Scan(ctx, js, dlq.Filter{}, 0, func(l dlq.Letter) error {
		if l.EventsSeq >= rep.From && l.EventsSeq <= rep.To {
			dead[l.EventsSeq] = true
		}
		return nil
	})
	if err != nil {
		return rep, err
	}

	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   rep.From,
	})
	if err != nil {
		return rep, fmt.Errorf("read %s: %w", bus.EventsStream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(chunk, 1000)))
	if err != nil {
		return rep, fmt.Errorf("read %s: %w", bus.EventsStream, err)
	}
	defer it.Stop()

	chk := &batch{dead: dead}
	for done := false; !done; {
		// The timeout only bounds a stream that lost its tail meanwhile
		// (age limit, purge): the pending count ends a normal read.
		nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		m, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil {
			return rep, fmt.Errorf("read %s after sequence %d: %w", bus.EventsStream, chk.last, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return rep, fmt.Errorf("read %s: %w", bus.EventsStream, err)
		}
		seq := md.Sequence.Stream
		if seq > rep.To {
			break
		}
		chk.add(seq, m.Data())
		chk.last = seq
		done = seq >= rep.To || md.NumPending == 0
		if len(chk.msgs) >= chunk || done {
			if err := chk.check(ctx, conn, &rep); err != nil {
				return rep, err
			}
		}
	}
	return rep, chk.check(ctx, conn, &rep)
}

// batch is the messages stream has read and not yet checked.
type batch struct {
	msgs []message
	dead map[uint64]bool // CF_EVENTS sequences dead-lettered
	last uint64          // the last sequence read
	// inRange tells whether the last message checked was missing: the
	// next missing one then extends the last range.
	inRange bool
}

// message is one CF_EVENTS message: its sequence and, if its body is an
// event, the event's key.
type message struct {
	seq uint64
	key eventKey
	ok  bool // the body parsed as an event
}

// eventKey is the key of a row of the events table.
type eventKey struct{ tenant, opportunity, source, id string }

func (c *batch) add(seq uint64, data []byte) {
	m := message{seq: seq}
	if ev, err := event.Parse(data); err == nil {
		m.key, m.ok = eventKey{ev.Tenant, ev.OpportunityID, ev.Source, ev.ID}, true
	}
	c.msgs = append(c.msgs, m)
}

// check looks up the chunk's keys in ClickHouse, adds the outcome to rep
// and empties the chunk.
func (c *batch) check(ctx context.Context, conn driver.Conn, rep *Report) error {
	if len(c.msgs) == 0 {
		return nil
	}
	stored, err := storedKeys(ctx, conn, c.msgs)
	if err != nil {
		return err
	}
	for _, m := range c.msgs {
		rep.Messages++
		switch {
		case m.ok && stored[m.key]:
			rep.Stored++
		case c.dead[m.seq]:
			rep.DeadLettered++
		default:
			rep.Missing++
			if n := len(rep.MissingRanges); c.inRange && n > 0 {
				rep.MissingRanges[n-1].To = m.seq
				rep.MissingRanges[n-1].Messages++
			} else {
				rep.MissingRanges = append(rep.MissingRanges, SeqRange{From: m.seq, To: m.seq, Messages: 1})
			}
			c.inRange = true
			continue
		}
		c.inRange = false
	}
	c.msgs = c.msgs[:0]
	return nil
}

// storedKeys returns which keys of msgs are in the events table, reading
// events FINAL by tenant and opportunity, 2000 opportunities per query.
func storedKeys(ctx context.Context, conn driver.Conn, msgs []message) (map[eventKey]bool, error) {
	opps := map[string][]string{} // tenant -> opportunity ids
	for _, m := range msgs {
		if m.ok {
			opps[m.key.tenant] = append(opps[m.key.tenant], m.key.opportunity)
		}
	}
	stored := make(map[eventKey]bool, len(msgs))
	for tenant, ids := range opps {
		slices.Sort(ids)
		ids = slices.Compact(ids)
		for start := 0; start < len(ids); start += 2000 {
			set := clickhouse.GroupSet{}
			for _, id := range ids[start:min(start+2000, len(ids))] {
				set.Value = append(set.Value, id)
			}
			rows, err := conn.Query(ctx, `SELECT opportunity_id, source, event_id FROM events FINAL
WHERE tenant = ? AND opportunity_id IN ?`, tenant, set)
			if err != nil {
				return nil, fmt.Errorf("read events of %q: %w", tenant, err)
			}
			for rows.Next() {
				k := eventKey{tenant: tenant}
				if err := rows.Scan(&k.opportunity, &k.source, &k.id); err != nil {
					rows.Close()
					return nil, fmt.Errorf("read events of %q: %w", tenant, err)
				}
				stored[k] = true
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return nil, fmt.Errorf("read events of %q: %w", tenant, err)
			}
		}
	}
	return stored, nil
}
