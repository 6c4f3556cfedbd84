package deals

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/readmodel"
)

// DealQuery asks for one deal as of AsOf.
type DealQuery struct {
	Tenant        string
	OpportunityID string
	// AsOf is the instant the answer is computed at; zero means now.
	AsOf   time.Time
	Ladder *ladder.Ladder
}

// Deal is one deal's history as of a date.
type Deal struct {
	Definitions   metrics.Definitions `json:"definitions"`
	OpportunityID string              `json:"opportunity_id"`
	// Name is the deal's name as of the date, "" if none was sent.
	Name  string `json:"name"`
	Facts Facts  `json:"facts"`
	// HighestStepIndex is the highest step gained (0 = none).
	HighestStepIndex    int    `json:"highest_step_index"`
	HighestStep         string `json:"highest_step"`
	DaysSinceCommitment int64  `json:"days_since_commitment"`
	// Steps has one entry per ladder step.
	Steps []StepProgress `json:"steps"`
	// Timeline is the input events and derived events at or before the
	// date, by time; at one time the input events come first.
	Timeline     []TimelineEvent `json:"timeline"`
	Misses       []Miss          `json:"misses"`
	Stakeholders []Stakeholder   `json:"stakeholders"`
	// StageHistory is every entry into a CRM stage, in order.
	StageHistory []StageEntry `json:"stage_history"`
	Warnings     []Warning    `json:"warnings"`
}

// Facts are a deal's facts as of a date: after every input event at or
// before it.
type Facts struct {
	Stage  string `json:"stage"`
	Status string `json:"status"`
	// Amount is in Currency ("" = none given).
	Amount      float64 `json:"amount"`
	Currency    string  `json:"currency"`
	CloseDate   *string `json:"close_date"`
	OwnerID     string  `json:"owner_id"`
	Team        string  `json:"team"`
	Segment     string  `json:"segment"`
	Source      string  `json:"source"`
	Product     string  `json:"product"`
	Probability float64 `json:"probability"`
	// Attributes are the free breakdown attributes.
	Attributes map[string]string `json:"attributes"`
	// CreatedAt is the CRM's creation time when earlier than the first
	// event, else the deal.created.
	CreatedAt *time.Time `json:"created_at"`
}

// StepProgress is when a ladder step was reached and gained.
type StepProgress struct {
	StepIndex int    `json:"step_index"`
	Step      string `json:"step"`
	// ReachedAt is when this or a later step was first gained.
	ReachedAt *time.Time `json:"reached_at"`
	// GainedAt is when this step itself was gained.
	GainedAt *time.Time `json:"gained_at"`
	// Skipped: reached by gaining a later step first (passed, not won).
	Skipped bool `json:"skipped"`
	// Evidence is the input event ids of its commitment.gained.
	Evidence []string `json:"evidence"`
}

// TimelineEvent is an input event (Kind "input") or a derived event (Kind
// "derived").
type TimelineEvent struct {
	Kind string    `json:"kind"`
	Type string    `json:"type"`
	At   time.Time `json:"at"`
	// ID is the source's event id of an input event (what evidence
	// names), the derived event's id otherwise.
	ID string `json:"id"`
	// Source and Summary describe an input event; Owners are the owner
	// ids its summary names, for the answer's people to name them.
	Source  string   `json:"source,omitempty"`
	Summary string   `json:"summary,omitempty"`
	Owners  []string `json:"owners,omitempty"`
	// Step, Reason, InteractionID, Evidence and Detail describe a derived
	// event, where its type has them.
	Step          string   `json:"step,omitempty"`
	StepIndex     int      `json:"step_index,omitempty"`
	Reason        string   `json:"reason,omitempty"`
	InteractionID string   `json:"interaction_id,omitempty"`
	Evidence      []string `json:"evidence,omitempty"`
	Detail        string   `json:"detail,omitempty"`
}

// Miss is a commitment.missed.
type Miss struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Step      string    `json:"step"`
	StepIndex int       `json:"step_index"`
	Reason    string    `json:"reason"`
	// InteractionID is the input event the miss is about.
	InteractionID string `json:"interaction_id"`
}

