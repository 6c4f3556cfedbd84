package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
)

// DeriveResult is what Derive measured.
type DeriveResult struct {
	Derived, Events, Opportunities int
	Elapsed                        time.Duration
}

// Derive times the derivation core alone (derive.Derive with the shipped
// ladder) on n generated events, one opportunity after the other on one
// goroutine; generating and grouping the events is not timed.
func Derive(ctx context.Context, n int) (DeriveResult, error) {
	evs, err := events(ctx, n, 1)
	if err != nil {
		return DeriveResult{}, err
	}
	byOpp := map[string][]event.Event{}
	var order []string
	for _, ev := range evs {
		if _, ok := byOpp[ev.OpportunityID]; !ok {
			order = append(order, ev.OpportunityID)
		}
		byOpp[ev.OpportunityID] = append(byOpp[ev.OpportunityID], ev)
	}
	l := ladder.Default()
	now := genEnd.AddDate(0, 0, 1)
	start := time.Now()
	derived := 0
	for _, id := range order {
		derived += len(derive.Derive(tenant, id, byOpp[id], l, now))
	}
	return DeriveResult{Derived: derived, Events: len(evs), Opportunities: len(order), Elapsed: time.Since(start)}, nil
}

// Write prints r as one line.
func (r DeriveResult) Write(w io.Writer) error {
	_, err := fmt.Fprintf(w, "derived %d events from %d input events of %d opportunities in %s on one goroutine: %.0f input events/s\n",
		r.Derived, r.Events, r.Opportunities, r.Elapsed.Round(time.Millisecond), float64(r.Events)/r.Elapsed.Seconds())
	return err
}
