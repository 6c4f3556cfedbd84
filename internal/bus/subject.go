package bus

import (
	"hash/fnv"
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

	// DefaultDuplicateWindow is the duplicate window of the streams
	// (see Options.DuplicateWindow).
	DefaultDuplicateWindow = 2 * time.Minute
)

// Partition returns the partition of an opportunity's events: FNV-1a 32 of
// tenant, a NUL byte and the opportunity id, modulo n. Events without an
// opportunity id, and any n < 1, give partition 0.
func Partition(tenant, opportunityID string, n int) int {
	if opportunityID == "" || n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(opportunityID))
	return int(h.Sum32() % uint32(n))
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