// Stakeholder is a person of either side seen on the deal: as a contact,
// a call or meeting participant, or the owner of a call's action item.
type Stakeholder struct {
	// Key is the lower-cased e-mail, else the name (contact:ID for a
	// contact with neither).
	Key   string `json:"key"`
	Name  string `json:"name"`
	Email string `json:"email"`
	Title string `json:"title"`
	Role  string `json:"role"`
	// Side is buyer or seller.
	Side    string    `json:"side"`
	FirstAt time.Time `json:"first_at"`
	// Via lists how the person appeared: contact, call, meeting,
	// action_item.
	Via []string `json:"via"`
	// Events are the ids of the input events naming the person.
	Events []string `json:"events"`
}

// StageEntry is an entry into a CRM stage.
type StageEntry struct {
	At    time.Time `json:"at"`
	Stage string    `json:"stage"`
}

var dealRules = []string{
	"facts are the deal's after every input event at or before as_of (the last snapshot of derived events at or before as_of, in the fold's order)",
	"a step is reached when it or a later step was gained; skipped = reached without having been gained itself first; evidence = the input event ids of its commitment.gained",
	"timeline = the stored input events (latest copy of each source and id) and current derived events at or before as_of, by time",
	"stakeholders = contacts, call and meeting participants and call action item owners at or before as_of, by side; a contact's side defaults to buyer",
}

