// Package dlq reads and re-drives the dead letters of CF_DLQ: the raw
// events the ingest worker refused, each with its original bytes, the
// subject it arrived on and the reason (see bus.ErrorHeader).
//
// After a fix (a connector corrected by hand, or a commitflow upgrade that
// accepts what an older one refused), Replay publishes the dead letters
// back to CF_EVENTS on their original subjects and removes each from CF_DLQ
// once CF_EVENTS has stored it. Whatever is still invalid is dead-lettered
// again by the ingest worker, with its reason; whatever is valid is stored,
// and the store's de-duplication by event id makes a repeated replay
// harmless.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
)

// Letter is one dead letter.
type Letter struct {
	// Seq is its sequence in CF_DLQ.
	Seq uint64
	// At is when it was dead-lettered.
	At time.Time
	// Subject is the CF_EVENTS subject the event arrived on, and
	// EventsSeq its sequence there (0 if unknown).
	Subject   string
	EventsSeq uint64
	// Reason is why the ingest worker refused it.
	Reason string
	// Data is the original message body.
	Data []byte
}

// Filter selects dead letters; the zero Filter selects all.
type Filter struct {
	// Reason, if set, must occur in the letter's reason.
	Reason string
	// Subject, if set, is a NATS subject filter on the original subject,
	// such as "cf.events.acme.>" for one tenant.
	Subject string
}

// match reports whether f selects l.
func (f Filter) match(l Letter) bool {
	return strings.Contains(l.Reason, f.Reason) && (f.Subject == "" || subjectMatches(f.Subject, l.Subject))
}

// dlqFilter is the CF_DLQ subject filter that covers f.Subject, so that the
// server sends only the letters of the subjects asked for.
func (f Filter) dlqFilter() string {
	if f.Subject == "" {
		return bus.DLQPrefix + ">"
	}
	rest, ok := strings.CutPrefix(f.Subject, bus.EventsPrefix)
	if !ok || rest == "" {
		return bus.DLQPrefix + ">"
	}
	return bus.DLQPrefix + rest
}

// Scan calls fn with every dead letter f selects, oldest first, up to limit
// of them (0: no limit). It reads CF_DLQ with an ordered consumer of its
// own and changes nothing.
func Scan(ctx context.Context, js jetstream.JetStream, f Filter, limit int, fn func(Letter) error) error {
	s, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{f.dlqFilter()}})
	if err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	n := 0
	for {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("dlq: fetch: %w", err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			l, pending, err := letter(m)
			if err != nil {
				return err
			}
			if f.match(l) {
				if err := fn(l); err != nil {
					return err
				}
				if n++; limit > 0 && n >= limit {
					return nil
				}
			}
			if pending == 0 {
				return nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("dlq: fetch: %w", err)
		}
		if got == 0 {
			return nil // empty, or emptied meanwhile
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// letter decodes a CF_DLQ message, and returns how many messages the
// consumer has left after it.
func letter(m jetstream.Msg) (Letter, uint64, error) {
	md, err := m.Metadata()
	if err != nil {
		return Letter{}, 0, fmt.Errorf("dlq: %w", err)
	}
	h := m.Headers()
	l := Letter{
		Seq:     md.Sequence.Stream,
		At:      md.Timestamp,
		Subject: h.Get(bus.SubjectHeader),
		Reason:  h.Get(bus.ErrorHeader),
		Data:    m.Data(),
	}
	if s := h.Get(bus.StreamSeqHeader); s != "" {
		l.EventsSeq, _ = strconv.ParseUint(s, 10, 64)
	}
	return l, md.NumPending, nil
}

// Replay publishes every dead letter f selects back to CF_EVENTS, on its
// original subject with its original bytes, and deletes it from CF_DLQ once
// CF_EVENTS has acknowledged it, one at a time, so that an interrupted
// replay leaves each letter in exactly one of the two streams (or, at
// worst, both: the store de-duplicates). Only the letters present when it
// starts are replayed, not those the ingest worker dead-letters again
// meanwhile. progress, if not nil, is called after each one. It returns
// how many were replayed. A letter without an original subject on
// CF_EVENTS stays in CF_DLQ and is reported in the error.
//
// Each replay carries the message id "dlq-replay:<CF_DLQ sequence>", so
// that running Replay again after an interruption does not publish a letter
// twice within the stream's duplicate window.
func Replay(ctx context.Context, js jetstream.JetStream, f Filter, progress func(Letter)) (int, error) {
	s, err := js.Stream(ctx, bus.DLQStream)
	if err != nil {
		return 0, fmt.Errorf("dlq: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("dlq: %w", err)
	}
	last := info.State.LastSeq
	var skipped []uint64
	n := 0
	errDone := errors.New("done")
	err = Scan(ctx, js, f, 0, func(l Letter) error {
		if l.Seq > last {
			return errDone
		}
		if !strings.HasPrefix(l.Subject, bus.EventsPrefix) {
			skipped = append(skipped, l.Seq)
			return nil
		}
		m := nats.NewMsg(l.Subject)
		m.Data = l.Data
		m.Header.Set(jetstream.MsgIDHeader, "dlq-replay:"+strconv.FormatUint(l.Seq, 10))
		if _, err := js.PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("dlq: replay CF_DLQ seq %d to %s: %w", l.Seq, l.Subject, err)
		}
		if err := s.DeleteMsg(ctx, l.Seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("dlq: replayed CF_DLQ seq %d but could not delete it: %w", l.Seq, err)
		}
		n++
		if progress != nil {
			progress(l)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDone) {
		return n, err
	}
	if len(skipped) > 0 {
		return n, fmt.Errorf("dlq: %d letters have no original subject on %s and were left in place (CF_DLQ seq %v)", len(skipped), bus.EventsStream, skipped[:min(len(skipped), 10)])
	}
	return n, nil
}

// subjectMatches reports whether the NATS subject filter matches subject:
// "*" matches one token, a final ">" one or more.
func subjectMatches(filter, subject string) bool {
	ft, st := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, t := range ft {
		if t == ">" {
			return i == len(ft)-1 && len(st) > i
		}
		if i >= len(st) || (t != "*" && t != st[i]) {
			return false
		}
	}
	return len(ft) == len(st)
}
