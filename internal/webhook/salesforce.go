package webhook

import (
	"bytes"
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// SalesforceSource is the source of the events made of Salesforce Change
// Data Capture messages.
const SalesforceSource = "salesforce"

// SalesforceSignatureHeader carries the signature of a relayed Salesforce
// CDC request: "sha256=" and the lower-case hex HMAC-SHA256 of the body,
// keyed with the tenant's shared secret (see SignSalesforce).
const SalesforceSignatureHeader = "X-Commitflow-Signature"

// SignSalesforce returns the X-Commitflow-Signature value of body:
// "sha256=<hex HMAC-SHA256 of body keyed with secret>". Salesforce itself
// does not POST change events anywhere; the relay that subscribes to them
// (Pub/Sub API or CometD) signs each request with it.
func SignSalesforce(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySalesforce checks a request's X-Commitflow-Signature against body
// and the tenant's secret, in time independent of the signature. The
// scheme has no timestamp: a request replayed maps to the same event ids,
// which are stored once.
func VerifySalesforce(secret string, body []byte, signature string) error {
	h, ok := strings.CutPrefix(strings.TrimSpace(signature), "sha256=")
	got, err := hex.DecodeString(h)
	if !ok || err != nil || secret == "" {
		return ErrSignature
	}
	want, _ := hex.DecodeString(strings.TrimPrefix(SignSalesforce(secret, body), "sha256="))
	if !hmac.Equal(got, want) {
		return ErrSignature
	}
	return nil
}

// cdcHeader is a change event's ChangeEventHeader, as "ChangeEventHeader
// Fields" of the Change Data Capture Developer Guide lists them
// (https://developer.salesforce.com/docs/atlas.en-us.change_data_capture.meta/change_data_capture/cdc_event_fields_header.htm).
// changedFields and nulledFields are field names: Pub/Sub API delivers
// them as bitmaps, which the relay decodes (Pub/Sub API, "Event
// Deserialization Considerations"); CometD leaves nulledFields out.
type cdcHeader struct {
	EntityName      string     `json:"entityName"`
	RecordIDs       []string   `json:"recordIds"`
	ChangeType      string     `json:"changeType"`
	ChangedFields   []string   `json:"changedFields"`
	NulledFields    []string   `json:"nulledFields"`
	CommitTimestamp flexString `json:"commitTimestamp"` // Unix milliseconds
	TransactionKey  string     `json:"transactionKey"`
	SequenceNumber  flexString `json:"sequenceNumber"`
	CommitUser      string     `json:"commitUser"`
}

// sfMapped are the Opportunity fields the Salesforce mapping reads; any
// other field changed is counted in Result.Ignored.
var sfMapped = []string{
	"StageName", "Probability", "Amount", "CurrencyIsoCode", "CloseDate", "OwnerId",
	"ForecastCategoryName", "Name", "AccountId", "LeadSource", "Type", "CreatedDate",
}

// Salesforce maps Salesforce Change Data Capture messages for Opportunity
// (OpportunityChangeEvent) and OpportunityContactRole
// (OpportunityContactRoleChangeEvent, see contactRoles) to tenant's events. The body is one message or
// a JSON array of them, each the event payload ({"ChangeEventHeader": ...,
// "StageName": ..., ...}) or the CometD message around it ({"data":
// {"payload": ...}}), with field values as CometD sends them or as the
// Pub/Sub API's Avro decodes them (dates as YYYY-MM-DD, days or
// milliseconds since 1970; unions as {"string": ...} are read too).
//
// Each record id of a message becomes its own events, at commitTimestamp:
// a CREATE becomes opportunity.created (name, account, amount and
// currency, close date, stage, probability, forecast category, owner, lead
// source, CreatedDate as created_at, Type as the attribute deal_type); an
// UPDATE becomes one event per changed field:
//
//	StageName              opportunity.stage_changed (with Probability when it changed too and is above 0)
//	Probability            opportunity.probability_changed (percent / 100; 0 included)
//	Amount                 opportunity.amount_changed with CurrencyIsoCode; set to null: cleared
//	CurrencyIsoCode        opportunity.updated with the currency (alone; with Amount it goes with the amount)
//	CloseDate              opportunity.close_date_changed
//	OwnerId                opportunity.owner_changed
//	ForecastCategoryName   opportunity.forecast_category_changed
//	Name, AccountId        opportunity.updated (name, account_id)
//	LeadSource             opportunity.updated (lead_source)
//	Type                   opportunity.updated (attributes.deal_type; null clears it)
//
// The changed fields are changedFields when it lists names, else (CometD
// before API 60, or a bitmap not decoded) the fields with a value, and the
// nulledFields. Closes come from the stage, through the tenant's ladder,
// as with the OpportunityHistory import; IsClosed and IsWon, like every
// field not listed, are counted in Result.Ignored ("field:IsWon"), as are
// other entities ("entity:Account") and DELETE and UNDELETE, per record
// ("change:DELETE"). A gap event (GAP_CREATE, GAP_UPDATE, ..., GAP_OVERFLOW)
// carries no field values, so it is refused with a reason saying to resync
// the records by import. An event's id is transactionKey, sequenceNumber,
// record id and field ("created" for a creation), which a redelivery
// repeats. The error is for a body that is not a JSON object or an array
// of them.
func Salesforce(tenant string, body []byte, now time.Time) (Result, error) {
	msgs, err := jsonItems(body)
	if err != nil {
		return Result{}, fmt.Errorf("salesforce: want a change event message or a JSON array of them: %w", err)
	}
	var res Result
	for i, raw := range msgs {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil || m == nil {
			return Result{}, fmt.Errorf("salesforce: message %d is not a JSON object", i)
		}
		m = cdcPayload(m)
		c := cdcChange{res: &res, index: i, fields: m, base: event.Event{Tenant: tenant, Source: SalesforceSource, ReceivedAt: now.UTC()}}
		c.mapMessage()
	}
	return res, nil
}

// jsonItems returns the elements of a JSON array body, or the body itself
// as the only item.
func jsonItems(body []byte) ([]json.RawMessage, error) {
	body = bytes.TrimSpace(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))
	if len(body) > 0 && body[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, err
		}
		return items, nil
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("not valid JSON")
	}
	return []json.RawMessage{body}, nil
}

