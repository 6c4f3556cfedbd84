package bus

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
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

// TestPartitionLargeCount checks partition counts beyond 32 bits: the hash
// is reduced modulo n, not modulo n truncated to 32 bits (which was zero for
// n = 1<<32, a division by zero).
func TestPartitionLargeCount(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("int holds no partition count beyond 32 bits")
	}
	for _, n := range []int{1 << 32, 1<<32 + 16, math.MaxInt} {
		p := Partition("acme", "006A", n)
		if p < 0 || p >= n || p%16 != Partition("acme", "006A", 16) {
			t.Errorf("Partition(acme, 006A, %d) = %d, want the 32-bit hash (%% 16 = %d)", n, p, Partition("acme", "006A", 16))
		}
	}
}

func TestCheckSubject(t *testing.T) {
	stage := event.Event{Tenant: "acme", Source: "salesforce", Type: event.StageChanged, OpportunityID: "006A"} // partition 8 of 16
	call := event.Event{Tenant: "acme", Source: "gong", Type: event.CallCompleted}                              // no opportunity: partition 0
	globex := stage
	globex.Tenant = "globex"
	globexP := Partition("globex", "006A", 16)
	long := strings.Repeat("a", 5000)
	tests := []struct {
		name    string
		subject string
		ev      event.Event
		n       int
		want    string // the error, "" to accept
	}{
		{"exact", "cf.events.acme.salesforce.opportunity_stage_changed.8", stage, 16, ""},
		{"exact, no opportunity", "cf.events.acme.gong.call_completed.0", call, 16, ""},
		{"exact, 7 partitions", "cf.events.acme.salesforce.opportunity_stage_changed.3", stage, 7, ""},
		{"exact, one partition", "cf.events.acme.salesforce.opportunity_stage_changed.0", stage, 1, ""},
		{"exact, no partition count", "cf.events.acme.salesforce.opportunity_stage_changed.0", stage, 0, ""},

		// One token differs.
		{"tenant", "cf.events.acme.salesforce.opportunity_stage_changed." + strconv.Itoa(globexP), globex, 16,
			`subject tenant "acme" differs from body tenant "globex"`},
		{"source", "cf.events.acme.hubspot.opportunity_stage_changed.8", stage, 16,
			`subject source "hubspot" differs from body source "salesforce"`},
		{"type", "cf.events.acme.salesforce.opportunity_closed_won.8", stage, 16,
			`subject type "opportunity_closed_won" differs from body type "opportunity.stage_changed" (token "opportunity_stage_changed")`},
		{"partition", "cf.events.acme.salesforce.opportunity_stage_changed.999", stage, 16,
			`subject partition 999 is not the event's partition 8 of 16`},
		{"partition of another count", "cf.events.acme.salesforce.opportunity_stage_changed.8", stage, 7,
			`subject partition 8 is not the event's partition 3 of 7`},
		{"partition with a leading zero", "cf.events.acme.salesforce.opportunity_stage_changed.08", stage, 16,
			`subject partition "08" is not the event's partition 8 of 16`},
		{"partition with a sign", "cf.events.acme.salesforce.opportunity_stage_changed.+8", stage, 16,
			`subject partition "+8" is not the event's partition 8 of 16`},
		{"negative partition", "cf.events.acme.salesforce.opportunity_stage_changed.-8", stage, 16,
			`subject partition -8 is not the event's partition 8 of 16`},
		{"partition not a number", "cf.events.acme.salesforce.opportunity_stage_changed.eight", stage, 16,
			`subject partition "eight" is not the event's partition 8 of 16`},
		{"partition overflowing int", "cf.events.acme.salesforce.opportunity_stage_changed.99999999999999999999", stage, 16,
			`subject partition "99999999999999999999" is not the event's partition 8 of 16`},
		{"tenant differs in case", "cf.events.ACME.salesforce.opportunity_stage_changed.8", stage, 16,
			`subject tenant "ACME" differs from body tenant "acme"`},

		// Several tokens differ: each is named.
		{"all four", "cf.events.globex.hubspot.call_completed.1", stage, 16,
			`subject tenant "globex" differs from body tenant "acme"; subject source "hubspot" differs from body source "salesforce"; ` +
				`subject type "call_completed" differs from body type "opportunity.stage_changed" (token "opportunity_stage_changed"); ` +
				`subject partition 1 is not the event's partition 8 of 16`},

		// Wrong token counts.
		{"tenant only", "cf.events.acme", stage, 16, `subject "cf.events.acme" has 3 tokens, want 6`},
		{"trailing dot", "cf.events.acme.", stage, 16, `subject "cf.events.acme." has 4 tokens, want 6`},
		{"no partition", "cf.events.acme.salesforce.opportunity_stage_changed", stage, 16,
			`subject "cf.events.acme.salesforce.opportunity_stage_changed" has 5 tokens, want 6`},
		{"extra token", "cf.events.acme.salesforce.opportunity_stage_changed.8.x", stage, 16,
			`subject "cf.events.acme.salesforce.opportunity_stage_changed.8.x" has 7 tokens, want 6`},
		{"raw type with its dot", "cf.events.acme.salesforce.opportunity.stage_changed.8", stage, 16,
			`subject "cf.events.acme.salesforce.opportunity.stage_changed.8" has 7 tokens, want 6`},
		{"prefix only", "cf.events.", stage, 16, `subject "cf.events." has 3 tokens, want 6`},

		// Not an event subject.
		{"empty", "", stage, 16, `subject "" is not under cf.events.`},
		{"other prefix", "cf.dlq.acme.salesforce.opportunity_stage_changed.8", stage, 16,
			`subject "cf.dlq.acme.salesforce.opportunity_stage_changed.8" is not under cf.events.`},
		{"prefix without its dot", "cf.events", stage, 16, `subject "cf.events" is not under cf.events.`},
		{"upper-case prefix", "CF.EVENTS.acme.salesforce.opportunity_stage_changed.8", stage, 16,
			`subject "CF.EVENTS.acme.salesforce.opportunity_stage_changed.8" is not under cf.events.`},

		// Hostile subjects.
		{"wildcard tenant", "cf.events.*.salesforce.opportunity_stage_changed.8", stage, 16,
			`subject tenant "*" differs from body tenant "acme"`},
		{"wildcards everywhere", "cf.events.*.*.*.*", stage, 16,
			`subject tenant "*" differs from body tenant "acme"; subject source "*" differs from body source "salesforce"; ` +
				`subject type "*" differs from body type "opportunity.stage_changed" (token "opportunity_stage_changed"); ` +
				`subject partition "*" is not the event's partition 8 of 16`},
		{"full wildcard", "cf.events.>", stage, 16, `subject "cf.events.>" has 3 tokens, want 6`},
		{"empty tenant", "cf.events..salesforce.opportunity_stage_changed.8", stage, 16,
			`subject tenant "" differs from body tenant "acme"`},
		{"empty partition", "cf.events.acme.salesforce.opportunity_stage_changed.", stage, 16,
			`subject partition "" is not the event's partition 8 of 16`},
		{"all tokens empty", "cf.events....", call, 16,
			`subject tenant "" differs from body tenant "acme"; subject source "" differs from body source "gong"; ` +
				`subject type "" differs from body type "call.completed" (token "call_completed"); ` +
				`subject partition "" is not the event's partition 0 of 16`},
		{"space in a token", "cf.events.acme .salesforce.opportunity_stage_changed.8", stage, 16,
			`subject tenant "acme " differs from body tenant "acme"`},
		{"control character", "cf.events.acme\x00.salesforce.opportunity_stage_changed.8", stage, 16,
			`subject tenant "acme\x00" differs from body tenant "acme"`},
		{"very long tenant", "cf.events." + long + ".salesforce.opportunity_stage_changed.8", stage, 16,
			`subject tenant "` + long[:64] + `"... (5000 bytes) differs from body tenant "acme"`},
		{"very long subject", "cf.events." + strings.Repeat("a.", 2500), stage, 16,
			`subject "cf.events.` + strings.Repeat("a.", 27) + `"... (5010 bytes) has 2503 tokens, want 6`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSubject(tt.subject, tt.ev, tt.n)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var se *SubjectError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a *SubjectError", err)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n %s\nwant\n %s", err, tt.want)
			}
			if se.Subject != tt.subject || se.Want != Subject(tt.ev, tt.n) {
				t.Errorf("SubjectError{Subject: %.80q, Want: %q}, want %.80q and %q", se.Subject, se.Want, tt.subject, Subject(tt.ev, tt.n))
			}
		})
	}
}

