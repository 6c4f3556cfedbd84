package derive

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

func TestSummarize(t *testing.T) {
	a, rep := buyer("a@b.com"), seller("r@s.com")
	out := run([]event.Event{
		created("o1", day(0), "Prospecting", 100),
		call("c1", day(1), "Intro", people(a, rep)),
		stage("s1", day(3), "Needs Analysis"),
		call("c2", day(4), "Check-in", people(rep)),
		lost("l1", day(9), "no decision"),
	}, day(20))
	s := Summarize(out, 10)
	at := func(d float64) time.Time { return day(d).UTC() }
	if want := []time.Time{at(1), at(3), at(3), {}, {}, {}, {}, {}, {}, {}}; !reflect.DeepEqual(s.Reach, want) {
		t.Errorf("reach = %v, want %v", s.Reach, want)
	}
	if want := []time.Time{at(1), {}, at(3), {}, {}, {}, {}, {}, {}, {}}; !reflect.DeepEqual(s.Gained, want) {
		t.Errorf("gained = %v, want %v (explore skipped)", s.Gained, want)
	}
	if !s.CreatedAt.Equal(at(0)) || len(s.Closes) != 1 || s.Closes[0].Status != StatusLost {
		t.Errorf("created %v closes %+v", s.CreatedAt, s.Closes)
	}
	if len(s.Held) != 2 || len(s.Misses) < 2 {
		t.Errorf("held %+v misses %+v", s.Held, s.Misses)
	}
	last := s.Facts[len(s.Facts)-1]
	if last.Status != StatusLost || last.Stage != "Needs Analysis" {
		t.Errorf("last facts %+v", last)
	}
	for i := 1; i < len(s.FactTimes); i++ {
		if !s.FactTimes[i].After(s.FactTimes[i-1]) {
			t.Fatalf("fact times not increasing: %v", s.FactTimes)
		}
	}
}

// TestSummarizeOrderFree: any order of the derived set gives the same state.
func TestSummarizeOrderFree(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	l := ladder.Default()
	for i := 0; i < 50; i++ {
		evs := randomOpp(r, tOpp, 40)
		out := Derive(tTenant, tOpp, evs, l, day(400))
		want := Summarize(out, l.Len())
		r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		if got := Summarize(out, l.Len()); !reflect.DeepEqual(got, want) {
			t.Fatalf("case %d: shuffled derived set gives another state", i)
		}
	}
}

// TestSummarizeSingleThreaded: the state keeps every deal.single_threaded
// time in fold order, what the deal list reads instead of the events.
func TestSummarizeSingleThreaded(t *testing.T) {
	out := run([]event.Event{
		created("o1", day(0), "Prospecting", 100),
		stage("s1", day(5), "Proposal/Price Quote"),
	}, day(10))
	if find(out, DealSingleThreaded, "") == nil {
		t.Fatal("no deal.single_threaded derived: the case does not exercise it")
	}
	if got, want := Summarize(out, 10).SingleThreaded, []time.Time{day(5).UTC()}; !reflect.DeepEqual(got, want) {
		t.Errorf("single threaded = %v, want %v", got, want)
	}
	// Two of them (derived rows may hold several), given in reverse order.
	second := *find(out, DealSingleThreaded, "")
	second.ID, second.OccurredAt = "later", day(7).Add(500*time.Millisecond)
	in := append([]Derived{second}, out...)
	if got, want := Summarize(in, 10).SingleThreaded, []time.Time{day(5).UTC(), day(7).UTC()}; !reflect.DeepEqual(got, want) {
		t.Errorf("single threaded = %v, want %v (fold order, whole seconds)", got, want)
	}
	if got := Summarize(out[:1], 10).SingleThreaded; got != nil {
		t.Errorf("single threaded before any = %v, want none", got)
	}
}
