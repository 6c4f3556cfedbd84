package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Options configure the streams and consumers Declare creates. Zero values
// take the defaults noted on each field.
type Options struct {
	// Partitions of CF_EVENTS (default 16). Fixed once the stream exists.
	Partitions int
	// Replicas of every stream (default 1).
	Replicas int
	// DuplicateWindow over which a repeated Nats-Msg-Id is dropped from
	// CF_EVENTS and CF_DERIVED (default DefaultDuplicateWindow, 30
	// seconds; CF_DLQ's is at least DLQDuplicateWindow). The server keeps
	// every id of the window in memory, ~160 bytes each, pointers the Go
	// collector of an embedding process scans: a backfill publishing 26k
	// events/s held ~300 MB of them with NATS's own 2 minutes, and its
	// collector took a third more CPU than with 20 seconds. The store
	// de-duplicates whatever gets past the window, so it only needs to
	// cover a producer's quick retries.
	DuplicateWindow time.Duration
	// MaxAge of messages in CF_EVENTS and CF_DERIVED (default 30 days).
	MaxAge time.Duration
	// DLQMaxAge of dead letters in CF_DLQ (default 0: kept until an
	// operator purges them).
	DLQMaxAge time.Duration
	// MaxBytes of CF_EVENTS (default -1: bounded only by MaxAge and the
	// server's JetStream storage limit, so that a full disk makes
	// publishers fail rather than silently discarding un-ingested events).
	MaxBytes int64
	// AckWait of the consumers (default 60s).
	AckWait time.Duration
	// Logger receives notes about kept settings; nil discards them.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Partitions <= 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = DefaultDuplicateWindow
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 30 * 24 * time.Hour
	}
	if o.DuplicateWindow > o.MaxAge {
		o.DuplicateWindow = o.MaxAge
	}
	if o.DLQMaxAge < 0 {
		o.DLQMaxAge = 0
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = -1
	}
	if o.AckWait <= 0 {
		o.AckWait = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// dlqWindow is the duplicate window of CF_DLQ: o's, at least
// DLQDuplicateWindow, at most the dead letters' age limit.
func dlqWindow(o Options) time.Duration {
	w := max(o.DuplicateWindow, DLQDuplicateWindow)
	if o.DLQMaxAge > 0 {
		w = min(w, o.DLQMaxAge)
	}
	return w
}

// Declare creates or updates, idempotently, the streams CF_EVENTS, CF_DLQ
// and CF_DERIVED (an existing stream gets o's limits, and each limit that
// changes is logged), the first generation of the ingest consumer if there is
// no ingest consumer yet (see RotateIngest), and one derive consumer per
// partition. If CF_EVENTS already exists with another partition count, the
// existing count is kept (and logged). It returns nothing else; producers
// read the partition count with Partitions.
func Declare(ctx context.Context, js jetstream.JetStream, o Options) error {
	o = o.withDefaults()
	parts := o.Partitions
	if s, err := js.Stream(ctx, EventsStream); err == nil {
		if n, ok := partitionsOf(s.CachedInfo().Config); ok && n != parts {
			o.Logger.Warn("CF_EVENTS exists with another partition count; keeping it",
				"existing", n, "requested", parts)
			parts = n
		}
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("declare: look up %s: %w", EventsStream, err)
	}

	streams := []jetstream.StreamConfig{
		{
			Name:        EventsStream,
			Description: "commitflow raw input events",
			Subjects:    []string{EventsPrefix + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      o.MaxAge,
			MaxBytes:    o.MaxBytes,
			MaxMsgs:     -1,
			Duplicates:  o.DuplicateWindow,
			Replicas:    o.Replicas,
			Metadata:    map[string]string{PartitionsKey: strconv.Itoa(parts)},
		},
		{
			Name:        DLQStream,
			Description: "commitflow dead letters: refused raw events with the reason",
			Subjects:    []string{DLQPrefix + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      o.DLQMaxAge,
			MaxBytes:    -1,
			MaxMsgs:     -1,
			Duplicates:  dlqWindow(o),
			Replicas:    o.Replicas,
		},
		{
			Name:        DerivedStream,
			Description: "commitflow derived events",
			Subjects:    []string{DerivedPrefix + ">"},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      o.MaxAge,
			MaxBytes:    -1,
			MaxMsgs:     -1,
			Duplicates:  o.DuplicateWindow,
			Replicas:    o.Replicas,
		},
	}
	for _, cfg := range streams {
		if s, err := js.Stream(ctx, cfg.Name); err == nil {
			for _, c := range changedLimits(s.CachedInfo().Config, cfg) {
				o.Logger.Warn("stream setting changed", "stream", cfg.Name, "setting", c.name, "from", c.from, "to", c.to)
			}
		} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("declare: look up %s: %w", cfg.Name, err)
		}
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("declare stream %s: %w", cfg.Name, err)
		}
	}

	// The ingest consumer: generation 1 when there is none yet. Later
	// generations are the ingest lease holder's (RotateIngest).
	if _, err := CurrentIngest(ctx, js); errors.Is(err, jetstream.ErrConsumerNotFound) {
		if _, err := js.CreateConsumer(ctx, EventsStream, ingestConfig(1, 1, o.AckWait, defaultIngestMaxAckPending)); err != nil {
			return fmt.Errorf("declare consumer %s: %w", IngestConsumerName(1), err)
		}
	} else if err != nil {
		return fmt.Errorf("declare: %w", err)
	}

	var consumers []jetstream.ConsumerConfig
	for p := range parts {
		consumers = append(consumers, jetstream.ConsumerConfig{
			Durable:       DeriveConsumer(p),
			Description:   fmt.Sprintf("commitflow derive workers, partition %d of %d", p, parts),
			FilterSubject: PartitionFilter(p),
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       o.AckWait,
			MaxDeliver:    -1,
			MaxAckPending: 20_000,
		})
	}
	for _, cfg := range consumers {
		if _, err := js.CreateOrUpdateConsumer(ctx, EventsStream, cfg); err != nil {
			return fmt.Errorf("declare consumer %s: %w", cfg.Durable, err)
		}
	}
	return nil
}

// change is a stream limit Declare changes: its name and its old and new
// values.
type change struct{ name, from, to string }

// changedLimits lists the limits of a stream's config old that new sets
// differently.
func changedLimits(old, new jetstream.StreamConfig) []change {
	var cs []change
	add := func(name string, from, to any) {
		if f, t := fmt.Sprint(from), fmt.Sprint(to); f != t {
			cs = append(cs, change{name, f, t})
		}
	}
	add("max_age", old.MaxAge, new.MaxAge)
	add("max_bytes", old.MaxBytes, new.MaxBytes)
	add("max_msgs", old.MaxMsgs, new.MaxMsgs)
	add("duplicate_window", old.Duplicates, new.Duplicates)
	add("replicas", old.Replicas, new.Replicas)
	return cs
}

// Partitions returns the partition count recorded on CF_EVENTS.
func Partitions(ctx context.Context, js jetstream.JetStream) (int, error) {
	s, err := js.Stream(ctx, EventsStream)
	if err != nil {
		return 0, fmt.Errorf("partitions: %w", err)
	}
	n, ok := partitionsOf(s.CachedInfo().Config)
	if !ok {
		return 0, fmt.Errorf("partitions: stream %s has no valid %q metadata", EventsStream, PartitionsKey)
	}
	return n, nil
}

func partitionsOf(cfg jetstream.StreamConfig) (int, bool) {
	n, err := strconv.Atoi(cfg.Metadata[PartitionsKey])
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}
