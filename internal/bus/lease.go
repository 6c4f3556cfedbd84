package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/ksuid"

	"github.com/commitflow/commitflow/internal/retry"
)

// The lease buckets. Their names are those of earlier releases, so that
// processes of both share the leases during an upgrade.
const (
	// IngestLeaseBucket holds the ingest lease, one key: the process that
	// fetches from the ingest consumer.
	IngestLeaseBucket = "CF_INGEST_LEASE"
	// DeriveLeaseBucket holds one lease per partition of CF_EVENTS and one
	// membership key per live derive process.
	DeriveLeaseBucket = "CF_LEASES"
)

// ErrLeaseLost is wrapped by the errors of Lease.Renew when the lease is
// lost: another member holds the key, the key is gone, or NATS could not be
// reached for longer than the lease lasts.
var ErrLeaseLost = errors.New("lease lost")

// DefaultLeaseTTL is how long a lease lives without renewal when its
// configuration leaves the TTL zero.
const DefaultLeaseTTL = 15 * time.Second

// HolderDefaults returns the lease settings of a worker's configuration with
// their defaults filled in: DefaultLeaseTTL for a ttl <= 0, and a new name
// unique to this process (a ksuid) for an empty member.
func HolderDefaults(ttl time.Duration, member string) (time.Duration, string) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	if member == "" {
		member = ksuid.New().String()
	}
	return ttl, member
}

// LeaseConfig configures a lease bucket. Zero values take the defaults noted
// on each field.
type LeaseConfig struct {
	// Bucket is the key-value bucket's name (required).
	Bucket string
	// Description is the bucket's description.
	Description string
	// Member names this process in the bucket (required). It must be
	// unique among the processes sharing the bucket: a key found under it
	// is taken to be this process's own.
	Member string
	// TTL is how long a key lives without renewal (default 15s): how long
	// the others wait to take over from a member that died.
	TTL time.Duration
	// Replicas of the bucket on a NATS cluster (default 1).
	Replicas int
	// Logger receives losses (ERROR), failed renewals (WARN) and keys
	// taken back (WARN), with the bucket and key; it should name the
	// member. Nil discards them.
	Logger *slog.Logger
	// Metrics counts the same; nil counts nowhere.
	Metrics *LeaseMetrics
}

// ValidMember reports whether name can name a lease member: it is part
// of the member's membership key, and JetStream keys allow letters,
// digits, -, _, =, / and . (a token separator), of which a member name
// takes the first five.
func ValidMember(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '=') {
			return false
		}
	}
	return true
}

// Leases is a JetStream key-value bucket of expiring, exclusive leases, one
// per key. A key holds the name of the member that holds its lease; the
// bucket's TTL expires it unless the holder renews it, so the lease of a
// process that died passes to another. Every change of a key is a
// compare-and-set on its revision, so a renewal that succeeds proves the
// key stayed this member's throughout.
type Leases struct {
	kv     jetstream.KeyValue
	bucket string
	member string
	ttl    time.Duration
	log    *slog.Logger
	m      *LeaseMetrics
}

// OpenLeases opens the lease bucket cfg names, creating it (or updating its
// TTL and replicas) if needed. Every lease bucket is created here.
func OpenLeases(ctx context.Context, js jetstream.JetStream, cfg LeaseConfig) (*Leases, error) {
	if cfg.Bucket == "" || cfg.Member == "" {
		return nil, errors.New("lease bucket: bucket and member are required")
	}
	if !ValidMember(cfg.Member) {
		return nil, fmt.Errorf("lease bucket %s: member %q: want letters, digits, -, _ and = only (it is part of a key)", cfg.Bucket, cfg.Member)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultLeaseTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		m, err := NewLeaseMetrics(nil)
		if err != nil {
			return nil, err
		}
		cfg.Metrics = m
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: cfg.Description,
		TTL:         cfg.TTL,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("lease bucket %s: %w", cfg.Bucket, err)
	}
	// Every series exists from the start, so that alerts on its rate see
	// the first increase.
	cfg.Metrics.lost.WithLabelValues(cfg.Bucket, "taken")
	cfg.Metrics.lost.WithLabelValues(cfg.Bucket, "unreachable")
	cfg.Metrics.renewFailures.WithLabelValues(cfg.Bucket)
	cfg.Metrics.takenBack.WithLabelValues(cfg.Bucket)
	return &Leases{kv: kv, bucket: cfg.Bucket, member: cfg.Member, ttl: cfg.TTL,
		log: cfg.Logger.With("bucket", cfg.Bucket), m: cfg.Metrics}, nil
}

// Member is the name of this process in the bucket.
func (ls *Leases) Member() string { return ls.member }

// margin is how long before the key could expire a lease that could not
// be renewed counts as lost: the holder's time to notice and stop.
func (ls *Leases) margin() time.Duration { return ls.ttl / 5 }

// requestTimeout bounds one request to NATS.
func (ls *Leases) requestTimeout() time.Duration { return ls.ttl / 5 }

