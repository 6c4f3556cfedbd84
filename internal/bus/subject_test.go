package bus

import (
	"fmt"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

func TestPartitionStable(t *testing.T) {
	// Values checked against an independent FNV-1a implementation; they
	// must never change, or opportunities would move between partitions.
	tests := []struct {
		tenant, opp string
		n, want     int
	}{
		{"acme", "006A", 16, 8},
		{"acme", "006A", 7, 3},
		{"acme", "006B", 16, 1},
		{"globex", "opp-1", 16, 13},
		{"initech", "0065e00000XyZ", 16, 14},
		{"initech", "0065e00000XyZ", 7, 2},
		{"acme", "", 16, 0},
		{"", "", 16, 0},
		{"acme", "006A", 1, 0},
		{"acme", "006A", 0, 0},
		{"acme", "006A", -3, 0},
	}
	for _, tt := range tests {
		if got := Partition(tt.tenant, tt.opp, tt.n); got != tt.want {
			t.Errorf("Partition(%q, %q, %d) = %d, want %d", tt.tenant, tt.opp, tt.n, got, tt.want)
		}
	}
}

func TestPartitionSeparatesTenant(t *testing.T) {
	// The NUL separator keeps ("ab", "c") and ("a", "bc") apart.
	diff := 0
	for i := range 100 {
		a := Partition("ab", fmt.Sprint("c", i), 1<<20)
		b := Partition("a", fmt.Sprint("bc", i), 1<<20)
		if a != b {
			diff++
		}
	}
	if diff < 95 {
		t.Errorf("only %d of 100 split pairs hash apart", diff)
	}
}

func TestPartitionDistribution(t *testing.T) {
	const n, opps = 16, 32000
	counts := make([]int, n)
	for i := range opps {
		p := Partition("acme", fmt.Sprintf("006%08d", i), n)
		if p < 0 || p >= n {
			t.Fatalf("partition %d out of range", p)
		}
		counts[p]++
	}
	want := opps / n
	for p, c := range counts {
		// Within 10% of uniform: sqrt(2000) ≈ 45, so 200 is > 4 sigma.
		if c < want-want/10 || c > want+want/10 {
			t.Errorf("partition %d has %d opportunities, want about %d (all: %v)", p, c, want, counts)
		}
	}
}

func TestSubject(t *testing.T) {
	at := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		ev   event.Event
		n    int
		want string
	}{
		{event.Event{Tenant: "acme", Source: "salesforce", Type: event.StageChanged, OpportunityID: "006A", OccurredAt: at}, 16,
			"cf.events.acme.salesforce.opportunity_stage_changed.8"},
		{event.Event{Tenant: "acme", Source: "gong", Type: event.CallCompleted, OccurredAt: at}, 16,
			"cf.events.acme.gong.call_completed.0"},
		{event.Event{Tenant: "globex", Source: "hubspot", Type: event.OpportunityCreated, OpportunityID: "opp-1"}, 16,
			"cf.events.globex.hubspot.opportunity_created.13"},
		{event.Event{Tenant: "acme", Source: "salesforce", Type: event.StageChanged, OpportunityID: "006A"}, 7,
			"cf.events.acme.salesforce.opportunity_stage_changed.3"},
	}
	for _, tt := range tests {
		if got := Subject(tt.ev, tt.n); got != tt.want {
			t.Errorf("Subject(%+v, %d) = %q, want %q", tt.ev, tt.n, got, tt.want)
		}
	}
}

func TestSubjectMatchesPartitionFilter(t *testing.T) {
	for i := range 200 {
		ev := event.Event{Tenant: "t1", Source: "s-1", Type: event.ContactAdded, OpportunityID: fmt.Sprint("o", i)}
		p := Partition(ev.Tenant, ev.OpportunityID, 16)
		if !subjectMatches(PartitionFilter(p), Subject(ev, 16)) {
			t.Fatalf("subject %q does not match filter %q", Subject(ev, 16), PartitionFilter(p))
		}
		other := (p + 1) % 16
		if subjectMatches(PartitionFilter(other), Subject(ev, 16)) {
			t.Fatalf("subject %q matches another partition's filter %q", Subject(ev, 16), PartitionFilter(other))
		}
	}
}

// subjectMatches is a minimal NATS wildcard matcher for '*' tokens.
func subjectMatches(filter, subject string) bool {
	f, s := splitDots(filter), splitDots(subject)
	if len(f) != len(s) {
		return false
	}
	for i := range f {
		if f[i] != "*" && f[i] != s[i] {
			return false
		}
	}
	return true
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func TestNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{DeriveConsumer(0), "derive-p00"},
		{DeriveConsumer(7), "derive-p07"},
		{DeriveConsumer(15), "derive-p15"},
		{DeriveConsumer(123), "derive-p123"},
		{PartitionFilter(3), "cf.events.*.*.*.3"},
		{DLQSubject("cf.events.acme.gong.call_completed.4"), "cf.dlq.acme.gong.call_completed.4"},
		{DLQSubject("cf.events."), "cf.dlq.unknown"},
		{DLQSubject("other.subject"), "cf.dlq.unknown"},
		{TypeToken(event.ForecastCategoryChanged), "opportunity_forecast_category_changed"},
		{MsgID(event.Event{Tenant: "acme", Source: "gong", ID: "c-1"}), "acme:gong:c-1"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