// Deal answers one deal as of dq.AsOf. A deal without any stored derived
// event at or before AsOf is a *NotFoundError, which also says whether
// the tenant has no data at all; a bad parameter is a *param.Error.
func (r *Reader) Deal(ctx context.Context, dq DealQuery) (*Deal, error) {
	c, err := check(dq.Tenant, dq.AsOf, dq.Ladder)
	if err != nil {
		return nil, err
	}
	if dq.OpportunityID == "" {
		return nil, param.Errorf("id", param.Required, "required")
	}
	derived, err := r.st.LoadDerived(ctx, c.tenant, []string{dq.OpportunityID})
	if err != nil {
		return nil, err
	}
	var ds []derive.Derived
	for _, d := range derived[dq.OpportunityID] {
		if !d.OccurredAt.Truncate(time.Second).After(c.asOf) {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		known, err := r.knownTenant(ctx, c.tenant)
		if err != nil {
			return nil, err
		}
		nf := &NotFoundError{Tenant: c.tenant, OpportunityID: dq.OpportunityID, UnknownTenant: !known}
		if len(derived[dq.OpportunityID]) > 0 {
			nf.AsOf = &c.asOf
		}
		return nil, nf
	}
	raw, err := r.st.LoadEvents(ctx, c.tenant, []string{dq.OpportunityID})
	if err != nil {
		return nil, err
	}
	var evs []event.Event
	for _, e := range raw {
		if e.OccurredAt.After(c.asOf) {
			continue
		}
		ev, err := event.Parse(e.Payload)
		if err != nil {
			// Stored events passed these checks at ingest; one that no
			// longer does is shown by its row.
			ev = event.Event{ID: e.EventID, Source: e.Source, Type: event.Type(e.Type), OccurredAt: e.OccurredAt}
		}
		evs = append(evs, ev)
	}
	slices.SortFunc(evs, func(a, b event.Event) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Source, b.Source); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	st := derive.Summarize(ds, c.l.Len())
	res := &Deal{Definitions: c.defs, OpportunityID: dq.OpportunityID}
	res.Definitions.Rules = append(slices.Clone(dealRules), WarningRules...)
	res.Facts = facts(st)
	for _, ev := range evs {
		if p, ok := ev.Payload.(*event.Opportunity); ok && p.Name != "" {
			res.Name = p.Name
		}
	}
	for _, k := range st.GainSteps {
		res.HighestStepIndex = max(res.HighestStepIndex, int(k))
	}
	res.HighestStep = c.stepName(res.HighestStepIndex)
	ref := reference(st)
	res.DaysSinceCommitment = (c.asOf.Unix() - ref.Unix()) / 86400
	res.Steps = steps(&c, st, ds)
	res.Timeline = timeline(evs, ds)
	res.Misses = misses(ds)
	res.Stakeholders = stakeholders(evs)
	res.StageHistory = make([]StageEntry, len(st.StageEntries))
	for i, e := range st.StageEntries {
		res.StageHistory[i] = StageEntry{At: e.At, Stage: e.Stage}
	}
	res.Warnings = dealWarnings(&c, st, ds)
	return res, nil
}

func facts(st derive.State) Facts {
	f := st.Facts[len(st.Facts)-1]
	out := Facts{
		Stage: f.Stage, Status: f.Status, Amount: f.Amount, Currency: f.Currency, CloseDate: dateString(f.CloseDate),
		OwnerID: f.OwnerID, Team: f.Team, Segment: f.Segment, Source: f.LeadSource, Product: f.Product,
		Probability: f.Probability, Attributes: map[string]string{}, CreatedAt: timePtr(st.CreatedAt),
	}
	for _, a := range f.Attrs {
		out.Attributes[a.Key] = a.Value
	}
	return out
}

// reference is the last commitment gained, else the creation, else the
// first derived event: what days since commitment count from.
func reference(st derive.State) time.Time {
	if n := len(st.GainTimes); n > 0 {
		return slices.MaxFunc(st.GainTimes, func(a, b time.Time) int { return a.Compare(b) })
	}
	if !st.CreatedAt.IsZero() {
		return st.CreatedAt
	}
	return st.FirstAt
}

func steps(c *common, st derive.State, ds []derive.Derived) []StepProgress {
	evidence := map[int][]string{}
	for _, d := range ds {
		if d.Type == derive.CommitmentGained {
			evidence[d.StepIndex] = slices.Clone(d.Evidence)
		}
	}
	out := make([]StepProgress, len(c.steps))
	for i := range out {
		p := StepProgress{StepIndex: i + 1, Step: c.steps[i], ReachedAt: timePtr(st.Reach[i]), GainedAt: timePtr(st.Gained[i]),
			Evidence: evidence[i+1]}
		if p.Evidence == nil {
			p.Evidence = []string{}
		}
		p.Skipped = p.ReachedAt != nil && (p.GainedAt == nil || !p.GainedAt.Equal(*p.ReachedAt))
		out[i] = p
	}
	return out
}

// foldOrder sorts derived events as derive.Summarize takes them.
func foldOrder(ds []derive.Derived) []derive.Derived {
	ds = slices.Clone(ds)
	slices.SortStableFunc(ds, func(a, b derive.Derived) int {
		if c := cmp.Compare(a.OccurredAt.Unix(), b.OccurredAt.Unix()); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Seq, b.Seq); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return ds
}

func timeline(evs []event.Event, ds []derive.Derived) []TimelineEvent {
	out := make([]TimelineEvent, 0, len(evs)+len(ds))
	for _, e := range evs {
		out = append(out, TimelineEvent{Kind: "input", Type: string(e.Type), At: e.OccurredAt.UTC().Truncate(time.Second),
			ID: e.ID, Source: e.Source, Summary: summarize(e), Owners: ownersOf(e)})
	}
	for _, d := range foldOrder(ds) {
		out = append(out, TimelineEvent{Kind: "derived", Type: string(d.Type), At: d.OccurredAt.UTC(), ID: d.ID,
			Step: d.Step, StepIndex: d.StepIndex, Reason: d.Reason, InteractionID: d.InteractionID,
			Evidence: d.Evidence, Detail: d.Detail})
	}
	// Stable: each kind keeps its order; at one second inputs come first.
	slices.SortStableFunc(out, func(a, b TimelineEvent) int {
		if c := cmp.Compare(a.At.Unix(), b.At.Unix()); c != 0 {
			return c
		}
		return cmpBool(a.Kind == "derived", b.Kind == "derived")
	})
	return out
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func misses(ds []derive.Derived) []Miss {
	out := []Miss{}
	for _, d := range foldOrder(ds) {
		if d.Type == derive.CommitmentMissed {
			out = append(out, Miss{ID: d.ID, At: d.OccurredAt.UTC(), Step: d.Step, StepIndex: d.StepIndex, Reason: d.Reason, InteractionID: d.InteractionID})
		}
	}
	return out
}

// stakeholders lists the people of evs (in the fold's order), buyers
// first, each side by first appearance.
func stakeholders(evs []event.Event) []Stakeholder {
	var out []*Stakeholder
	byKey := map[string]*Stakeholder{}
	see := func(e *event.Event, key, name, email, title, role string, side event.Side, via string) {
		if key == "" {
			return
		}
		if side == "" {
			side = event.Buyer
		}
		p := byKey[key]
		if p == nil {
			p = &Stakeholder{Key: key, Side: string(side), FirstAt: e.OccurredAt.UTC().Truncate(time.Second), Via: []string{}, Events: []string{}}
			byKey[key] = p
			out = append(out, p)
		}
		p.Name, p.Email, p.Title, p.Role = cmp.Or(name, p.Name), cmp.Or(email, p.Email), cmp.Or(title, p.Title), cmp.Or(role, p.Role)
		if !slices.Contains(p.Via, via) {
			p.Via = append(p.Via, via)
		}
		if !slices.Contains(p.Events, e.ID) {
			p.Events = append(p.Events, e.ID)
		}
	}
	for i := range evs {
		e := &evs[i]
		switch p := e.Payload.(type) {
		case *event.Contact:
			key := strings.ToLower(p.Email)
			if key == "" {
				key = "contact:" + p.ContactID
			}
			see(e, key, p.Name, p.Email, p.Title, p.Role, p.Side, "contact")
		case *event.Call:
			for _, pp := range p.Participants {
				see(e, pp.Key(), pp.Name, pp.Email, pp.Title, pp.Role, pp.Side, "call")
			}
			for _, it := range p.ActionItems {
				if it.OwnerSide == event.Buyer && it.OwnerEmail != "" {
					see(e, strings.ToLower(it.OwnerEmail), "", it.OwnerEmail, "", "", event.Buyer, "action_item")
				}
			}
		case *event.Activity:
			if p.Kind != event.ActivityMeeting {
				continue
			}
			for _, pp := range p.Participants {
				see(e, pp.Key(), pp.Name, pp.Email, pp.Title, pp.Role, pp.Side, "meeting")
			}
		}
	}
	res := make([]Stakeholder, len(out))
	for i, p := range out {
		res[i] = *p
	}
	slices.SortStableFunc(res, func(a, b Stakeholder) int {
		return cmpBool(a.Side != string(event.Buyer), b.Side != string(event.Buyer))
	})
	return res
}

// dealWarnings applies WarningRules to one deal's state and derived
// events, all at or before the date.
func dealWarnings(c *common, st derive.State, ds []derive.Derived) []Warning {
	out := []Warning{}
	if st.Facts[len(st.Facts)-1].Status != derive.StatusOpen {
		return out
	}
	var lastGain time.Time
	for _, t := range st.GainTimes {
		if t.After(lastGain) {
			lastGain = t
		}
	}
	var lastClose time.Time
	for _, c := range st.Closes {
		lastClose = c.At // in fold order
	}
	var seen time.Time // deal.created, when the clock runs from the creation
	if len(st.GainTimes) == 0 && !st.CreatedAt.IsZero() {
		seen = st.CreatedSeen
	}
	start := readmodel.StallStart(reference(st), lastClose, seen)
	for _, s := range st.Stalls {
		if !s.At.Before(start) {
			out = append(out, Warning{Kind: WarnStalled, Since: s.At})
			break
		}
	}
	var single time.Time
	for _, d := range ds {
		if d.Type == derive.DealSingleThreaded && (single.IsZero() || d.OccurredAt.Before(single)) {
			single = d.OccurredAt.UTC().Truncate(time.Second)
		}
	}
	if !single.IsZero() {
		var cgain time.Time
		if k := c.l.Index(c.l.Consensus.Step); k > 0 {
			cgain = st.Gained[k-1]
		}
		if !cgain.After(single) {
			out = append(out, Warning{Kind: WarnSingleThreaded, Since: single})
		}
	}
	noBuyer := map[string]bool{}
	for _, m := range st.Misses {
		if m.Reason == derive.MissNoBuyerPresent {
			noBuyer[m.InteractionID] = true
		}
	}
	var lastHeld *derive.Interaction
	for i := range st.Held {
		if !noBuyer[st.Held[i].InteractionID] {
			lastHeld = &st.Held[i]
		}
	}
	engaged := lastGain
	if lastHeld != nil && lastHeld.At.After(engaged) {
		engaged = lastHeld.At
	}
	for _, m := range st.Misses {
		if m.Reason == derive.MissBuyerActionOverdue && m.At.After(engaged) {
			out = append(out, Warning{Kind: WarnBuyerActionOverdue, Since: m.At})
			break
		}
	}
	var pushed time.Time
	for _, m := range st.Misses {
		if m.Reason == derive.MissCloseDatePushed && m.At.After(c.asOf.Add(-PushedWindow)) {
			pushed = m.At
		}
	}
	if !pushed.IsZero() {
		out = append(out, Warning{Kind: WarnCloseDatePushed, Since: pushed})
	}
	if lastHeld != nil && lastHeld.Reason == derive.InteractionContinuation && !lastGain.After(lastHeld.At) {
		out = append(out, Warning{Kind: WarnNoNextStep, Since: lastHeld.At})
	}
	return out
}

// ownersOf returns the owner ids summarize names for e.
func ownersOf(e event.Event) []string {
	switch p := e.Payload.(type) {
	case *event.Opportunity:
		if p.OwnerID != "" {
			return []string{p.OwnerID}
		}
	case *event.OwnerChange:
		if p.From != "" {
			return []string{p.From, p.To}
		}
		return []string{p.To}
	}
	return nil
}

// summarize is a one-line account of an input event's payload.
func summarize(e event.Event) string {
	var parts []string
	add := func(format string, args ...any) { parts = append(parts, fmt.Sprintf(format, args...)) }
	from := func(a, b string) string {
		if a == "" {
			return b
		}
		return a + " → " + b
	}
	switch p := e.Payload.(type) {
	case *event.Opportunity:
		if p.Name != "" {
			add("name %q", p.Name)
		}
		if p.Stage != "" {
			add("stage %s", p.Stage)
		}
		if p.Amount != 0 {
			add("amount %s", money(p.Amount, p.Currency))
		}
		if p.CloseDate != "" {
			add("close date %s", p.CloseDate)
		}
		if p.OwnerID != "" {
			add("owner %s", p.OwnerID)
		}
		if p.Team != "" {
			add("team %s", p.Team)
		}
		if p.ForecastCategory != "" {
			add("forecast category %s", p.ForecastCategory)
		}
		if p.Probability != 0 {
			add("probability %g", p.Probability)
		}
	case *event.StageChange:
		add("stage %s", from(p.From, p.To))
	case *event.AmountChange:
		if p.Cleared {
			add("amount cleared")
		} else {
			add("amount %s", money(p.To, p.Currency))
		}
	case *event.ProbabilityChange:
		add("probability %g → %g", p.From, p.To)
	case *event.CloseDateChange:
		add("close date %s", from(string(p.From), string(p.To)))
	case *event.OwnerChange:
		add("owner %s", from(p.From, p.To))
	case *event.ForecastCategoryChange:
		add("forecast category %s", from(p.From, p.To))
	case *event.Won:
		add("closed won")
		if p.Reason != "" {
			add("reason %q", p.Reason)
		}
	case *event.Lost:
		add("closed lost")
		if p.Reason != "" {
			add("reason %q", p.Reason)
		}
	case *event.Contact:
		add("contact %s", cmp.Or(p.Name, p.Email, p.ContactID))
		if p.Role != "" {
			add("role %s", p.Role)
		}
		add("%s side", cmp.Or(string(p.Side), string(event.Buyer)))
	case *event.Activity:
		add("%s %s", cmp.Or(p.Status, "completed"), p.Kind)
		if p.Subject != "" {
			add("%q", p.Subject)
		}
		if p.OwnerSide != "" {
			add("owned by the %s", p.OwnerSide)
		}
		if n := len(p.Participants); n > 0 {
			add("%d participants", n)
		}
	case *event.Call:
		buyers, sellers, buyerItems := 0, 0, 0
		for _, pp := range p.Participants {
			if pp.Side == event.Buyer {
				buyers++
			} else {
				sellers++
			}
		}
		for _, it := range p.ActionItems {
			if it.OwnerSide == event.Buyer {
				buyerItems++
			}
		}
		if p.Title != "" {
			add("call %q", p.Title)
		} else {
			add("call")
		}
		add("%d buyer, %d seller participants", buyers, sellers)
		add("%d action items (%d buyer-owned)", len(p.ActionItems), buyerItems)
		if p.NextMeetingBooked {
			add("next meeting booked")
		}
	}
	return strings.Join(parts, "; ")
}

func money(v float64, cur string) string {
	if cur == "" {
		return fmt.Sprintf("%g", v)
	}
	return fmt.Sprintf("%g %s", v, strings.ToUpper(cur))
}
