package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/dlq"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/store"
)

// verifyReport is what commitflow verify finds.
type verifyReport struct {
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
	MissingRanges []seqRange `json:"missing_ranges"`
	// SharedIDs counts the source event ids stored under more than one
	// opportunity of a tenant (both copies stored and derived: the store
	// cannot tell which is right); SharedIDSamples lists the first of them.
	SharedIDs       uint64                `json:"shared_ids"`
	SharedIDSamples []store.SharedEventID `json:"shared_id_samples,omitempty"`
}

// seqRange is an inclusive range of stream sequences and how many messages
// of the stream it holds.
type seqRange struct {
	From     uint64 `json:"from"`
	To       uint64 `json:"to"`
	Messages uint64 `json:"messages"`
}

// defaultVerifyChunk is how many stream messages verify holds and checks
// against ClickHouse at a time.
const defaultVerifyChunk = 50_000

// cmdVerify checks, for every message of CF_EVENTS in a range of stream
// sequences, that its event is in ClickHouse (events FINAL, by key) or that
// the message is dead-lettered in CF_DLQ, and prints the ranges of those
// that are neither. It fails when any message is missing. It changes
// nothing.
func cmdVerify(ctx context.Context, args []string, stdout io.Writer) error {
	s := newSetup("verify", stdout, "").withRun(true)
	fs := s.fs
	from := fs.Uint64("from", 0, "first CF_EVENTS stream sequence to check; 0: the stream's first")
	to := fs.Uint64("to", 0, "last CF_EVENTS stream sequence to check; 0: the ingest consumer's acknowledgement floor (what ingest says it has stored), or the stream's last without an ingest consumer")
	chunk := fs.Int("chunk", defaultVerifyChunk, "messages checked against ClickHouse at a time (bounds memory)")
	format := fs.String("format", "table", "output format: table or json")
	if err := s.parse(ctx, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("verify: unexpected argument %q", fs.Arg(0))
	case *format != "table" && *format != "json":
		return fmt.Errorf("verify: --format: want table or json, got %q", *format)
	case *chunk < 1:
		return fmt.Errorf("verify: --chunk %d: want at least 1", *chunk)
	case *to > 0 && *from > *to:
		return fmt.Errorf("verify: --from %d is after --to %d", *from, *to)
	}
	chDSN, err := s.clickHouseDSN()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer s.close()
	_, js, err := s.connectRun(ctx)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	st, err := store.Open(ctx, chDSN, store.Options{})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer st.Close()

	rep, err := verify(ctx, js, st.Conn(), *from, *to, *chunk)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if rep.SharedIDs, rep.SharedIDSamples, err = st.SharedEventIDs(ctx, sharedIDSamples); err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if *format == "json" {
		if err := writeJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printVerify(stdout, rep)
	}
	switch {
	case rep.Missing > 0:
		return fmt.Errorf("verify: %d messages of %s are neither stored nor dead-lettered", rep.Missing, bus.EventsStream)
	case rep.SharedIDs > 0:
		return fmt.Errorf("verify: %d event ids are stored under more than one opportunity", rep.SharedIDs)
	}
	return nil
}

// sharedIDSamples is how many shared event ids verify lists.
const sharedIDSamples = 20

// verify checks the CF_EVENTS messages from..to (0: the defaults of
// cmdVerify) against the events table of conn and CF_DLQ, chunk messages at
// a time. Memory holds one chunk's event keys and the CF_EVENTS sequences
// of the dead letters in the range (8 bytes each).
func verify(ctx context.Context, js jetstream.JetStream, conn driver.Conn, from, to uint64, chunk int) (verifyReport, error) {
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		return verifyReport{}, err
	}
	state := s.CachedInfo().State
	rep := verifyReport{LastSeq: state.LastSeq, From: max(from, state.FirstSeq, 1), To: to}
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

	chk := &verifyChunk{dead: dead}
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

// verifyChunk is the messages verify has read and not yet checked.
type verifyChunk struct {
	msgs []verifyMsg
	dead map[uint64]bool // CF_EVENTS sequences dead-lettered
	last uint64          // the last sequence read
	// inRange tells whether the last message checked was missing: the
	// next missing one then extends the last range.
	inRange bool
}

// verifyMsg is one CF_EVENTS message: its sequence and, if its body is an
// event, the event's key.
type verifyMsg struct {
	seq uint64
	key eventKey
	ok  bool // the body parsed as an event
}

// eventKey is the key of a row of the events table.
type eventKey struct{ tenant, opportunity, source, id string }

func (c *verifyChunk) add(seq uint64, data []byte) {
	m := verifyMsg{seq: seq}
	if ev, err := event.Parse(data); err == nil {
		m.key, m.ok = eventKey{ev.Tenant, ev.OpportunityID, ev.Source, ev.ID}, true
	}
	c.msgs = append(c.msgs, m)
}

// check looks up the chunk's keys in ClickHouse, adds the outcome to rep
// and empties the chunk.
func (c *verifyChunk) check(ctx context.Context, conn driver.Conn, rep *verifyReport) error {
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
				rep.MissingRanges = append(rep.MissingRanges, seqRange{From: m.seq, To: m.seq, Messages: 1})
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
func storedKeys(ctx context.Context, conn driver.Conn, msgs []verifyMsg) (map[eventKey]bool, error) {
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

// printVerify writes rep as text.
func printVerify(w io.Writer, rep verifyReport) {
	defer printShared(w, rep)
	if rep.To < rep.From || rep.Messages == 0 {
		fmt.Fprintf(w, "%s: nothing to check (stream last sequence %d, ingest acknowledged up to %d)\n", bus.EventsStream, rep.LastSeq, rep.AckFloor)
		return
	}
	fmt.Fprintf(w, "%s %d..%d: %d messages, %d stored, %d dead-lettered, %d missing\n",
		bus.EventsStream, rep.From, rep.To, rep.Messages, rep.Stored, rep.DeadLettered, rep.Missing)
	if rep.To < rep.LastSeq {
		fmt.Fprintf(w, "not checked: %d..%d (after --to; ingest acknowledged up to %d)\n", rep.To+1, rep.LastSeq, rep.AckFloor)
	}
	if rep.Missing == 0 {
		return
	}
	fmt.Fprintf(w, "missing (neither in ClickHouse events nor in %s), %d range(s):\n", bus.DLQStream, len(rep.MissingRanges))
	for _, r := range rep.MissingRanges {
		switch {
		case r.From == r.To:
			fmt.Fprintf(w, "  %d\t1 message\n", r.From)
		default:
			fmt.Fprintf(w, "  %d-%d\t%d messages\n", r.From, r.To, r.Messages)
		}
	}
}

// printShared prints the event ids stored under more than one opportunity.
func printShared(w io.Writer, rep verifyReport) {
	if rep.SharedIDs == 0 {
		return
	}
	fmt.Fprintf(w, "%d event id(s) stored under more than one opportunity (both copies stored and derived; fix the producer, then remove the wrong copy):\n", rep.SharedIDs)
	for _, id := range rep.SharedIDSamples {
		fmt.Fprintf(w, "  %s:%s:%s\t%s\n", id.Tenant, id.Source, id.EventID, strings.Join(id.Opportunities, ", "))
	}
	if n := uint64(len(rep.SharedIDSamples)); n < rep.SharedIDs {
		fmt.Fprintf(w, "  … and %d more\n", rep.SharedIDs-n)
	}
}