// retryWait is the pause between renewal attempts that failed.
func (ls *Leases) retryWait() time.Duration { return ls.ttl / 15 }

// Lease returns the lease of key, not held.
func (ls *Leases) Lease(key string) *Lease { return &Lease{ls: ls, key: key} }

// Announce writes this member's membership key, which expires after the
// TTL unless announced again.
func (ls *Leases) Announce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ls.requestTimeout())
	defer cancel()
	if _, err := ls.kv.Put(ctx, memberPrefix+ls.member, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("lease bucket %s: announce %s: %w", ls.bucket, ls.member, err)
	}
	return nil
}

// Members counts the members whose membership key is live.
func (ls *Leases) Members(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, ls.requestTimeout())
	defer cancel()
	keys, err := ls.kv.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("lease bucket %s: members: %w", ls.bucket, err)
	}
	defer keys.Stop()
	n := 0
	for k := range keys.Keys() {
		if strings.HasPrefix(k, memberPrefix) {
			n++
		}
	}
	return n, nil
}

// Withdraw deletes this member's membership key.
func (ls *Leases) Withdraw(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ls.requestTimeout())
	defer cancel()
	if err := ls.kv.Delete(ctx, memberPrefix+ls.member); err != nil {
		return fmt.Errorf("lease bucket %s: withdraw %s: %w", ls.bucket, ls.member, err)
	}
	return nil
}

const memberPrefix = "member."

// Lease is one key of a lease bucket, as seen by this member. It is not safe
// for concurrent use.
type Lease struct {
	ls  *Leases
	key string
	rev uint64 // of our key; 0 when not held
	// sent is when the request that last wrote our key was sent: the key
	// expires no sooner than TTL after it.
	sent time.Time
}

// Key is the lease's key.
func (l *Lease) Key() string { return l.key }

// Held reports whether this member holds the lease, as far as it knows: a
// caller that cannot renew it must stop acting as holder by Deadline.
func (l *Lease) Held() bool { return l.rev != 0 }

// Deadline is when a held lease that could not be renewed counts as lost:
// the TTL after the last successful write, less a margin. The key cannot
// expire, and so no other member can take it, before then.
func (l *Lease) Deadline() time.Time { return l.sent.Add(l.ls.ttl - l.ls.margin()) }

// Acquire takes the lease if its key is free, or takes it back at once if
// the key is still under this member's name (a renewal whose answer was
// lost, a NATS restart or leader change the key survived). It returns the
// member holding the lease afterwards: this member's name when it holds
// it, "" when that is unknown (the key changed meanwhile; try again).
func (l *Lease) Acquire(ctx context.Context) (holder string, err error) {
	ls := l.ls
	if l.Held() {
		return ls.member, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ls.requestTimeout())
	defer cancel()
	sent := time.Now()
	rev, err := ls.kv.Create(ctx, l.key, []byte(ls.member))
	if err == nil {
		l.rev, l.sent = rev, sent
		return ls.member, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", fmt.Errorf("lease %s/%s: %w", ls.bucket, l.key, err)
	}
	e, err := ls.kv.Get(ctx, l.key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil // expired or released since
	}
	if err != nil {
		return "", fmt.Errorf("lease %s/%s: holder: %w", ls.bucket, l.key, err)
	}
	if holder := string(e.Value()); holder != ls.member {
		return holder, nil
	}
	sent = time.Now()
	rev, err = ls.kv.Update(ctx, l.key, []byte(ls.member), e.Revision())
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("lease %s/%s: take back: %w", ls.bucket, l.key, err)
	}
	l.rev, l.sent = rev, sent
	ls.m.takenBack.WithLabelValues(ls.bucket).Inc()
	ls.log.Warn("lease taken back: its key was still under this member's name", "key", l.key)
	return ls.member, nil
}

// Renew extends a held lease. While NATS cannot be reached (a timeout, a
// disconnect, no responders) it retries, logging each failure at WARN, and
// the lease stays held until its Deadline. It returns nil once renewed; an
// error wrapping ErrLeaseLost when the lease is lost (logged at ERROR with
// the member now holding the key), which happens only when another member
// holds the key, the key is gone, or the deadline passes without NATS
// answering; or ctx's error if ctx ends first, the lease still held until
// its deadline.
func (l *Lease) Renew(ctx context.Context) error {
	ls := l.ls
	if !l.Held() {
		return fmt.Errorf("lease %s/%s: %w: not held", ls.bucket, l.key, ErrLeaseLost)
	}
	var failure error
	for attempt := 1; ; attempt++ {
		left := time.Until(l.Deadline())
		if left <= 0 {
			why := failure
			if why == nil { // no attempt failed: the process itself did not run
				why = errors.New("this process was paused or starved of CPU past the deadline")
			}
			return l.lose("unreachable", "", fmt.Errorf("not renewed for %s: %w", time.Since(l.sent).Round(time.Millisecond), why))
		}
		err := l.renewOnce(ctx, min(left, ls.requestTimeout()))
		var lost *lostError
		switch {
		case err == nil:
			if attempt > 1 {
				ls.log.Info("lease renewed after failures", "key", l.key, "attempts", attempt)
			}
			return nil
		case errors.As(err, &lost):
			return l.lose("taken", lost.holder, err)
		case ctx.Err() != nil:
			return ctx.Err()
		}
		failure = err
		ls.m.renewFailures.WithLabelValues(ls.bucket).Inc()
		ls.log.Warn("lease renewal failed; still held, retrying", "key", l.key, "attempt", attempt,
			"held_for", time.Until(l.Deadline()).Round(time.Millisecond), "err", err)
		if err := retry.Sleep(ctx, min(ls.retryWait(), max(time.Until(l.Deadline()), 0))); err != nil {
			return err
		}
	}
}

