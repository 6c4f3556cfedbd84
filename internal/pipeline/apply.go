// Package pipeline runs derivation against the infrastructure: live, as
// partitioned JetStream consumers sharing the work between processes, and as
// a replay over the stored raw events. Both write through the same path: the
// derived set of an opportunity is recomputed from its whole history and only
// the difference to what is stored is written (new or changed events, and
// retractions of events history no longer supports), so the outcome does not
// depend on arrival order, redelivery or which process did the work.
package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/nats-io/nats.go/jetstream"
)

// writer derives opportunities and writes the changes to ClickHouse and,
// when js is set, to the CF_DERIVED stream.
type writer struct {
	st      *store.Store
	js      jetstream.JetStream // nil: do not publish
	ladders ladder.Source       // each tenant's ladder
	log     *slog.Logger
	m       *metrics
	// allStates writes every opportunity's state, changed or not (replay:
	// so that states are complete after a schema or ladder change).
	allStates bool
	// states and derived insert the rows of concurrent applies together.
	states  coalescer[store.StateRow]
	derived coalescer[store.DerivedRow]
}

// newWriter returns a writer of st, publishing to js unless it is nil,
// deriving with each tenant's ladder in ls; allStates as on writer.
func newWriter(st *store.Store, js jetstream.JetStream, ls ladder.Source, log *slog.Logger, m *metrics, allStates bool) *writer {
	w := &writer{st: st, js: js, ladders: ls, log: log, m: m, allStates: allStates}
	w.states.insert = st.InsertStates
	w.derived.insert = st.InsertDerived
	return w
}

// opp is one opportunity's history, one copy per event (derive.Latest),
// and its currently stored derived set.
type opp struct {
	tenant, id string
	events     []derive.Copy
	derived    []derive.Derived
	// raw is about the bytes of JSON the events were parsed from (the
	// copies a cached history was merged with included): what its
	// cache entry's size is estimated from.
	raw int
}

// inputs returns the events of o's history.
func (o *opp) inputs() []event.Event {
	evs := make([]event.Event, len(o.events))
	for i, c := range o.events {
		evs[i] = c.Event
	}
	return evs
}

// apply recomputes each opportunity's derived set as of now, writes the
// difference to the stored set, and updates o.derived.
func (w *writer) apply(ctx context.Context, opps []*opp, now time.Time) (err error) {
	var (
		rows   []store.DerivedRow
		states []store.StateRow
	)
	version := uint64(time.Now().UnixNano())
	cur := make([][]derive.Derived, len(opps))
	// The differences are counted first and the rows made in one slice of
	// their size: a row is ~440 bytes, and growing the slice row by row
	// was ~7% of what a backfill allocated, which its collector paid for.
	type change struct {
		l                *ladder.Ladder
		added, retracted []derive.Derived
	}
	changes := make([]change, len(opps))
	n, changed := 0, 0
	for i, o := range opps {
		c := &changes[i]
		c.l = w.ladders.For(o.tenant)
		cur[i] = derive.Derive(o.tenant, o.id, o.inputs(), c.l, now)
		c.added, c.retracted = derive.Diff(o.derived, cur[i])
		n += len(c.added) + len(c.retracted)
		if len(c.added) > 0 || len(c.retracted) > 0 || w.allStates {
			changed++
		}
	}
	rows = make([]store.DerivedRow, 0, n)
	states = make([]store.StateRow, 0, changed)
	for i, o := range opps {
		c := changes[i]
		for _, d := range c.added {
			rows = append(rows, store.DerivedRow{Derived: d, Version: version})
		}
		for _, d := range c.retracted {
			rows = append(rows, store.DerivedRow{Derived: d, Version: version, Retracted: true})
		}
		if len(c.added) > 0 || len(c.retracted) > 0 || w.allStates {
			st := derive.Summarize(cur[i], c.l.Len())
			st.Tenant, st.OpportunityID = o.tenant, o.id
			states = append(states, store.StateRow{State: st, Version: version})
		}
	}
	// The stored sets change only once the write succeeded: a failed batch
	// is retried against what is really stored.
	defer func() {
		if err == nil {
			for i, o := range opps {
				o.derived = cur[i]
			}
		}
	}()
	if len(rows) == 0 && len(states) == 0 {
		return nil
	}
	// The stored derived events are what later batches diff against, so
	// they are written last: first the publish, then the states, then the
	// derived rows. A crash in between leaves the batch unacknowledged; its
	// redelivery still sees the difference and writes everything again.
	if w.js != nil {
		if err := publishDerived(ctx, w.js, rows); err != nil {
			return err
		}
	}
	if err := w.states.write(ctx, states); err != nil {
		return fmt.Errorf("store opportunity states: %w", err)
	}
	if err := w.derived.write(ctx, rows); err != nil {
		return fmt.Errorf("store derived events: %w", err)
	}
	if w.m != nil {
		for _, r := range rows {
			change := "added"
			if r.Retracted {
				change = "retracted"
			}
			w.m.derived.WithLabelValues(string(r.Type), change).Inc()
		}
	}
	return nil
}

