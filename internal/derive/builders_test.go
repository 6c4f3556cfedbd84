package derive

import (
	"fmt"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// Test builders: small constructors of realistic input events.

const (
	tTenant = "acme"
	tOpp    = "opp-1"
)

var t0 = time.Date(2025, 3, 3, 15, 0, 0, 0, time.UTC)

// day returns t0 plus d days.
func day(d float64) time.Time { return t0.Add(time.Duration(d * float64(24*time.Hour))) }

func ptr(t time.Time) *time.Time { return &t }

func typeOf(p event.Payload) event.Type {
	switch p := p.(type) {
	case *event.Opportunity:
		return event.OpportunityCreated
	case *event.StageChange:
		return event.StageChanged
	case *event.AmountChange:
		return event.AmountChanged
	case *event.ProbabilityChange:
		return event.ProbabilityChanged
	case *event.CloseDateChange:
		return event.CloseDateChanged
	case *event.OwnerChange:
		return event.OwnerChanged
	case *event.ForecastCategoryChange:
		return event.ForecastCategoryChanged
	case *event.Won:
		return event.ClosedWon
	case *event.Lost:
		return event.ClosedLost
	case *event.Contact:
		return event.ContactAdded
	case *event.Activity:
		return event.ActivityLogged
	case *event.Call:
		return event.CallCompleted
	default:
		panic(fmt.Sprintf("unknown payload %T", p))
	}
}

func ev(id string, at time.Time, p event.Payload) event.Event {
	src := "salesforce"
	if _, ok := p.(*event.Call); ok {
		src = "gong"
	}
	e := event.Event{
		V: 1, ID: id, Tenant: tTenant, Source: src, Type: typeOf(p),
		OccurredAt: at, ReceivedAt: at.Add(time.Minute), OpportunityID: tOpp, Payload: p,
	}
	if err := e.Validate(); err != nil {
		panic(fmt.Sprintf("builder made an invalid event %s: %v", id, err))
	}
	return e
}

func created(id string, at time.Time, stage string, amount float64) event.Event {
	return ev(id, at, &event.Opportunity{
		Name: "Deal", Amount: amount, Stage: stage, OwnerID: "rep-1", Team: "east",
		Segment: "mid", LeadSource: "inbound", Product: "core", CloseDate: "2025-06-30",
		Probability: 0.1,
	})
}

// updated is an opportunity.updated: the fields of p set, the others
// unchanged.
func updated(id string, at time.Time, p *event.Opportunity) event.Event {
	e := ev(id, at, p)
	e.Type = event.OpportunityUpdated
	return e
}

func stage(id string, at time.Time, to string) event.Event {
	return ev(id, at, &event.StageChange{To: to})
}

func won(id string, at time.Time) event.Event { return ev(id, at, &event.Won{}) }

func lost(id string, at time.Time, reason string) event.Event {
	return ev(id, at, &event.Lost{Reason: reason})
}

func buyer(email string) event.Participant { return event.Participant{Email: email, Side: event.Buyer} }
func seller(email string) event.Participant {
	return event.Participant{Email: email, Side: event.Seller}
}

func bItem(kind, text string, due *time.Time) event.ActionItem {
	return event.ActionItem{Kind: kind, Text: text, OwnerSide: event.Buyer, DueAt: due}
}

func sItem(kind, text string) event.ActionItem {
	return event.ActionItem{Kind: kind, Text: text, OwnerSide: event.Seller}
}

type callOpt func(*event.Call)

func booked(c *event.Call) { c.NextMeetingBooked = true }

func items(its ...event.ActionItem) callOpt {
	return func(c *event.Call) { c.ActionItems = append(c.ActionItems, its...) }
}

func call(id string, at time.Time, title string, people []event.Participant, opts ...callOpt) event.Event {
	c := &event.Call{CallID: "c-" + id, Title: title, StartedAt: at, DurationSeconds: 1800, Participants: people}
	for _, o := range opts {
		o(c)
	}
	return ev(id, at, c)
}

func people(ps ...event.Participant) []event.Participant { return ps }

func meeting(id string, at time.Time, subject string, ps ...event.Participant) event.Event {
	return ev(id, at, &event.Activity{Kind: event.ActivityMeeting, Subject: subject, Status: "completed", Participants: ps})
}

func contact(id string, at time.Time, email, role string) event.Event {
	return ev(id, at, &event.Contact{ContactID: "ct-" + email, Email: email, Role: role})
}