// cdcPayload returns the event payload of a message: m itself, or the
// payload of a CometD message ({"data": {"payload": ...}}) or of an
// envelope with the schema id ({"schema": ..., "payload": ...}).
func cdcPayload(m map[string]json.RawMessage) map[string]json.RawMessage {
	if _, ok := m["ChangeEventHeader"]; ok {
		return m
	}
	for _, key := range []string{"data", "payload"} {
		var inner map[string]json.RawMessage
		if raw, ok := m[key]; ok && json.Unmarshal(raw, &inner) == nil && inner != nil {
			return cdcPayload(inner)
		}
	}
	return m
}

// cdcChange maps one change event message.
type cdcChange struct {
	res    *Result
	index  int
	fields map[string]json.RawMessage
	h      cdcHeader
	base   event.Event
	// changed is the set of fields the change changed.
	changed map[string]bool
}

func (c *cdcChange) refuse(format string, args ...any) { c.res.refuse(c.index, format, args...) }

func (c *cdcChange) mapMessage() {
	raw, ok := c.fields["ChangeEventHeader"]
	if !ok {
		c.refuse("no ChangeEventHeader: not a change event message")
		return
	}
	if err := json.Unmarshal(raw, &c.h); err != nil {
		c.refuse("ChangeEventHeader: %v", err)
		return
	}
	h := &c.h
	switch h.EntityName {
	case "Opportunity", contactRoleEntity:
	default:
		c.res.ignore("entity:" + cmp.Or(h.EntityName, "none"))
		return
	}
	records := strings.Join(h.RecordIDs, ", ")
	if strings.HasPrefix(h.ChangeType, "GAP_") {
		c.refuse("ChangeEventHeader.changeType %s (%s %s): a gap event has no field values, the changes are unknown; resync these records with commitflow import of an Opportunity or OpportunityHistory (or OpportunityContactRole) export", h.ChangeType, h.EntityName, records)
		return
	}
	switch h.ChangeType {
	case "CREATE", "UPDATE":
	case "DELETE", "UNDELETE":
		for range h.RecordIDs {
			c.res.ignore("change:" + h.ChangeType)
		}
		return
	default:
		c.refuse("ChangeEventHeader.changeType: %q is not CREATE, UPDATE, DELETE, UNDELETE or GAP_*", h.ChangeType)
		return
	}
	ms, err := strconv.ParseInt(strings.TrimSpace(string(h.CommitTimestamp)), 10, 64)
	switch {
	case err != nil || ms <= 0:
		c.refuse("ChangeEventHeader.commitTimestamp: %q is not Unix milliseconds", string(h.CommitTimestamp))
		return
	case h.TransactionKey == "":
		c.refuse("ChangeEventHeader.transactionKey: missing")
		return
	case len(h.RecordIDs) == 0:
		c.refuse("ChangeEventHeader.recordIds: missing")
		return
	}
	for _, id := range h.RecordIDs {
		if id == "" || strings.Contains(id, "*") {
			c.refuse("ChangeEventHeader.recordIds: %q is not a record id (a wildcard comes with a field type conversion); resync by import", id)
			return
		}
	}
	c.base.OccurredAt = time.UnixMilli(ms).UTC()
	c.changed = c.changedFields()
	if h.EntityName == contactRoleEntity {
		c.contactRoles()
		return
	}
	var parts []cdcPart
	if h.ChangeType == "CREATE" {
		parts = c.created()
	} else {
		parts = c.updated()
	}
	for f := range c.changed {
		if !slices.Contains(sfMapped, f) {
			c.res.ignore("field:" + f)
		}
	}
	for _, rec := range h.RecordIDs {
		for _, p := range parts {
			ev := c.base
			ev.ID = h.TransactionKey + "-" + string(h.SequenceNumber) + "-" + rec + "-" + p.field
			ev.OpportunityID, ev.Type, ev.Payload = rec, p.typ, p.payload
			c.res.Events = append(c.res.Events, ev)
		}
	}
}

