package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/retry"
)

// publishWindow bounds the async publishes PublishMsgs keeps in flight.
const publishWindow = 2048

// DefaultAckTimeout is how long a publish waits for the stream's
// acknowledgement before it counts as failed: the default
// PublishOptions.AttemptTimeout, and the async publish timeout of the
// JetStream contexts Connect makes.
const DefaultAckTimeout = 10 * time.Second

// DefaultRetryFor is the default PublishOptions.RetryFor: long enough to
// outlast a server restart or a leader election. A message is sent again
// AttemptTimeout or more after the last copy, so the copies of its first
// retries fall inside the default duplicate window (DefaultDuplicateWindow)
// and the server drops them; a later copy is stored again, and the store
// drops it.
const DefaultRetryFor = time.Minute

// PublishOptions bound how long a publish keeps trying. Zero values take the
// defaults noted on each field.
type PublishOptions struct {
	// AttemptTimeout is how long one attempt waits for the stream's
	// acknowledgement of a message before it sends the message again
	// (default DefaultAckTimeout).
	AttemptTimeout time.Duration
	// RetryFor is how long a call keeps retrying while no attempt gets a
	// message acknowledged before it returns the error (default
	// DefaultRetryFor). The caller's context may end it sooner. A copy sent
	// later than the streams' duplicate window after the first one is
	// stored again (the store then drops it).
	RetryFor time.Duration
	// Logger receives a warning for each retry; nil discards them.
	Logger *slog.Logger
}

func (o PublishOptions) withDefaults() PublishOptions {
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAckTimeout
	}
	if o.RetryFor <= 0 {
		o.RetryFor = DefaultRetryFor
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Publisher publishes raw events to CF_EVENTS on their partitioned subjects.
// It is safe for concurrent use.
type Publisher struct {
	js         jetstream.JetStream
	partitions int
	opts       PublishOptions
}

// NewPublisher returns a Publisher for a CF_EVENTS stream with the given
// partition count (see Partitions), with the default PublishOptions.
func NewPublisher(js jetstream.JetStream, partitions int) *Publisher {
	if partitions < 1 {
		partitions = 1
	}
	return &Publisher{js: js, partitions: partitions, opts: PublishOptions{}.withDefaults()}
}

// WithOptions returns a copy of p that publishes with o.
func (p *Publisher) WithOptions(o PublishOptions) *Publisher {
	q := *p
	q.opts = o.withDefaults()
	return &q
}

func (p *Publisher) msg(ev event.Event) (*nats.Msg, error) {
	data, err := event.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", MsgID(ev), err)
	}
	// The header map is made whole: Header.Set would canonicalize the
	// key, which is canonical already, for every message.
	return &nats.Msg{Subject: Subject(ev, p.partitions), Data: data,
		Header: nats.Header{jetstream.MsgIDHeader: []string{MsgID(ev)}}}, nil
}

// Publish publishes one event and waits for the stream's acknowledgement,
// retrying as PublishMsgs does. Nats-Msg-Id is tenant:source:id, so
// republishing within the duplicate window is harmless.
func (p *Publisher) Publish(ctx context.Context, ev event.Event) error {
	m, err := p.msg(ev)
	if err != nil {
		return err
	}
	if err := PublishMsgs(ctx, p.js, []*nats.Msg{m}, p.opts); err != nil {
		return fmt.Errorf("publish %s: %w", MsgID(ev), err)
	}
	return nil
}

// PublishBatch publishes evs and returns once the stream has acknowledged
// all of them, retrying as PublishMsgs does. On error some events may have
// been stored; publishing the batch again is harmless within the duplicate
// window.
func (p *Publisher) PublishBatch(ctx context.Context, evs []event.Event) error {
	msgs := make([]*nats.Msg, len(evs))
	for i, ev := range evs {
		m, err := p.msg(ev)
		if err != nil {
			return err
		}
		msgs[i] = m
	}
	if err := PublishMsgs(ctx, p.js, msgs, p.opts); err != nil {
		return fmt.Errorf("publish batch: %w", err)
	}
	return nil
}

// PublishRaw publishes data as-is on subject with the given Nats-Msg-Id
// (none if empty) and waits for the acknowledgement, retrying as
// PublishMsgs does. It is meant for tools and tests, e.g. to publish
// malformed bytes.
func (p *Publisher) PublishRaw(ctx context.Context, subject, msgID string, data []byte) error {
	m := nats.NewMsg(subject)
	m.Data = data
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if err := PublishMsgs(ctx, p.js, []*nats.Msg{m}, p.opts); err != nil {
		return fmt.Errorf("publish raw on %s: %w", subject, err)
	}
	return nil
}

