package event

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Date is a calendar date, encoded as "YYYY-MM-DD".
type Date string

// Time returns the date at 00:00 UTC, or the zero time if d is empty or bad.
func (d Date) Time() time.Time {
	t, err := time.Parse(time.DateOnly, string(d))
	if err != nil {
		return time.Time{}
	}
	return t
}

// check checks that d, if set, is a date in the same range as every
// timestamp (see inRange).
func (d Date) check(field string) error {
	if d == "" {
		return nil
	}
	t, err := time.Parse(time.DateOnly, string(d))
	if err != nil {
		return fieldErr(field, "%q is not a date (want YYYY-MM-DD)", string(d))
	}
	if !inRange(t) {
		return outOfRange(field, string(d))
	}
	return nil
}

func checkAmount(field string, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return fieldErr(field, "must be a finite amount >= 0, got %v", v)
	}
	return nil
}

// checkCurrency checks that c, if set, is an ISO 4217 code: three letters
// (folded to upper case where it is used).
func checkCurrency(field, c string) error {
	if c != "" && !ValidCurrency(c) {
		return fieldErr(field, "%q is not an ISO 4217 currency code (want three letters, e.g. USD)", c)
	}
	return nil
}

// ValidCurrency reports whether c is three letters, as an ISO 4217 code
// is (in any case).
func ValidCurrency(c string) bool {
	return len(c) == 3 && isLetter(c[0]) && isLetter(c[1]) && isLetter(c[2])
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

func required(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return fieldErr(field, "missing")
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Opportunity is the payload of opportunity.created and opportunity.updated:
// the opportunity's fields as the CRM reports them. In an update, empty
// fields mean "unchanged".
type Opportunity struct {
	Name             string  `json:"name,omitempty"`
	AccountID        string  `json:"account_id,omitempty"`
	AccountName      string  `json:"account_name,omitempty"`
	Amount           float64 `json:"amount,omitempty"`
	Currency         string  `json:"currency,omitempty"`
	CloseDate        Date    `json:"close_date,omitempty"`
	Pipeline         string  `json:"pipeline,omitempty"`
	Stage            string  `json:"stage,omitempty"`
	Probability      float64 `json:"probability,omitempty"` // CRM stage probability, 0..1
	ForecastCategory string  `json:"forecast_category,omitempty"`
	OwnerID          string  `json:"owner_id,omitempty"`
	Team             string  `json:"team,omitempty"`
	Segment          string  `json:"segment,omitempty"`
	LeadSource       string  `json:"lead_source,omitempty"`
	Product          string  `json:"product,omitempty"`
	// CreatedAt is when the CRM created the opportunity, when that is
	// earlier than the event (a webhook subscribed after the deal was
	// created, an export whose first stage row is later).
	CreatedAt *time.Time `json:"created_at,omitempty"`
	// Attributes are free breakdown attributes (region, office, product
	// line, account sector, deal type, ...): the keys listed are set, an
	// empty value clears one, the others are unchanged.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Limits of Opportunity.Attributes.
const (
	MaxAttributes     = 32
	MaxAttributeValue = 256 // characters
)

// Validate implements Payload.
func (p *Opportunity) Validate() error {
	return firstErr(
		checkAmount("amount", p.Amount),
		checkCurrency("currency", p.Currency),
		p.CloseDate.check("close_date"),
		checkProbability("probability", p.Probability),
		checkTime("created_at", p.CreatedAt),
		checkAttributes(p.Attributes),
	)
}

// checkAttributes checks the attribute keys (ValidAttributeKey) and the
// lengths of the values.
func checkAttributes(m map[string]string) error {
	if len(m) > MaxAttributes {
		return fieldErr("attributes", "%d attributes, at most %d", len(m), MaxAttributes)
	}
	for k, v := range m {
		if !ValidAttributeKey(k) {
			return fieldErr("attributes", "key %q: want lower case letters, digits and _, starting with a letter, at most 40 bytes", k)
		}
		if n := utf8.RuneCountInString(v); n > MaxAttributeValue {
			return fieldErr("attributes."+k, "%d characters, at most %d", n, MaxAttributeValue)
		}
	}
	return nil
}

// ValidAttributeKey reports whether k can name a breakdown attribute:
// [a-z][a-z0-9_]{0,39}.
func ValidAttributeKey(k string) bool {
	if len(k) == 0 || len(k) > 40 || k[0] < 'a' || k[0] > 'z' {
		return false
	}
	for i := 1; i < len(k); i++ {
		if c := k[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func checkProbability(field string, v float64) error {
	if math.IsNaN(v) || v < 0 || v > 1 {
		return fieldErr(field, "must be between 0 and 1, got %v", v)
	}
	return nil
}

// StageChange is the payload of opportunity.stage_changed.
type StageChange struct {
	Pipeline    string  `json:"pipeline,omitempty"`
	From        string  `json:"from,omitempty"`
	To          string  `json:"to"`
	Probability float64 `json:"probability,omitempty"`
}

// Validate implements Payload.
func (p *StageChange) Validate() error {
	return firstErr(required("to", p.To), checkProbability("probability", p.Probability))
}

// AmountChange is the payload of opportunity.amount_changed.
type AmountChange struct {
	From     float64 `json:"from"`
	To       float64 `json:"to"`
	Currency string  `json:"currency,omitempty"`
	// Cleared says the CRM emptied the amount: the deal has none (it
	// counts as 0), which To = 0 alone does not tell apart from an amount
	// of zero. To must then be 0.
	Cleared bool `json:"cleared,omitempty"`
}

// Validate implements Payload.
func (p *AmountChange) Validate() error {
	if p.Cleared && p.To != 0 {
		return fieldErr("to", "must be 0 when cleared, got %v", p.To)
	}
	return firstErr(checkAmount("from", p.From), checkAmount("to", p.To), checkCurrency("currency", p.Currency))
}

// ProbabilityChange is the payload of opportunity.probability_changed: the
// CRM's probability set by hand or by a stage, 0 included (in the other
// payloads a probability of 0 means unchanged).
type ProbabilityChange struct {
	From float64 `json:"from"`
	To   float64 `json:"to"`
}

// Validate implements Payload.
func (p *ProbabilityChange) Validate() error {
	return firstErr(checkProbability("from", p.From), checkProbability("to", p.To))
}

// CloseDateChange is the payload of opportunity.close_date_changed.
type CloseDateChange struct {
	From Date `json:"from,omitempty"`
	To   Date `json:"to"`
}

// Validate implements Payload.
func (p *CloseDateChange) Validate() error {
	return firstErr(p.From.check("from"), required("to", string(p.To)), p.To.check("to"))
}

// OwnerChange is the payload of opportunity.owner_changed.
type OwnerChange struct {
	From string `json:"from,omitempty"`
	To   string `json:"to"`
	Team string `json:"team,omitempty"`
}

// Validate implements Payload.
func (p *OwnerChange) Validate() error { return required("to", p.To) }

// ForecastCategoryChange is the payload of
// opportunity.forecast_category_changed.
type ForecastCategoryChange struct {
	From string `json:"from,omitempty"`
	To   string `json:"to"`
}

// Validate implements Payload.
func (p *ForecastCategoryChange) Validate() error { return required("to", p.To) }

// Won is the payload of opportunity.closed_won.
type Won struct {
	Amount   float64 `json:"amount,omitempty"`
	Currency string  `json:"currency,omitempty"`
	Reason   string  `json:"reason,omitempty"`
}

// Validate implements Payload.
func (p *Won) Validate() error {
	return firstErr(checkAmount("amount", p.Amount), checkCurrency("currency", p.Currency))
}

// Lost is the payload of opportunity.closed_lost.
type Lost struct {
	// Reason is free text or a CRM picklist value; "no_decision",
	// "no decision" and "status quo" mark a loss to the status quo.
	Reason     string `json:"reason,omitempty"`
	Competitor string `json:"competitor,omitempty"`
	// Amount is the amount lost, when the CRM reports it with the loss;
	// 0 keeps the deal's last amount.
	Amount   float64 `json:"amount,omitempty"`
	Currency string  `json:"currency,omitempty"`
}

// Validate implements Payload.
func (p *Lost) Validate() error {
	return firstErr(checkAmount("amount", p.Amount), checkCurrency("currency", p.Currency))
}

// Contact is the payload of contact.added: a person added to an opportunity
// with a role.
type Contact struct {
	ContactID string `json:"contact_id"`
	Name      string `json:"name,omitempty"`
	Email     string `json:"email,omitempty"`
	Title     string `json:"title,omitempty"`
	// Role is the CRM contact role: "Decision Maker", "Economic Buyer",
	// "Champion", "Technical Buyer", "Influencer", ...
	Role string `json:"role,omitempty"`
	// Side defaults to buyer: CRMs add the customer's people as contacts.
	Side Side `json:"side,omitempty"`
}

// Validate implements Payload.
func (p *Contact) Validate() error {
	if p.Side != "" && !p.Side.valid() {
		return fieldErr("side", "must be %q or %q, got %q", Buyer, Seller, p.Side)
	}
	return required("contact_id", p.ContactID)
}

// Activity kinds.
const (
	ActivityMeeting = "meeting"
	ActivityEmail   = "email"
	ActivityTask    = "task"
	ActivityNote    = "note"
	ActivityCall    = "call"
)

// Activity is the payload of activity.logged: a meeting, e-mail, task or
// note recorded in the CRM.
type Activity struct {
	Kind    string `json:"kind"`
	Subject string `json:"subject,omitempty"`
	// Status is "completed" (held, sent, done) or "scheduled".
	Status string `json:"status,omitempty"`
	// OwnerSide says who owns a task; empty for other kinds.
	OwnerSide Side `json:"owner_side,omitempty"`
	// Participants are the people at a meeting, where known.
	Participants []Participant `json:"participants,omitempty"`
	DueAt        *time.Time    `json:"due_at,omitempty"`
}

// Validate implements Payload.
func (p *Activity) Validate() error {
	switch p.Kind {
	case ActivityMeeting, ActivityEmail, ActivityTask, ActivityNote, ActivityCall:
	case "":
		return fieldErr("kind", "missing")
	default:
		return fieldErr("kind", "unknown activity kind %q (want meeting, email, task, note or call)", p.Kind)
	}
	switch p.Status {
	case "", "completed", "scheduled":
	default:
		return fieldErr("status", "must be completed or scheduled, got %q", p.Status)
	}
	if p.OwnerSide != "" && !p.OwnerSide.valid() {
		return fieldErr("owner_side", "must be %q or %q, got %q", Buyer, Seller, p.OwnerSide)
	}
	if err := checkTime("due_at", p.DueAt); err != nil {
		return err
	}
	for i := range p.Participants {
		if err := p.Participants[i].validate(); err != nil {
			return prefix(fmt.Sprintf("participants[%d]", i), err)
		}
	}
	return nil
}

// Participant is a person on a call or at a meeting.
type Participant struct {
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Side  Side   `json:"side"`
	Title string `json:"title,omitempty"`
	Role  string `json:"role,omitempty"`
}

func (p *Participant) validate() error {
	if !p.Side.valid() {
		return fieldErr("side", "must be %q or %q, got %q", Buyer, Seller, p.Side)
	}
	if p.Email == "" && p.Name == "" {
		return fieldErr("email", "a participant needs an email or a name")
	}
	return nil
}

// Key identifies a person across events: the lower-cased e-mail, else the
// name.
func (p *Participant) Key() string {
	if p.Email != "" {
		return strings.ToLower(p.Email)
	}
	return strings.ToLower(p.Name)
}

// ActionItem is a next step said on a call, with its owner.
type ActionItem struct {
	Text       string     `json:"text"`
	OwnerSide  Side       `json:"owner_side"`
	OwnerEmail string     `json:"owner_email,omitempty"`
	DueAt      *time.Time `json:"due_at,omitempty"`
	// Kind is the recorder's classification, if any ("send_info",
	// "schedule_meeting", "share_data", "pilot", ...); rules may also match
	// keywords in Text.
	Kind string `json:"kind,omitempty"`
}

func (a *ActionItem) validate() error {
	if err := checkTime("due_at", a.DueAt); err != nil {
		return err
	}
	if !a.OwnerSide.valid() {
		return fieldErr("owner_side", "must be %q or %q, got %q", Buyer, Seller, a.OwnerSide)
	}
	return required("text", a.Text)
}

// Call is the payload of call.completed: a recorded call or meeting.
type Call struct {
	CallID          string        `json:"call_id"`
	Title           string        `json:"title,omitempty"`
	StartedAt       time.Time     `json:"started_at"`
	DurationSeconds int           `json:"duration_seconds"`
	Participants    []Participant `json:"participants"`
	ActionItems     []ActionItem  `json:"action_items,omitempty"`
	// NextMeetingBooked says a follow-up meeting was put in the calendar.
	NextMeetingBooked bool       `json:"next_meeting_booked,omitempty"`
	NextMeetingAt     *time.Time `json:"next_meeting_at,omitempty"`
}

// Validate implements Payload.
func (p *Call) Validate() error {
	if err := required("call_id", p.CallID); err != nil {
		return err
	}
	if p.StartedAt.IsZero() {
		return fieldErr("started_at", "missing")
	}
	if err := checkTime("started_at", &p.StartedAt); err != nil {
		return err
	}
	if err := checkTime("next_meeting_at", p.NextMeetingAt); err != nil {
		return err
	}
	if p.DurationSeconds < 0 {
		return fieldErr("duration_seconds", "must be >= 0, got %d", p.DurationSeconds)
	}
	if len(p.Participants) == 0 {
		return fieldErr("participants", "a call needs at least one participant")
	}
	for i := range p.Participants {
		if err := p.Participants[i].validate(); err != nil {
			return prefix(fmt.Sprintf("participants[%d]", i), err)
		}
	}
	for i := range p.ActionItems {
		if err := p.ActionItems[i].validate(); err != nil {
			return prefix(fmt.Sprintf("action_items[%d]", i), err)
		}
	}
	return nil
}