// cdcPart is one event of a message, for each of its records.
type cdcPart struct {
	field   string
	typ     event.Type
	payload event.Payload
}

// changedFields returns the fields the change changed (see Salesforce).
func (c *cdcChange) changedFields() map[string]bool {
	out := map[string]bool{}
	names := func(l []string) bool {
		for _, f := range l {
			if strings.Contains(f, "0x") {
				return false // a bitmap the relay did not decode
			}
		}
		return len(l) > 0
	}
	if c.h.ChangeType == "UPDATE" && names(c.h.ChangedFields) {
		for _, f := range c.h.ChangedFields {
			out[f] = true
		}
		return out
	}
	for f := range c.fields {
		if _, set, _ := c.value(f); set && f != "ChangeEventHeader" {
			out[f] = true
		}
	}
	if names(c.h.NulledFields) {
		for _, f := range c.h.NulledFields {
			out[f] = true
		}
	}
	return out
}

// value returns field f as text and whether it has a value (not null or
// absent); an Avro union as {"string": "x"} reads as its value.
func (c *cdcChange) value(f string) (string, bool, error) {
	raw := bytes.TrimSpace(c.fields[f])
	if len(raw) > 0 && raw[0] == '{' {
		var u map[string]json.RawMessage
		if err := json.Unmarshal(raw, &u); err != nil || len(u) != 1 {
			return "", false, fmt.Errorf("want a string or a number, got an object")
		}
		for _, v := range u {
			raw = v
		}
	}
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, nil
	}
	var s flexString
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false, err
	}
	return strings.TrimSpace(string(s)), true, nil
}

// text returns field f's value, refusing a value that is not text; ok is
// false for a field without a value or refused.
func (c *cdcChange) text(f string) (string, bool) {
	v, set, err := c.value(f)
	if err != nil {
		c.refuse("Opportunity %s field %s: %v", c.records(), f, err)
		return "", false
	}
	return v, set && v != ""
}

func (c *cdcChange) records() string { return strings.Join(c.h.RecordIDs, ", ") }

