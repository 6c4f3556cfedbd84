package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/nats-io/nats.go/jetstream"
)

// withFresh returns the conflicts of cs that involve one of the copies of
// fresh: a conflict between two stored copies was found when the later of
// them was fresh.
func withFresh(cs []derive.Conflict, fresh []derive.Copy) []derive.Conflict {
	var out []derive.Conflict
	for _, c := range cs {
		for _, f := range fresh {
			if f.Seq == c.Winner.Seq || f.Seq == c.Loser.Seq {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// report makes conflicting duplicates visible: each is logged as an error,
// its losing copy is dead-lettered to CF_DLQ with the reason (under the
// message id "dlq:<its stream sequence>", as the ingest worker's dead
// letters, so that a redelivered batch does not publish it twice within
// the duplicate window), and counted. The losing copy's body is the
// original message when it is one of msgs, else its event encoded again
// (the cached or stored copy it was parsed from is not kept). The store
// and derivation already follow the winner.
func (d *Deriver) report(ctx context.Context, conflicts []derive.Conflict, msgs []jetstream.Msg) error {
	for _, c := range conflicts {
		w, l := c.Winner, c.Loser
		d.log.Error("conflicting duplicate: the copy with the higher stream sequence wins; the other is dead-lettered",
			"tenant", l.Event.Tenant, "opportunity_id", l.Event.OpportunityID, "source", l.Event.Source, "event_id", l.Event.ID,
			"winner_stream_seq", w.Seq, "loser_stream_seq", l.Seq, "differs_in", strings.Join(c.Fields, ", "))
		subject := bus.Subject(l.Event, d.partitions)
		body := messageData(msgs, l.Seq)
		if body == nil {
			var err error
			if body, err = event.Marshal(l.Event); err != nil {
				return fmt.Errorf("dead-letter conflicting duplicate seq %d: %w", l.Seq, err)
			}
		}
		m := bus.DeadLetter(subject, l.Seq, body, conflictReason(c))
		if _, err := d.js.PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("dead-letter conflicting duplicate seq %d: %w", l.Seq, err)
		}
		d.m.conflicts.Inc()
	}
	return nil
}

// conflictReason is the dead-letter reason of c's losing copy.
func conflictReason(c derive.Conflict) string {
	e := c.Loser.Event
	return fmt.Sprintf("conflicting duplicate of %s:%s:%s: superseded by stream seq %d (differs in: %s)",
		e.Tenant, e.Source, e.ID, c.Winner.Seq, strings.Join(c.Fields, ", "))
}

// messageData returns the body of the message of msgs with stream
// sequence seq, or nil if there is none.
func messageData(msgs []jetstream.Msg, seq uint64) []byte {
	for _, m := range msgs {
		if md, err := m.Metadata(); err == nil && md.Sequence.Stream == seq {
			return m.Data()
		}
	}
	return nil
}
