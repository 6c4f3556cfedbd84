// Package gongsync polls Gong for call data and publishes it as canonical
// events: `commitflow sync gong`.
//
// A poll asks POST /v2/calls/extensive (Gong API reference, "Retrieve
// detailed call data by various filters") for the calls that started in a
// window [from, to), page by page with the cursor each answer carries,
// authenticated with the access key and secret (HTTP basic). Each page is
// mapped as the Gong webhook and `import --format gong-json` map call data
// (webhook.Gong: one call.completed per call and linked opportunity, ids
// from the call and opportunity ids) and published through the same
// publisher as every other source, so polling the same calls again
// publishes the same message ids. A call the mapping refuses, or whose
// event fails validation, goes to CF_DLQ with the reason.
//
// The position — the start of the window not yet done, the window's end
// and the next page's cursor — is kept per tenant in the JetStream
// key-value bucket CF_GONG_SYNC and written after each page's events are
// stored, so a poller killed or restarted resumes at the page it had not
// finished. A page published but not yet recorded is asked for and
// published again, with the same message ids, which the stream drops
// within its duplicate window. One poller per tenant runs at a time: it
// holds the tenant's lease in CF_GONG_SYNC_LEASE (bus.Leases), and every
// position write is a compare-and-set on the revision it read.
//
// Windows end Settle before now, because Gong lists a call only once it
// has processed the recording, and span at most MaxWindow, so that a
// backfill advances window by window.
package gongsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/retry"
	"github.com/commitflow/commitflow/internal/webhook"
)

// The key-value buckets, one key per tenant.
const (
	// StateBucket holds each tenant's position (State, as JSON).
	StateBucket = "CF_GONG_SYNC"
	// LeaseBucket holds each tenant's poller lease.
	LeaseBucket = "CF_GONG_SYNC_LEASE"
)

// MaxWindow is the longest window a request asks for.
const MaxWindow = 7 * 24 * time.Hour

// MinWindow is the shortest new window a poll asks for: a poll sooner
// after the last one asks nothing, rather than spend a request of the
// tenant's Gong quota on seconds.
const MinWindow = time.Minute

// ErrBusy is returned by Run with once when another poller holds the
// tenant's lease.
var ErrBusy = errors.New("another gong poller runs for this tenant")

// Publisher publishes events and returns once the stream has stored every
// one; *bus.Publisher is one.
type Publisher interface {
	PublishBatch(ctx context.Context, evs []event.Event) error
}