// PublishMsgs publishes msgs asynchronously, at most publishWindow at a
// time, and returns once their streams have acknowledged every one.
//
// A message the stream has not acknowledged within o.AttemptTimeout, or
// could not take for a reason that may pass (the connection is down, the
// stream has no leader, too many publishes are pending), is sent again
// after a back-off: the same message, with the same Nats-Msg-Id, so that the stream
// keeps one copy however many it receives within its duplicate window. A
// message without Nats-Msg-Id may be stored twice. The back-off grows from
// 250 ms to 5 s while attempts get nothing through. PublishMsgs gives up
// when none has for o.RetryFor, or when ctx ends, and returns the last
// error; a refusal that a retry cannot cure (a message over the
// size limit, a closed connection) is returned at once.
func PublishMsgs(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg, o PublishOptions) error {
	o = o.withDefaults()
	total := len(msgs)
	// The run of retries starts again whenever an attempt gets anything
	// through; it gives up RetryFor after that.
	r := retry.Policy{Initial: 250 * time.Millisecond, Max: 5 * time.Second, For: o.RetryFor}.Start()
	for attempt := 1; ; attempt++ {
		failed, err := publishOnce(ctx, js, msgs, o.AttemptTimeout)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%d of %d messages unacknowledged: %w (last error: %w)", len(failed), total, ctx.Err(), err)
		}
		if permanent(err) {
			return err
		}
		if attempt == 1 || len(failed) < len(msgs) {
			r.Reset()
		}
		wait, ok := r.Next()
		if !ok {
			return fmt.Errorf("%d of %d messages unacknowledged after %d attempts, none acknowledged for %s: %w",
				len(failed), total, attempt, o.RetryFor, err)
		}
		o.Logger.Warn("publish not acknowledged; retrying with the same message ids",
			"unacknowledged", len(failed), "messages", total, "attempt", attempt, "retry_in", wait, "err", err)
		if serr := retry.Sleep(ctx, wait); serr != nil {
			return fmt.Errorf("%d of %d messages unacknowledged: %w (last error: %w)", len(failed), total, serr, err)
		}
		msgs = failed
	}
}

// publishOnce publishes msgs asynchronously, keeping at most publishWindow
// of them unacknowledged: each acknowledgement lets the next message go,
// so the stream never waits for a window to drain. Each message waits at
// most timeout after it was sent. It returns the messages not
// acknowledged and the first error; after a failure it sends no more, and
// the messages not sent are returned with the failed ones.
func publishOnce(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg, timeout time.Duration) ([]*nats.Msg, error) {
	var (
		ring     = make([]sentMsg, min(publishWindow, len(msgs))) // the messages in flight, oldest at head
		head, n  int
		next     int // msgs[next] is the next to send
		failed   []*nats.Msg
		first    error
		noAck    = fmt.Errorf("%w (%s)", errNoAck, timeout)
		deadline = time.NewTimer(timeout)
		fail     = func(m *nats.Msg, err error) {
			failed = append(failed, m)
			if first == nil {
				first = fmt.Errorf("%s: %w", msgName(m), err)
			}
		}
	)
	defer deadline.Stop()
	for {
		if first == nil && next < len(msgs) && n < len(ring) {
			f, err := js.PublishMsgAsync(msgs[next])
			if err != nil {
				first = fmt.Errorf("%s: %w", msgName(msgs[next]), err) // msgs[next:] go back unsent
				continue
			}
			ring[(head+n)%len(ring)] = sentMsg{f: f, at: time.Now()}
			n++
			next++
			continue
		}
		if n == 0 {
			break
		}
		s := ring[head]
		ring[head] = sentMsg{}
		head, n = (head+1)%len(ring), n-1
		switch err := s.wait(ctx, deadline, timeout, noAck); {
		case err == nil:
		case ctx.Err() != nil:
			failed = append(failed, s.f.Msg())
			for ; n > 0; head, n = (head+1)%len(ring), n-1 {
				failed = append(failed, ring[head].f.Msg())
			}
			return append(failed, msgs[next:]...), ctx.Err()
		default:
			fail(s.f.Msg(), err)
		}
	}
	return append(failed, msgs[next:]...), first
}

// sentMsg is a message in flight: its acknowledgement to come, and when it
// was sent.
type sentMsg struct {
	f  jetstream.PubAckFuture
	at time.Time
}

// wait waits for s's acknowledgement until timeout after it was sent,
// with deadline as its timer. It returns nil once the stream has stored
// the message, the stream's or the connection's error, noAck when the
// time is up, or ctx's error.
func (s sentMsg) wait(ctx context.Context, deadline *time.Timer, timeout time.Duration, noAck error) error {
	select {
	case <-s.f.Ok():
		return nil
	case err := <-s.f.Err():
		return err
	default:
	}
	d := time.Until(s.at.Add(timeout))
	if d <= 0 {
		return noAck
	}
	deadline.Reset(d)
	defer deadline.Stop()
	select {
	case <-s.f.Ok():
		return nil
	case err := <-s.f.Err():
		return err
	case <-deadline.C:
		return noAck
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errNoAck is the failure of a message whose acknowledgement did not come
// within an attempt's timeout.
var errNoAck = errors.New("no acknowledgement in time")

// msgName names m in errors: its Nats-Msg-Id, else its subject.
func msgName(m *nats.Msg) string {
	if id := m.Header.Get(jetstream.MsgIDHeader); id != "" {
		return id
	}
	return m.Subject
}

// permanent reports whether a publish that failed with err would fail the
// same way if sent again: the connection is closed or draining, the message
// is invalid or over the size limit, or the stream refused it as a bad
// request (4xx other than 408 timeout, 409 conflict with a copy in process
// and 429 too many requests). Anything else (no acknowledgement in time, a
// connection lost or not yet back, no stream leader, a server error) may
// pass on a retry.
func permanent(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code >= 400 && apiErr.Code < 500 && apiErr.Code != 408 && apiErr.Code != 409 && apiErr.Code != 429
	}
	for _, p := range []error{
		nats.ErrConnectionClosed, nats.ErrConnectionDraining, nats.ErrBadSubject,
		nats.ErrMaxPayload, nats.ErrInvalidMsg, nats.ErrHeadersNotSupported,
	} {
		if errors.Is(err, p) {
			return true
		}
	}
	return false
}