// derivedMessage is the JSON body of a message on CF_DERIVED.
type derivedMessage struct {
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	Tenant        string    `json:"tenant"`
	OpportunityID string    `json:"opportunity_id"`
	OccurredAt    time.Time `json:"occurred_at"`
	Seq           int       `json:"seq"` // orders the opportunity's events of one second (derive.Derived.Seq)
	Step          string    `json:"step,omitempty"`
	StepIndex     int       `json:"step_index,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	InteractionID string    `json:"interaction_id,omitempty"`
	Evidence      []string  `json:"evidence,omitempty"`
	Amount        float64   `json:"amount"`
	Status        string    `json:"status,omitempty"`
	OwnerID       string    `json:"owner_id,omitempty"`
	Value         float64   `json:"value,omitempty"`
	Detail        string    `json:"detail,omitempty"`
	LadderVersion string    `json:"ladder_version"`
	Retracted     bool      `json:"retracted,omitempty"`
	// Version orders the messages of one id: the highest wins, as in
	// ClickHouse.
	Version uint64 `json:"version"`
}

// publishDerived publishes each row to cf.derived.<tenant>.<type>; a
// consumer keeps, per derived id, the message with the highest version (a
// redelivered batch publishes the same content again under a newer
// version). The messages carry no Nats-Msg-Id: JetStream's de-duplication
// could never match (each apply has a version of its own, and a publish
// is only sent again when no server answered it), and its ids, held in the
// server's memory for the duplicate window, took a few hundred MB while a
// backfill's millions of derived events went by: under run's default 1 GiB
// memory limit, a 1M-row import's collections cost ~330 s of CPU more.
func publishDerived(ctx context.Context, js jetstream.JetStream, rows []store.DerivedRow) error {
	futures := make([]jetstream.PubAckFuture, 0, min(len(rows), publishWindow))
	wait := func() error {
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("publish derived event: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		futures = futures[:0]
		return nil
	}
	for _, r := range rows {
		if len(futures) == publishWindow {
			if err := wait(); err != nil {
				return err
			}
		}
		body, err := json.Marshal(derivedMessage{
			ID: r.ID, Type: string(r.Type), Tenant: r.Tenant, OpportunityID: r.OpportunityID,
			OccurredAt: r.OccurredAt.UTC(), Seq: r.Seq, Step: r.Step, StepIndex: r.StepIndex, Reason: r.Reason,
			InteractionID: r.InteractionID, Evidence: r.Evidence, Amount: r.Amount, Status: r.Status,
			OwnerID: r.OwnerID, Value: r.Value, Detail: r.Detail, LadderVersion: r.LadderVersion,
			Retracted: r.Retracted, Version: r.Version,
		})
		if err != nil {
			return fmt.Errorf("encode derived event %s: %w", r.ID, err)
		}
		subject := bus.DerivedPrefix + r.Tenant + "." + bus.TypeToken(event.Type(r.Type))
		f, err := js.PublishAsync(subject, body, jetstream.WithStallWait(publishStallWait))
		if err != nil {
			return fmt.Errorf("publish derived event %s: %w", r.ID, err)
		}
		futures = append(futures, f)
	}
	return wait()
}

// publishWindow is the most derived events one batch has in flight: the
// partitions' workers share the connection's window of unacknowledged async
// publishes (8192), and a batch of a large backfill can derive more than
// that. publishStallWait is how long a publish waits for room in that
// window (the default, 200ms, failed batches during the demo load).
const (
	publishWindow    = 1024
	publishStallWait = 10 * time.Second
)

// parseEvents turns stored raw rows into events with their stream
// sequences. Rows were validated on ingest; one that no longer parses (an
// older envelope, say) is skipped with a warning rather than stopping
// derivation.
func parseEvents(log *slog.Logger, rows []store.RawEvent) []derive.Copy {
	out := make([]derive.Copy, 0, len(rows))
	for _, r := range rows {
		ev, err := event.Parse(r.Payload)
		if err != nil {
			log.Warn("stored event does not parse; skipped", "tenant", r.Tenant, "source", r.Source, "event_id", r.EventID, "err", err)
			continue
		}
		out = append(out, derive.Copy{Event: ev, Seq: r.StreamSeq})
	}
	return out
}
