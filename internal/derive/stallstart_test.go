package derive

import (
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

// TestStallStartsAtCreation checks the stall clock of a deal without
// commitments against the read model's rule (readmodel.StallColumns: as of
// a time the clock runs from the deal's creation time, State.CreatedAt,
// once that has come, else from its first event, and a stall counts from
// then on): the clock runs from the creation the CRM reports when that is
// earlier than the first event seen, and restarts at deal.created when
// calls came before the CRM knew the deal.
func TestStallStartsAtCreation(t *testing.T) {
	th := ladder.Default().StallAfter(1)
	rep := seller("rep@s.com")
	old := day(-100)
	withCreatedAt := created("o1", day(0), "Prospecting", 1000)
	withCreatedAt.Payload.(*event.Opportunity).CreatedAt = &old

	type stall struct{ at, since time.Time }
	for _, tc := range []struct {
		name   string
		evs    []event.Event
		now    time.Time
		stalls []stall
	}{{
		// An old deal first seen now (a webhook, an export of open deals):
		// it has gone 100 days without a commitment, so it is stalled
		// when first seen, not 14 days later.
		name: "created long before the first event", evs: []event.Event{withCreatedAt},
		now: day(1), stalls: []stall{{day(0), old}},
	}, {
		// A call with the seller alone 40 days before the CRM opportunity:
		// stalled 14 days after the call, and again 14 days after the
		// opportunity, when the read model's clock runs from it.
		name: "calls before the opportunity",
		evs: []event.Event{
			call("c1", day(0), "Intro", people(rep)),
			created("o1", day(40), "Prospecting", 1000),
		},
		now:    day(40).Add(th + time.Hour),
		stalls: []stall{{day(0).Add(th), day(0)}, {day(40).Add(th), day(40)}},
	}, {
		name: "calls before the opportunity, before its threshold",
		evs: []event.Event{
			call("c1", day(0), "Intro", people(rep)),
			created("o1", day(40), "Prospecting", 1000),
		},
		now:    day(40).Add(th - time.Hour),
		stalls: []stall{{day(0).Add(th), day(0)}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			out := run(tc.evs, tc.now)
			var got []stall
			for _, d := range out {
				if d.Type == DealStalled {
					got = append(got, stall{at: d.OccurredAt})
					if len(got) <= len(tc.stalls) && !strings.Contains(d.Detail, tc.stalls[len(got)-1].since.UTC().Format(time.RFC3339)) {
						t.Errorf("stall %d: detail %s, want since %s", len(got), d.Detail, tc.stalls[len(got)-1].since)
					}
				}
			}
			if len(got) != len(tc.stalls) {
				t.Fatalf("%d stalls, want %d: %v", len(got), len(tc.stalls), out)
			}
			s := Summarize(out, ladder.Default().Len())
			for i, st := range got {
				if !st.at.Equal(tc.stalls[i].at) {
					t.Errorf("stall %d at %s, want %s", i, st.at, tc.stalls[i].at)
				}
				// The read model counts the stall as of its own time.
				ref := s.FirstAt
				if !s.CreatedAt.IsZero() && !s.CreatedAt.After(st.at) {
					ref = s.CreatedAt
				}
				if st.at.Before(ref) {
					t.Errorf("stall %d at %s is before the read model's clock start %s", i, st.at, ref)
				}
			}
		})
	}
}