// sfParse reads field f with fn, refusing a value it cannot read.
func sfParse[T any](c *cdcChange, f string, fn func(string) (T, error)) (T, bool) {
	var zero T
	v, ok := c.text(f)
	if !ok {
		return zero, false
	}
	x, err := fn(v)
	if err != nil {
		c.refuse("Opportunity %s field %s: %v", c.records(), f, err)
		return zero, false
	}
	return x, true
}

func (c *cdcChange) created() []cdcPart {
	o := &event.Opportunity{}
	o.Name, _ = c.text("Name")
	o.AccountID, _ = c.text("AccountId")
	o.Stage, _ = c.text("StageName")
	o.ForecastCategory, _ = c.text("ForecastCategoryName")
	o.OwnerID, _ = c.text("OwnerId")
	o.LeadSource, _ = c.text("LeadSource")
	if cur, ok := c.text("CurrencyIsoCode"); ok {
		o.Currency = strings.ToUpper(cur)
	}
	if t, ok := c.text("Type"); ok {
		o.Attributes = map[string]string{"deal_type": t}
	}
	o.Amount, _ = sfParse(c, "Amount", amount)
	o.CloseDate, _ = sfParse(c, "CloseDate", sfDate)
	o.Probability, _ = sfParse(c, "Probability", percent)
	if t, ok := sfParse(c, "CreatedDate", sfTime); ok {
		o.CreatedAt = &t
	}
	return []cdcPart{{"created", event.OpportunityCreated, o}}
}

func (c *cdcChange) updated() []cdcPart {
	var parts []cdcPart
	add := func(f string, t event.Type, p event.Payload) { parts = append(parts, cdcPart{f, t, p}) }
	cleared := func(f string) bool {
		_, set, err := c.value(f)
		return c.changed[f] && !set && err == nil
	}
	currency := ""
	if cur, ok := c.text("CurrencyIsoCode"); ok {
		currency = strings.ToUpper(cur)
	}
	prob, probSet := 0.0, false
	if c.changed["Probability"] {
		prob, probSet = sfParse(c, "Probability", percent)
	}
	for _, f := range sfMapped {
		if !c.changed[f] {
			continue
		}
		if cleared(f) {
			switch f {
			case "Amount":
				add(f, event.AmountChanged, &event.AmountChange{Cleared: true, Currency: currency})
			case "Type":
				add(f, event.OpportunityUpdated, &event.Opportunity{Attributes: map[string]string{"deal_type": ""}})
			default:
				c.res.ignore("cleared:" + f)
			}
			continue
		}
		switch f {
		case "StageName":
			if v, ok := c.text(f); ok {
				sc := &event.StageChange{To: v}
				if probSet && prob > 0 {
					sc.Probability = prob
				}
				add(f, event.StageChanged, sc)
			}
		case "Probability":
			if probSet && !(prob > 0 && c.changed["StageName"] && !cleared("StageName")) {
				add(f, event.ProbabilityChanged, &event.ProbabilityChange{To: prob})
			}
		case "Amount":
			if a, ok := sfParse(c, f, amount); ok {
				add(f, event.AmountChanged, &event.AmountChange{To: a, Currency: currency})
			}
		case "CurrencyIsoCode":
			if !c.changed["Amount"] && currency != "" {
				add(f, event.OpportunityUpdated, &event.Opportunity{Currency: currency})
			}
		case "CloseDate":
			if d, ok := sfParse(c, f, sfDate); ok {
				add(f, event.CloseDateChanged, &event.CloseDateChange{To: d})
			}
		case "OwnerId":
			if v, ok := c.text(f); ok {
				add(f, event.OwnerChanged, &event.OwnerChange{To: v})
			}
		case "ForecastCategoryName":
			if v, ok := c.text(f); ok {
				add(f, event.ForecastCategoryChanged, &event.ForecastCategoryChange{To: v})
			}
		case "Name":
			if v, ok := c.text(f); ok {
				add(f, event.OpportunityUpdated, &event.Opportunity{Name: v})
			}
		case "AccountId":
			if v, ok := c.text(f); ok {
				add(f, event.OpportunityUpdated, &event.Opportunity{AccountID: v})
			}
		case "LeadSource":
			if v, ok := c.text(f); ok {
				add(f, event.OpportunityUpdated, &event.Opportunity{LeadSource: v})
			}
		case "Type":
			if v, ok := c.text(f); ok {
				add(f, event.OpportunityUpdated, &event.Opportunity{Attributes: map[string]string{"deal_type": v}})
			}
		case "CreatedDate":
			c.res.ignore("field:CreatedDate")
		}
	}
	return parts
}