// FuzzCheckSubject: CheckSubject never panics, accepts exactly the subject
// Subject gives, and explains every refusal in a bounded message.
func FuzzCheckSubject(f *testing.F) {
	f.Add("cf.events.acme.salesforce.opportunity_stage_changed.8", "acme", "salesforce", "opportunity.stage_changed", "006A", 16)
	f.Add("cf.events.acme.gong.call_completed.0", "acme", "gong", "call.completed", "", 16)
	f.Add("cf.events.acme.salesforce.opportunity_stage_changed.999", "globex", "salesforce", "opportunity.stage_changed", "006A", 16)
	f.Add("cf.events.acme", "acme", "s", "t", "o", 1)
	f.Add("cf.events.*.*.*.>", "*", "*", "*", "", 0)
	f.Add("cf.events.a.b.c.d.0", "a.b", "c", "d", "", -1)
	f.Add("cf.events....", "", "", "", "", 1<<32)
	f.Add("cf.events.acme.s.t.08", "acme", "s", "t", "x", 16)
	f.Fuzz(func(t *testing.T, subject, tenant, source, typ, opp string, n int) {
		ev := event.Event{Tenant: tenant, Source: source, Type: event.Type(typ), OpportunityID: opp}
		want := Subject(ev, n)
		if err := CheckSubject(want, ev, n); err != nil {
			t.Fatalf("CheckSubject(Subject(ev, %d)) refused: %v", n, err)
		}
		err := CheckSubject(subject, ev, n)
		if (err == nil) != (subject == want) {
			t.Fatalf("CheckSubject(%q, %q) = %v", subject, want, err)
		}
		if err == nil {
			return
		}
		var se *SubjectError
		if !errors.As(err, &se) || se.Reason == "" || se.Want != want || se.Subject != subject {
			t.Fatalf("CheckSubject(%q, %q) = %#v", subject, want, err)
		}
		if len(se.Reason) > 4096 {
			t.Fatalf("reason of %d bytes", len(se.Reason))
		}
	})
}

// TestPartitionIsFNV: Partition is FNV-1a 32 of tenant, NUL and the
// opportunity id, as hash/fnv computes it, for any bytes.
func TestPartitionIsFNV(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		b := make([]byte, r.IntN(40))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return string(b)
	}
	for range 10000 {
		tenant, opp, n := str(), str()+"x", 2+r.IntN(1000)
		h := fnv.New32a()
		h.Write([]byte(tenant + "\x00" + opp))
		if got, want := Partition(tenant, opp, n), int(h.Sum32()%uint32(n)); got != want {
			t.Fatalf("Partition(%q, %q, %d) = %d, want %d", tenant, opp, n, got, want)
		}
	}
}

// BenchmarkCheckSubject checks the subject of a valid event, as the ingest
// worker does for every message.
func BenchmarkCheckSubject(b *testing.B) {
	ev := event.Event{Tenant: "acme", Source: "salesforce", Type: event.StageChanged, OpportunityID: "0065e00000XyZ"}
	subject := Subject(ev, 16)
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckSubject(subject, ev, 16); err != nil {
			b.Fatal(err)
		}
	}
}
