package derive

import "time"

// Kind names a derived event type.
type Kind string

// Derived event types.
const (
	// CommitmentGained: the opportunity won ladder step Step at OccurredAt;
	// Evidence lists the source event ids that showed it.
	CommitmentGained Kind = "commitment.gained"
	// CommitmentMissed: a buyer interaction ended with no buyer commitment,
	// or a buyer commitment came due unkept. Step is the step expected next,
	// Reason one of the Miss* reasons, InteractionID the call or activity.
	CommitmentMissed Kind = "commitment.missed"
	// DealStalled: an open deal gained no commitment for longer than its
	// step's threshold. Step is the highest step reached, Value the threshold
	// in days; OccurredAt is when the threshold passed.
	DealStalled Kind = "deal.stalled"
	// DealSingleThreaded: a deal at or past invest has fewer buyer
	// stakeholders engaged than consensus needs; Value is how many it has.
	DealSingleThreaded Kind = "deal.single_threaded"
	// StageRegressed: the CRM stage moved back to a lower ladder step; Step is
	// the new step, Detail names the step it fell from.
	StageRegressed Kind = "stage.regressed"
	// DealClosed: won or lost; Status is "won" or "lost", Reason the loss
	// reason.
	DealClosed Kind = "deal.closed"
	// DealReopened: a closed deal is open again: its CRM stage moved to
	// one that is neither a won nor a lost stage. Detail names the status
	// it had ({"from":"lost"}); the snapshot's status is open. The next
	// close is a new deal.closed.
	DealReopened Kind = "deal.reopened"
	// DealCreated: the opportunity's first appearance, with its facts.
	// Detail is {"created_at":"RFC 3339"} when the CRM reported a creation
	// time earlier than this first appearance (event.Opportunity.CreatedAt).
	DealCreated Kind = "deal.created"
	// DealUpdated: a fact changed (Reason: amount, close_date, owner, stage,
	// forecast_category; or, when an input event changed none of these,
	// probability, team, segment, lead_source or product); the snapshot
	// columns hold the new facts and Detail the previous value. Metrics
	// read facts "as of" a date from these.
	DealUpdated Kind = "deal.updated"
	// InteractionHeld: one buyer interaction (a call, or a held meeting) on
	// the opportunity — the denominator of the miss rate. Step is the step
	// expected next, Reason "advanced" (a buyer-owned action or a booked next
	// meeting) or "continuation", InteractionID the call or activity.
	InteractionHeld Kind = "interaction.held"
)

// Outcomes of interaction.held.
const (
	InteractionAdvanced     = "advanced"
	InteractionContinuation = "continuation"
)

// Reasons of commitment.missed.
const (
	MissNoNextStep         = "no_next_step"
	MissSellerOnlyActions  = "seller_only_actions"
	MissBuyerActionOverdue = "buyer_action_overdue"
	MissNoBuyerPresent     = "no_buyer_present"
	MissCloseDatePushed    = "close_date_pushed"
	MissNoDecision         = "no_decision"
)

// Snapshot is the opportunity's facts at the moment of a derived event: in
// the fold, right after the input event (or timer) that produced it.
type Snapshot struct {
	Amount      float64
	Currency    string    // ISO 4217, upper case; empty if the CRM never said
	CloseDate   time.Time // date at 00:00 UTC; zero if unknown
	Stage       string
	Probability float64 // CRM stage probability, 0..1
	Status      string  // open, won or lost
	OwnerID     string
	Team        string
	Segment     string
	LeadSource  string
	Product     string
	// ForecastCategory is the CRM's forecast category (Commit, Best Case,
	// Pipeline, ...); empty if the CRM never said.
	ForecastCategory string
	// Attrs are the free breakdown attributes, sorted by key; shared
	// between snapshots, never changed in place.
	Attrs []Attr
}

// Attr is a free breakdown attribute (event.Opportunity.Attributes).
type Attr struct{ Key, Value string }

// Derived is one derived event. It maps one to one onto a row of the
// derived_events table (schemas/clickhouse).
type Derived struct {
	Tenant        string
	OpportunityID string
	// ID is deterministic: a hash of what the event is about, so the same
	// inputs give the same id whatever their arrival order.
	ID         string
	Type       Kind
	OccurredAt time.Time
	// Seq is the event's position in the fold among the opportunity's
	// derived events of the same second (UTC, the stored precision),
	// counted from 0. Events sharing a second are ordered by it: the
	// snapshot of the last one is the facts as of that second, after every
	// input event up to its end. It is content, not identity: the id
	// does not depend on it.
	Seq       int
	Step      string // ladder step key, where the type has one
	StepIndex int    // 1-based position of Step in the ladder; 0 for none
	Reason    string
	// InteractionID is the call or activity a miss is about.
	InteractionID string
	Evidence      []string // source event ids
	Snapshot
	Value float64
	// Detail is a JSON object with type-specific extras.
	Detail        string
	LadderVersion string
}
