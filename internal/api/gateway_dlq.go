package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
)

// maxLetter bounds the notification a dead letter carries: under NATS's
// default maximum payload of 1 MiB, with room for the headers. A larger
// refused notification is logged and answered, not dead-lettered.
const maxLetter = 1<<20 - 16<<10

// DeadLetters stores in CF_DLQ the webhook notifications the gateway
// refuses, each with its raw bytes, the reason (bus.ErrorHeader) and the
// CF_EVENTS subject it would have had (bus.SubjectHeader), so that
// "commitflow dlq list" shows them and "dlq replay" can re-drive them.
// It is safe for concurrent use.
type DeadLetters struct {
	js         jetstream.JetStream
	partitions int
	opts       bus.PublishOptions
}

// NewDeadLetters returns DeadLetters publishing through js, for a CF_EVENTS
// stream with the given partition count (see bus.Partitions).
func NewDeadLetters(js jetstream.JetStream, partitions int, o bus.PublishOptions) *DeadLetters {
	return &DeadLetters{js: js, partitions: max(partitions, 1), opts: o}
}

// letter is a refused notification: its bytes, why, and the event made of
// it that failed validation, if any; else subject is where it would go.
type letter struct {
	event   *event.Event
	subject string
	data    []byte
	reason  string
}

// msg returns the CF_DLQ message of l. Its Nats-Msg-Id hashes the subject,
// reason and bytes, so that a notification delivered again is
// dead-lettered once within the duplicate window.
func (d *DeadLetters) msg(l letter) *nats.Msg {
	subject := l.subject
	if l.event != nil {
		subject = bus.Subject(*l.event, d.partitions)
	}
	m := nats.NewMsg(bus.DLQSubject(subject))
	m.Data = l.data
	m.Header.Set(bus.ErrorHeader, l.reason)
	m.Header.Set(bus.SubjectHeader, subject)
	h := sha256.New()
	for _, part := range [][]byte{[]byte(subject), []byte(l.reason), l.data} {
		h.Write(part)
		h.Write([]byte{0})
	}
	m.Header.Set(jetstream.MsgIDHeader, "webhook:"+hex.EncodeToString(h.Sum(nil))[:32])
	return m
}

// deadLetter stores letters in CF_DLQ, or returns a 503 telling the
// vendor to retry (the events already stored are de-duplicated then).
// Without DeadLetters the letters are only logged.
func (g *gateway) deadLetter(ctx context.Context, letters []letter) error {
	d := g.cfg.DeadLetters
	if d == nil {
		return nil
	}
	msgs := make([]*nats.Msg, 0, len(letters))
	for _, l := range letters {
		if len(l.data) > maxLetter {
			g.logger.WarnContext(ctx, "refused notification too large to dead-letter", "bytes", len(l.data), "reason", l.reason)
			continue
		}
		msgs = append(msgs, d.msg(l))
	}
	if err := bus.PublishMsgs(ctx, d.js, msgs, d.opts); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		g.logger.WarnContext(ctx, "refused notifications not dead-lettered", "letters", len(msgs), "err", err)
		return &gatewayError{status: http.StatusServiceUnavailable,
			msg: "the refused notifications could not be stored in the dead-letter stream; retry the same request (events are de-duplicated by id)"}
	}
	return nil
}