// lostError is a renewal that found the key held by another member
// (holder) or gone (holder "").
type lostError struct {
	holder string
	err    error
}

func (e *lostError) Error() string {
	if e.holder == "" {
		return "the key expired or was deleted: " + e.err.Error()
	}
	return "held by " + e.holder + ": " + e.err.Error()
}

func (e *lostError) Unwrap() error { return e.err }

// renewOnce makes one attempt at renewing, within timeout. An error is a
// *lostError when the key is someone else's or gone, else a failure to
// reach NATS.
func (l *Lease) renewOnce(ctx context.Context, timeout time.Duration) error {
	ls := l.ls
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sent := time.Now()
	rev, err := ls.kv.Update(ctx, l.key, []byte(ls.member), l.rev)
	if err == nil {
		l.rev, l.sent = rev, sent
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return err
	}
	// The key changed since our last write: see who holds it.
	e, gerr := ls.kv.Get(ctx, l.key)
	switch {
	case errors.Is(gerr, jetstream.ErrKeyNotFound):
		return &lostError{err: err}
	case gerr != nil:
		return gerr
	case string(e.Value()) != ls.member:
		return &lostError{holder: string(e.Value()), err: err}
	}
	// Ours: an earlier renewal was written but its answer lost. Renew at
	// its revision; sent precedes this write too.
	rev, err = ls.kv.Update(ctx, l.key, []byte(ls.member), e.Revision())
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("key changed while renewing: %w", err) // look again
	}
	if err != nil {
		return err
	}
	l.rev, l.sent = rev, sent
	return nil
}

// lose marks the lease lost, counts and logs it, and returns the error
// Renew returns.
func (l *Lease) lose(reason, holder string, cause error) error {
	ls := l.ls
	l.rev = 0
	ls.m.lost.WithLabelValues(ls.bucket, reason).Inc()
	ls.log.Error("lease lost", "key", l.key, "reason", reason, "holder", holder, "err", cause)
	return fmt.Errorf("lease %s/%s: %w: %w", ls.bucket, l.key, ErrLeaseLost, cause)
}

// Release gives the lease up if it is held, so that another member may
// take it at once.
func (l *Lease) Release(ctx context.Context) error {
	if !l.Held() {
		return nil
	}
	ls := l.ls
	rev := l.rev
	l.rev = 0
	ctx, cancel := context.WithTimeout(ctx, ls.requestTimeout())
	defer cancel()
	if err := ls.kv.Delete(ctx, l.key, jetstream.LastRevision(rev)); err != nil {
		return fmt.Errorf("lease %s/%s: release: %w", ls.bucket, l.key, err)
	}
	return nil
}

// LeaseMetrics counts what happens to leases, by bucket.
type LeaseMetrics struct {
	lost          *prometheus.CounterVec
	renewFailures *prometheus.CounterVec
	takenBack     *prometheus.CounterVec
}

// NewLeaseMetrics returns the lease counters, registered on reg (none if
// nil). Registering again on the same registry returns the counters
// registered first, so every lease bucket of a process shares them.
func NewLeaseMetrics(reg prometheus.Registerer) (*LeaseMetrics, error) {
	m := &LeaseMetrics{
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_lease_lost_total",
			Help: "Leases this process lost, by bucket and reason: taken (another member holds the key, or it is gone) or unreachable (NATS did not answer before the lease ran out).",
		}, []string{"bucket", "reason"}),
		renewFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_lease_renew_failures_total",
			Help: "Lease renewals that could not reach NATS and were retried, the lease still held.",
		}, []string{"bucket"}),
		takenBack: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_lease_taken_back_total",
			Help: "Leases whose key was found under this process's name and taken back at once.",
		}, []string{"bucket"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []**prometheus.CounterVec{&m.lost, &m.renewFailures, &m.takenBack} {
		err := reg.Register(*c)
		var dup prometheus.AlreadyRegisteredError
		if errors.As(err, &dup) {
			if existing, ok := dup.ExistingCollector.(*prometheus.CounterVec); ok {
				*c = existing
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("lease metrics: %w", err)
		}
	}
	return m, nil
}
