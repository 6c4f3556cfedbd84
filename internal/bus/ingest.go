package bus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The ingest consumer acknowledges with AckAll: one acknowledgement per
// stored batch, of its highest stream sequence, covers every message below
// it. That is safe only while a single fetcher consumes it and stores its
// batches in order, so the consumer has generations:
//
//   - the process that holds the ingest lease creates generation g+1,
//     starting right after generation g's acknowledgement floor (everything
//     at or below it is stored), and deletes the older generations;
//   - a process that lost the lease, or stalled long enough for another to
//     take it over, finds its generation deleted: its fetches and
//     acknowledgements fail instead of acknowledging messages the new holder
//     has not stored. What it had fetched but not stored is delivered again
//     by the new generation, and what it stored twice the store
//     de-duplicates.
//
// The names are "ingest-g000001", "ingest-g000002", ...; the consumer
// "ingest" of earlier versions, which acknowledged every message, counts as
// generation 0.
const (
	// LegacyIngestConsumer is the shared, explicitly acknowledged ingest
	// consumer of earlier versions: generation 0.
	LegacyIngestConsumer = "ingest"
	ingestGenPrefix      = "ingest-g"
)

// IngestConsumerName returns the name of generation g of the ingest
// consumer.
func IngestConsumerName(g int) string {
	if g == 0 {
		return LegacyIngestConsumer
	}
	return fmt.Sprintf("%s%06d", ingestGenPrefix, g)
}

// ingestGeneration returns the generation of an ingest consumer's name.
func ingestGeneration(name string) (int, bool) {
	if name == LegacyIngestConsumer {
		return 0, true
	}
	rest, ok := strings.CutPrefix(name, ingestGenPrefix)
	if !ok {
		return 0, false
	}
	g, err := strconv.Atoi(rest)
	if err != nil || g < 1 {
		return 0, false
	}
	return g, true
}

// ingestGenerations lists the generations of the ingest consumer on
// CF_EVENTS, in no order.
func ingestGenerations(ctx context.Context, js jetstream.JetStream) ([]int, error) {
	s, err := js.Stream(ctx, EventsStream)
	if err != nil {
		return nil, fmt.Errorf("ingest consumer: %w", err)
	}
	names := s.ConsumerNames(ctx)
	var gens []int
	for name := range names.Name() {
		if g, ok := ingestGeneration(name); ok {
			gens = append(gens, g)
		}
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("ingest consumer: list consumers: %w", err)
	}
	return gens, nil
}

// CurrentIngest returns the current (highest) generation of the ingest
// consumer. It wraps jetstream.ErrConsumerNotFound when there is none.
func CurrentIngest(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	gens, err := ingestGenerations(ctx, js)
	if err != nil {
		return nil, err
	}
	if len(gens) == 0 {
		return nil, fmt.Errorf("ingest consumer: %w", jetstream.ErrConsumerNotFound)
	}
	top := slices.Max(gens)
	c, err := js.Consumer(ctx, EventsStream, IngestConsumerName(top))
	if err != nil {
		return nil, fmt.Errorf("ingest consumer %s: %w", IngestConsumerName(top), err)
	}
	return c, nil
}

// ingestConfig is the configuration of generation g, delivering from stream
// sequence start (1: from the beginning).
func ingestConfig(g int, start uint64, ackWait time.Duration, maxAckPending int) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:     IngestConsumerName(g),
		Description: "commitflow ingest: raw events into ClickHouse, one fetcher at a time (the ingest lease holder)",
		// No filter: the stream holds only cf.events.> anyway, and
		// the server then hands over the next message without
		// matching its subject against a wildcard.
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1,
		MaxAckPending: maxAckPending,
		MaxWaiting:    512,
	}
	if start > 1 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = start
	}
	return cfg
}

// defaultIngestMaxAckPending bounds the messages an ingest generation
// delivers ahead of its acknowledgement floor: two batches of 50k.
const defaultIngestMaxAckPending = 100_000

// RotateIngest creates the next generation of the ingest consumer, starting
// right after the current generation's acknowledgement floor with its
// AckWait and MaxAckPending, and deletes every older generation. Only the
// holder of the ingest lease may call it. With no ingest consumer at all it
// creates generation 1 from the start of the stream.
func RotateIngest(ctx context.Context, js jetstream.JetStream) (jetstream.Consumer, error) {
	gens, err := ingestGenerations(ctx, js)
	if err != nil {
		return nil, err
	}
	next, start := 1, uint64(1)
	ackWait, maxAckPending := time.Minute, defaultIngestMaxAckPending
	if len(gens) > 0 {
		top := slices.Max(gens)
		cur, err := js.Consumer(ctx, EventsStream, IngestConsumerName(top))
		if err != nil {
			return nil, fmt.Errorf("ingest consumer %s: %w", IngestConsumerName(top), err)
		}
		// A fresh look: the floor moves with every acknowledgement.
		info, err := cur.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("ingest consumer %s: %w", IngestConsumerName(top), err)
		}
		next, start = top+1, info.AckFloor.Stream+1
		ackWait, maxAckPending = info.Config.AckWait, info.Config.MaxAckPending
		if maxAckPending <= 0 {
			maxAckPending = defaultIngestMaxAckPending
		}
	}
	c, err := js.CreateConsumer(ctx, EventsStream, ingestConfig(next, start, ackWait, maxAckPending))
	if err != nil {
		return nil, fmt.Errorf("create ingest consumer %s: %w", IngestConsumerName(next), err)
	}
	for _, g := range gens {
		err := js.DeleteConsumer(ctx, EventsStream, IngestConsumerName(g))
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil, fmt.Errorf("delete ingest consumer %s: %w", IngestConsumerName(g), err)
		}
	}
	return c, nil
}
