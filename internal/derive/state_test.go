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
