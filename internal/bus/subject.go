package bus

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// Stream, subject and consumer names.
const (
	EventsStream  = "CF_EVENTS"
	DLQStream     = "CF_DLQ"
	DerivedStream = "CF_DERIVED"

	EventsPrefix  = "cf.events."
	DLQPrefix     = "cf.dlq."
	DerivedPrefix = "cf.derived."

	// PartitionsKey is the CF_EVENTS metadata key holding the partition count.
	PartitionsKey = "commitflow.partitions"

	// DefaultPartitions is the partition count of a new CF_EVENTS stream.
	DefaultPartitions = 16

	// DefaultDuplicateWindow is the duplicate window of CF_EVENTS and
	// CF_DERIVED (see Options.DuplicateWindow).
	DefaultDuplicateWindow = 30 * time.Second

	// DLQDuplicateWindow is the least duplicate window of CF_DLQ: longer
	// than a refused message takes to come back (the consumers' AckWait)
	// when its acknowledgement was lost, so that it is dead-lettered once.
	// Dead letters are few; their ids cost nothing to keep.
	DLQDuplicateWindow = 5 * time.Minute
)

// Partition returns the partition of an opportunity's events: FNV-1a 32 of
// tenant, a NUL byte and the opportunity id, modulo n. Events without an
// opportunity id, and any n < 1, give partition 0.
func Partition(tenant, opportunityID string, n int) int {
	if opportunityID == "" || n <= 1 {
		return 0
	}
	// FNV-1a written out: hash/fnv through its interface allocates, and
	// the ingest worker checks the partition of every message.
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	for i := 0; i < len(tenant); i++ {
		h = (h ^ uint32(tenant[i])) * prime
	}
	h *= prime // the NUL byte between them
	for i := 0; i < len(opportunityID); i++ {
		h = (h ^ uint32(opportunityID[i])) * prime
	}
	return int(uint64(h) % uint64(n))
}

// Subject returns the subject ev is published on, given the stream's
// partition count.
func Subject(ev event.Event, partitions int) string {
	p := Partition(ev.Tenant, ev.OpportunityID, partitions)
	var b strings.Builder
	b.Grow(len(EventsPrefix) + len(ev.Tenant) + len(ev.Source) + len(ev.Type) + 8)
	b.WriteString(EventsPrefix)
	b.WriteString(ev.Tenant)
	b.WriteByte('.')
	b.WriteString(ev.Source)
	b.WriteByte('.')
	b.WriteString(TypeToken(ev.Type))
	b.WriteByte('.')
	b.WriteString(strconv.Itoa(p))
	return b.String()
}

// subjectTokens is the number of tokens of an event subject:
// cf.events.<tenant>.<source>.<type>.<partition>.
const subjectTokens = 6

// SubjectError is the error of CheckSubject: a message's subject is not
// the one its event is published on. The ingest worker dead-letters such a
// message; otherwise a producer allowed to publish on one tenant's subjects
// could write into another tenant, or store an event that no partition's
// consumer derives.
type SubjectError struct {
	// Subject is the message's subject; Want is Subject(ev, partitions).
	Subject, Want string
	// Reason says which tokens differ, e.g. `subject tenant "acme"
	// differs from body tenant "globex"`.
	Reason string
}

func (e *SubjectError) Error() string { return e.Reason }

// CheckSubject returns a *SubjectError unless subject is exactly
// Subject(ev, partitions): the tenant, source, type token and partition
// of the message's subject must be those of its body.
func CheckSubject(subject string, ev event.Event, partitions int) error {
	if isSubject(subject, ev, partitions) {
		return nil
	}
	want := Subject(ev, partitions)
	return &SubjectError{Subject: subject, Want: want, Reason: subjectMismatch(subject, ev, partitions)}
}

// isSubject reports whether subject is Subject(ev, partitions) without
// building that: the ingest worker checks every message.
func isSubject(subject string, ev event.Event, partitions int) bool {
	rest, ok := strings.CutPrefix(subject, EventsPrefix)
	if !ok {
		return false
	}
	if rest, ok = cutToken(rest, ev.Tenant); !ok {
		return false
	}
	if rest, ok = cutToken(rest, ev.Source); !ok {
		return false
	}
	t := string(ev.Type) // its token has '_' for '.'
	if len(rest) <= len(t) || rest[len(t)] != '.' {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c == '.' {
			c = '_'
		}
		if rest[i] != c {
			return false
		}
	}
	return rest[len(t)+1:] == strconv.Itoa(Partition(ev.Tenant, ev.OpportunityID, partitions))
}

