package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/event"
)

// publishWindow bounds the async publishes PublishBatch keeps in flight.
const publishWindow = 2048

// Publisher publishes raw events to CF_EVENTS on their partitioned subjects.
// It is safe for concurrent use.
type Publisher struct {
	js         jetstream.JetStream
	partitions int
}

// NewPublisher returns a Publisher for a CF_EVENTS stream with the given
// partition count (see Partitions).
func NewPublisher(js jetstream.JetStream, partitions int) *Publisher {
	if partitions < 1 {
		partitions = 1
	}
	return &Publisher{js: js, partitions: partitions}
}

func (p *Publisher) msg(ev event.Event) (*nats.Msg, error) {
	data, err := event.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", MsgID(ev), err)
	}
	m := nats.NewMsg(Subject(ev, p.partitions))
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, MsgID(ev))
	return m, nil
}

// Publish publishes one event and waits for the stream's acknowledgement.
// Nats-Msg-Id is tenant:source:id, so republishing within the duplicate
// window is harmless.
func (p *Publisher) Publish(ctx context.Context, ev event.Event) error {
	m, err := p.msg(ev)
	if err != nil {
		return err
	}
	if _, err := p.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("publish %s: %w", MsgID(ev), err)
	}
	return nil
}

// PublishBatch publishes evs asynchronously, keeping a bounded number in
// flight, and returns once the stream has acknowledged all of them. On
// error some events may have been stored; publishing the batch again is
// harmless within the duplicate window.
func (p *Publisher) PublishBatch(ctx context.Context, evs []event.Event) error {
	futures := make([]jetstream.PubAckFuture, 0, min(len(evs), publishWindow))
	for start := 0; start < len(evs); start += publishWindow {
		futures = futures[:0]
		for _, ev := range evs[start:min(start+publishWindow, len(evs))] {
			m, err := p.msg(ev)
			if err != nil {
				return err
			}
			f, err := p.js.PublishMsgAsync(m)
			if err != nil {
				return fmt.Errorf("publish batch: %s: %w", MsgID(ev), err)
			}
			futures = append(futures, f)
		}
		if err := waitAcks(ctx, futures); err != nil {
			return fmt.Errorf("publish batch: %w", err)
		}
	}
	return nil
}

// waitAcks waits for every future and returns the first error.
func waitAcks(ctx context.Context, futures []jetstream.PubAckFuture) error {
	var first error
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if first == nil {
				first = fmt.Errorf("%s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return first
}

// PublishRaw publishes data as-is on subject with the given Nats-Msg-Id
// (none if empty) and waits for the acknowledgement. It is meant for tools
// and tests, e.g. to publish malformed bytes.
func (p *Publisher) PublishRaw(ctx context.Context, subject, msgID string, data []byte) error {
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := p.js.Publish(ctx, subject, data, opts...); err != nil {
		return fmt.Errorf("publish raw on %s: %w", subject, err)
	}
	return nil
}