// percent reads a Salesforce percent (0..100) as a share (0..1).
func percent(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a percentage", s)
	}
	return v / 100, nil
}

// sfDate reads a date field: YYYY-MM-DD (CometD), or a number, days since
// 1970 (Avro's date) when under a million, else Unix milliseconds.
func sfDate(s string) (event.Date, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > -1e6 && n < 1e6 {
		return event.Date(time.Unix(n*86400, 0).UTC().Format(time.DateOnly)), nil
	}
	return date(s)
}

// sfTime reads a datetime field: ISO 8601 (2024-06-01T10:00:00.000Z,
// CometD) or Unix milliseconds (Pub/Sub API).
func sfTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMilli(n).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.000Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want ISO 8601 or Unix milliseconds)", s)
}

// contactRoleEntity is the entity of OpportunityContactRoleChangeEvent.
const contactRoleEntity = "OpportunityContactRole"

// contactRoles maps an OpportunityContactRole change: a contact put on an
// opportunity with a role, the people consensus counts. A CREATE becomes
// contact.added (buyer side: contact roles name the customer's people)
// with ContactId and Role, at CreatedDate when the message has it (else
// commitTimestamp), with the record's id as the event's id — the id and
// content the OpportunityContactRole import gives the same role, so an
// import and the change events store it once. An UPDATE that changes Role
// or ContactId becomes contact.added with the new values when the message
// also carries OpportunityId; change events carry only the changed
// fields, so without it the change is counted in Result.Ignored
// ("OpportunityContactRole:UPDATE without OpportunityId"): re-import the
// contact roles to pick it up. DELETE and UNDELETE are counted too (the
// envelope has no event for a contact leaving a deal).
func (c *cdcChange) contactRoles() {
	h := &c.h
	fail := func(f string, err error) { c.refuse("%s %s field %s: %v", contactRoleEntity, c.records(), f, err) }
	text := func(f string) string {
		v, _, err := c.value(f)
		if err != nil {
			fail(f, err)
		}
		return v
	}
	opp, contact, role := text("OpportunityId"), text("ContactId"), text("Role")
	for f := range c.changed {
		switch f {
		case "OpportunityId", "ContactId", "Role", "CreatedDate":
		default:
			c.res.ignore("field:" + contactRoleEntity + "." + f)
		}
	}
	at := c.base.OccurredAt
	id := func(rec string) string { return rec }
	if h.ChangeType == "UPDATE" {
		if !c.changed["Role"] && !c.changed["ContactId"] {
			return
		}
		if opp == "" {
			for range h.RecordIDs {
				c.res.ignore(contactRoleEntity + ":UPDATE without OpportunityId")
			}
			return
		}
		id = func(rec string) string {
			return h.TransactionKey + "-" + string(h.SequenceNumber) + "-" + rec + "-role"
		}
	} else if v := text("CreatedDate"); v != "" {
		t, err := sfTime(v)
		if err != nil {
			fail("CreatedDate", err)
			return
		}
		at = t
	}
	if opp == "" || contact == "" {
		c.refuse("%s %s: OpportunityId and ContactId are required on a %s", contactRoleEntity, c.records(), h.ChangeType)
		return
	}
	for _, rec := range h.RecordIDs {
		ev := c.base
		ev.ID, ev.OpportunityID, ev.OccurredAt, ev.Type = id(rec), opp, at, event.ContactAdded
		ev.Payload = &event.Contact{ContactID: contact, Role: role, Side: event.Buyer}
		c.res.Events = append(c.res.Events, ev)
	}
}