// cutToken returns s after tok and the dot that follows it, if s starts
// with them.
func cutToken(s, tok string) (string, bool) {
	if len(s) <= len(tok) || s[len(tok)] != '.' || s[:len(tok)] != tok {
		return "", false
	}
	return s[len(tok)+1:], true
}

// subjectMismatch says how subject differs from Subject(ev, partitions),
// naming every token that does, with long values cut short.
func subjectMismatch(subject string, ev event.Event, partitions int) string {
	rest, ok := strings.CutPrefix(subject, EventsPrefix)
	if !ok {
		return fmt.Sprintf("subject %s is not under %s", quoteCut(subject), EventsPrefix)
	}
	if n := strings.Count(subject, ".") + 1; n != subjectTokens {
		return fmt.Sprintf("subject %s has %d tokens, want %d", quoteCut(subject), n, subjectTokens)
	}
	tok := strings.Split(rest, ".")
	var diffs []string
	differs := func(what, got, want string) {
		if got != want {
			diffs = append(diffs, fmt.Sprintf("subject %s %s differs from body %s %s", what, quoteCut(got), what, quoteCut(want)))
		}
	}
	differs("tenant", tok[0], ev.Tenant)
	differs("source", tok[1], ev.Source)
	if want := TypeToken(ev.Type); tok[2] != want {
		diffs = append(diffs, fmt.Sprintf("subject type %s differs from body type %s (token %s)", quoteCut(tok[2]), quoteCut(string(ev.Type)), quoteCut(want)))
	}
	if p := Partition(ev.Tenant, ev.OpportunityID, partitions); tok[3] != strconv.Itoa(p) {
		got := quoteCut(tok[3])
		if n, err := strconv.Atoi(tok[3]); err == nil && strconv.Itoa(n) == tok[3] {
			got = tok[3]
		}
		diffs = append(diffs, fmt.Sprintf("subject partition %s is not the event's partition %d of %d", got, p, max(partitions, 1)))
	}
	if len(diffs) == 0 {
		// Unreachable for a validated event, whose tokens hold no '.'.
		return fmt.Sprintf("subject %s is not %s", quoteCut(subject), quoteCut(Subject(ev, partitions)))
	}
	return strings.Join(diffs, "; ")
}

// quoteCut quotes s for an error message, cut to its first 64 bytes: a
// hostile subject may be kilobytes long.
func quoteCut(s string) string {
	const limit = 64
	if len(s) <= limit {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:limit]) + fmt.Sprintf("... (%d bytes)", len(s))
}

// TypeToken returns t as one subject token: '.' replaced by '_'.
func TypeToken(t event.Type) string {
	return strings.ReplaceAll(string(t), ".", "_")
}

// MsgID returns the Nats-Msg-Id of ev: tenant:source:id.
func MsgID(ev event.Event) string {
	return ev.Tenant + ":" + ev.Source + ":" + ev.ID
}

// DeriveConsumer returns the name of partition p's derive consumer,
// "derive-pNN".
func DeriveConsumer(p int) string {
	s := strconv.Itoa(p)
	if len(s) < 2 {
		s = "0" + s
	}
	return "derive-p" + s
}

// PartitionFilter returns the filter subject of partition p's consumer:
// cf.events.*.*.*.<p>.
func PartitionFilter(p int) string {
	return EventsPrefix + "*.*.*." + strconv.Itoa(p)
}

// DLQSubject returns the dead-letter subject for a message received on
// subject: cf.dlq. followed by the subject without its cf.events. prefix,
// or cf.dlq.unknown if the subject is not a raw-event subject.
func DLQSubject(subject string) string {
	rest, ok := strings.CutPrefix(subject, EventsPrefix)
	if !ok || rest == "" {
		rest = "unknown"
	}
	return DLQPrefix + rest
}
