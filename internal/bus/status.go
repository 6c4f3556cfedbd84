package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamStatus is the state and limits of one of commitflow's streams.
type StreamStatus struct {
	Name     string        `json:"name"`
	Messages uint64        `json:"messages"`
	Bytes    uint64        `json:"bytes"`
	Replicas int           `json:"replicas"`
	MaxAge   time.Duration `json:"max_age_ns"`
}

// ConsumerStatus is how far one consumer, or a group of them, is behind.
type ConsumerStatus struct {
	// Name is the consumer's name, or the group's.
	Name string `json:"name"`
	// Consumers is how many consumers the figures add up.
	Consumers int `json:"consumers"`
	// Pending is how many messages are not yet delivered, AckPending how
	// many are delivered but not yet acknowledged.
	Pending    uint64 `json:"pending"`
	AckPending int    `json:"ack_pending"`
}

// Status is where commitflow's streams and consumers stand.
type Status struct {
	Streams []StreamStatus `json:"streams"`
	// Ingest is the current generation of the ingest consumer; nil if
	// there is none.
	Ingest *ConsumerStatus `json:"ingest"`
	// Derive adds up the derive consumers of every partition.
	Derive ConsumerStatus `json:"derive"`
}

// ReadStatus reads the state of the streams Declare creates (those that
// exist) and of their consumers.
func ReadStatus(ctx context.Context, js jetstream.JetStream) (Status, error) {
	var st Status
	for _, name := range []string{EventsStream, DerivedStream, DLQStream} {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("status: stream %s: %w", name, err)
		}
		info := s.CachedInfo()
		st.Streams = append(st.Streams, StreamStatus{
			Name: name, Messages: info.State.Msgs, Bytes: info.State.Bytes,
			Replicas: info.Config.Replicas, MaxAge: info.Config.MaxAge,
		})
	}
	if len(st.Streams) == 0 || st.Streams[0].Name != EventsStream {
		return st, nil
	}
	if c, err := CurrentIngest(ctx, js); err == nil {
		info := c.CachedInfo()
		st.Ingest = &ConsumerStatus{Name: info.Name, Consumers: 1, Pending: info.NumPending, AckPending: info.NumAckPending}
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return st, fmt.Errorf("status: %w", err)
	}
	n, err := Partitions(ctx, js)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	st.Derive.Name = "derive"
	for p := range n {
		c, err := js.Consumer(ctx, EventsStream, DeriveConsumer(p))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return st, fmt.Errorf("status: consumer %s: %w", DeriveConsumer(p), err)
		}
		info := c.CachedInfo()
		st.Derive.Consumers++
		st.Derive.Pending += info.NumPending
		st.Derive.AckPending += info.NumAckPending
	}
	return st, nil
}