// Config configures a Syncer. Zero values take the defaults noted on each
// field.
type Config struct {
	// BaseURL is the tenant's Gong API base, e.g.
	// https://us-12345.api.gong.io (required).
	BaseURL string
	// AccessKey and AccessKeySecret authenticate the requests (required).
	AccessKey, AccessKeySecret string
	// Tenant the events belong to (required).
	Tenant string
	// From is where polling starts when no position is kept (required
	// then); a kept position wins.
	From time.Time
	// Settle is how long before now a window ends (default 2h): Gong
	// lists a call once it has processed its recording.
	Settle time.Duration
	// Interval is the pause between polls of Run (default 5m).
	Interval time.Duration
	// Member names this process in the lease bucket (required; see
	// bus.ValidMember).
	Member string
	// LeaseTTL is how long the lease of a poller that died keeps others
	// out (default 15s).
	LeaseTTL time.Duration
	// ServerRetries is how often a request that failed with a 5xx or a
	// connection error is sent again (default 5), after RetryBase
	// (default 1s) doubling to 30s.
	ServerRetries int
	RetryBase     time.Duration
	// HTTPClient sends the requests (default: a client with a 60s
	// timeout).
	HTTPClient *http.Client
	// Publisher stores the events (required).
	Publisher Publisher
	// DeadLetters are published with these options (default
	// bus.PublishOptions{}).
	PublishOptions bus.PublishOptions
	// Logger receives progress and retries; nil discards them.
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// State is a tenant's position, as kept in StateBucket.
type State struct {
	// From is the start of the first window not done: every call that
	// started before it has been published.
	From time.Time `json:"from"`
	// To is the end of the window being polled; zero between windows.
	To time.Time `json:"to,omitzero"`
	// Cursor is the cursor of the window's next page; "" for its first.
	Cursor string `json:"cursor,omitempty"`
	// UpdatedAt is when the position was written.
	UpdatedAt time.Time `json:"updated_at"`
}

// Summary counts what a poll did.
type Summary struct {
	Pages, Calls, Events, Refused int
	// Through is the position's From after the poll.
	Through time.Time
}

// Syncer polls one tenant's Gong calls.
type Syncer struct {
	cfg        Config
	js         jetstream.JetStream
	partitions int
	kv         jetstream.KeyValue
	leases     *bus.Leases
	log        *slog.Logger
}

// Open returns a Syncer publishing to the streams of js (declared, see
// bus.Declare), creating its key-value buckets if needed.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Syncer, error) {
	switch {
	case cfg.BaseURL == "" || cfg.AccessKey == "" || cfg.AccessKeySecret == "":
		return nil, errors.New("gong sync: the base URL, the access key and its secret are required")
	case !event.ValidToken(cfg.Tenant):
		return nil, fmt.Errorf("gong sync: invalid tenant %q", cfg.Tenant)
	case cfg.Publisher == nil:
		return nil, errors.New("gong sync: no publisher")
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Hour
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Minute
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = bus.DefaultLeaseTTL
	}
	if cfg.ServerRetries <= 0 {
		cfg.ServerRetries = 5
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: time.Minute}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger.With("tenant", cfg.Tenant, "member", cfg.Member)
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		return nil, fmt.Errorf("gong sync: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      StateBucket,
		Description: "commitflow sync gong: each tenant's position (window and page cursor)",
		History:     5,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("gong sync: bucket %s: %w", StateBucket, err)
	}
	leases, err := bus.OpenLeases(ctx, js, bus.LeaseConfig{
		Bucket:      LeaseBucket,
		Description: "commitflow sync gong: the poller of each tenant",
		Member:      cfg.Member,
		TTL:         cfg.LeaseTTL,
		Logger:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("gong sync: %w", err)
	}
	return &Syncer{cfg: cfg, js: js, partitions: parts, kv: kv, leases: leases, log: log}, nil
}

// Run holds the tenant's lease and polls until ctx ends, every Interval;
// with once it polls once and returns the poll's error, or ErrBusy when
// another poller holds the lease. Without once, it waits for a busy lease
// and logs a failed poll and tries again at the next interval. It returns
// nil when ctx ends, and an error wrapping bus.ErrLeaseLost when the lease
// is lost.
func (s *Syncer) Run(ctx context.Context, once bool, report func(Summary)) error {
	lease := s.leases.Lease(s.cfg.Tenant)
	for !lease.Held() {
		holder, err := lease.Acquire(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			return fmt.Errorf("gong sync: %w", err)
		case lease.Held():
		case once:
			return fmt.Errorf("%w (held by %s; it has the lease for up to %s after it stops)", ErrBusy, holder, s.cfg.LeaseTTL)
		default:
			s.log.Info("another poller holds the lease; waiting", "holder", holder)
			if retry.Sleep(ctx, min(s.cfg.Interval, s.cfg.LeaseTTL/3)) != nil {
				return nil
			}
		}
	}
	pctx, cancel := context.WithCancelCause(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		for retry.Sleep(pctx, s.cfg.LeaseTTL/3) == nil {
			if err := lease.Renew(pctx); err != nil {
				cancel(err)
				return
			}
		}
	}()
	defer func() {
		cancel(nil)
		<-renewed
		rctx, done := context.WithTimeout(context.Background(), 5*time.Second)
		defer done()
		if err := lease.Release(rctx); err != nil {
			s.log.Warn("lease not released; it expires by itself", "err", err)
		}
	}()
	for {
		sum, err := s.Poll(pctx)
		if report != nil && (err == nil || sum.Pages > 0) {
			report(sum)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(context.Cause(pctx), bus.ErrLeaseLost):
			return fmt.Errorf("gong sync: %w", context.Cause(pctx))
		case once:
			return err
		case err != nil:
			s.log.Error("gong poll failed; trying again at the next interval", "err", err, "retry_in", s.cfg.Interval)
		}
		if retry.Sleep(pctx, s.cfg.Interval) != nil {
			if err := context.Cause(pctx); errors.Is(err, bus.ErrLeaseLost) {
				return fmt.Errorf("gong sync: %w", err)
			}
			return nil
		}
	}
}

// Poll polls from the kept position (or From) window by window until the
// windows reach Settle before now, recording the position after each
// page. The caller holds the lease (Run does).
func (s *Syncer) Poll(ctx context.Context) (Summary, error) {
	st, rev, err := s.State(ctx)
	if err != nil {
		return Summary{}, err
	}
	if rev == 0 {
		if s.cfg.From.IsZero() {
			return Summary{}, errors.New("gong sync: no position kept for this tenant: give where to start (--from)")
		}
		st.From = s.cfg.From.UTC()
	}
	sum := Summary{Through: st.From}
	end := s.cfg.Now().Add(-s.cfg.Settle).UTC().Truncate(time.Second)
	for {
		if st.To.IsZero() {
			if end.Sub(st.From) < MinWindow {
				return sum, nil
			}
			st.To = st.From.Add(MaxWindow)
			if st.To.After(end) {
				st.To = end
			}
		}
		p, err := s.fetch(ctx, st.From, st.To, st.Cursor)
		if errors.Is(err, errCursorRejected) {
			s.log.Warn("page cursor refused; polling the window again from its start (the same message ids)", "from", st.From, "to", st.To, "err", err)
			st.Cursor = ""
			continue
		}
		if err != nil {
			return sum, fmt.Errorf("gong sync: window %s to %s: %w", st.From.Format(time.RFC3339), st.To.Format(time.RFC3339), err)
		}
		events, refused, err := s.store(ctx, p.Calls)
		if err != nil {
			return sum, err
		}
		sum.Pages, sum.Calls, sum.Events, sum.Refused = sum.Pages+1, sum.Calls+len(p.Calls), sum.Events+events, sum.Refused+refused
		st.Cursor = p.Cursor
		if st.Cursor == "" { // the window is done
			st.From, st.To = st.To, time.Time{}
		}
		if rev, err = s.save(ctx, st, rev); err != nil {
			return sum, err
		}
		sum.Through = st.From
		s.log.Debug("gong page stored", "calls", len(p.Calls), "events", events, "refused", refused, "from", st.From, "to", st.To)
	}
}

// store maps calls, publishes their valid events and dead-letters the
// others, and returns how many of each.
func (s *Syncer) store(ctx context.Context, calls []webhook.GongCall) (int, int, error) {
	now := s.cfg.Now().UTC()
	var evs []event.Event
	var letters []*nats.Msg
	for _, c := range calls {
		res, err := webhook.Gong(s.cfg.Tenant, c.Data, now)
		if err != nil { // a call is always one of the shapes
			return 0, 0, fmt.Errorf("gong sync: %w", err)
		}
		for _, rf := range res.Refused {
			letters = append(letters, s.letter(bus.EventsPrefix+s.cfg.Tenant+"."+webhook.GongSource+".unmapped.0", c.Data, rf.Reason))
		}
		for _, ev := range res.Events {
			if err := ev.Validate(); err != nil {
				letters = append(letters, s.letter(bus.Subject(ev, s.partitions), c.Data, ev.ID+": "+err.Error()))
				continue
			}
			evs = append(evs, ev)
		}
	}
	if len(evs) > 0 {
		if err := s.cfg.Publisher.PublishBatch(ctx, evs); err != nil {
			return 0, 0, fmt.Errorf("gong sync: %w", err)
		}
	}
	if len(letters) > 0 {
		s.log.Warn("gong calls refused; dead-lettered", "refused", len(letters))
		if err := bus.PublishMsgs(ctx, s.js, letters, s.cfg.PublishOptions); err != nil {
			return 0, 0, fmt.Errorf("gong sync: dead letters: %w", err)
		}
	}
	return len(evs), len(letters), nil
}

// letter is the CF_DLQ message of a call refused for reason, which would
// have gone on subject. Its Nats-Msg-Id hashes the subject, reason and
// bytes, so that a call polled again is dead-lettered once within the
// duplicate window.
func (s *Syncer) letter(subject string, data []byte, reason string) *nats.Msg {
	m := nats.NewMsg(bus.DLQSubject(subject))
	m.Data = data
	m.Header.Set(bus.ErrorHeader, reason)
	m.Header.Set(bus.SubjectHeader, subject)
	h := sha256.New()
	for _, part := range [][]byte{[]byte(subject), []byte(reason), data} {
		h.Write(part)
		h.Write([]byte{0})
	}
	m.Header.Set(jetstream.MsgIDHeader, "gong-sync:"+hex.EncodeToString(h.Sum(nil))[:32])
	return m
}

// State returns the tenant's kept position and its revision; revision 0
// when none is kept.
func (s *Syncer) State(ctx context.Context) (State, uint64, error) {
	e, err := s.kv.Get(ctx, s.cfg.Tenant)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return State{}, 0, nil
	}
	if err != nil {
		return State{}, 0, fmt.Errorf("gong sync: read the position: %w", err)
	}
	var st State
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return State{}, 0, fmt.Errorf("gong sync: the position in %s/%s: %w", StateBucket, s.cfg.Tenant, err)
	}
	return st, e.Revision(), nil
}

// save writes st if the position is still at revision rev (0: none yet)
// and returns the new revision.
func (s *Syncer) save(ctx context.Context, st State, rev uint64) (uint64, error) {
	st.UpdatedAt = s.cfg.Now().UTC()
	data, err := json.Marshal(st)
	if err != nil {
		return 0, err
	}
	if rev == 0 {
		rev, err = s.kv.Create(ctx, s.cfg.Tenant, data)
	} else {
		rev, err = s.kv.Update(ctx, s.cfg.Tenant, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("gong sync: another poller moved the position meanwhile: %w", err)
	}
	if err != nil {
		return 0, fmt.Errorf("gong sync: write the position: %w", err)
	}
	return rev, nil
}
