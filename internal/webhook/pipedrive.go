package webhook

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// PipedriveSource is the source of the events made of Pipedrive webhooks.
const PipedriveSource = "pipedrive"

// pipedriveBody is a Pipedrive webhook request body, either version:
//
//   - v2 ("Guide for Webhooks v2", https://pipedrive.readme.io/docs/guide-for-webhooks-v2,
//     and "Webhooks v2 migration guide", https://pipedrive.readme.io/docs/webhooks-v2-migration-guide):
//     {"meta": {"action": "create"|"change"|"delete", "entity": "deal",
//     "entity_id", "id" (the notification's id), "timestamp" (RFC 3339, or
//     Unix seconds in some samples), "attempt", "version": "2.0", ...},
//     "data": the deal after the change, custom fields under
//     data.custom_fields, "previous": only the fields the change changed,
//     with their values before it (null on create)};
//   - v1 ("Guide for Webhooks", https://pipedrive.readme.io/docs/guide-for-webhooks):
//     {"v": 1, "event": "updated.deal", "meta": {"action": "added"|"updated"|"deleted"|"merged",
//     "object": "deal", "id" (the deal's id), "timestamp" (Unix seconds),
//     "timestamp_micro", ...}, "current": the deal after, "previous": the
//     whole deal before, "retry"}.
//
// Ids and numbers come as numbers or strings depending on version and
// sample; both are read.
type pipedriveBody struct {
	Meta     pipedriveMeta              `json:"meta"`
	Data     map[string]json.RawMessage `json:"data"`     // v2
	Current  map[string]json.RawMessage `json:"current"`  // v1
	Previous map[string]json.RawMessage `json:"previous"` // v2: changed fields; v1: the whole deal
}

type pipedriveMeta struct {
	Action         string     `json:"action"`
	Entity         string     `json:"entity"` // v2
	Object         string     `json:"object"` // v1
	ID             flexString `json:"id"`
	EntityID       flexString `json:"entity_id"`
	Timestamp      flexString `json:"timestamp"`
	TimestampMicro flexString `json:"timestamp_micro"` // v1
	Version        flexString `json:"version"`
}

// Pipedrive maps a Pipedrive deal webhook (v2, or v1) to tenant's events.
// A created deal ("create", v1 "added") becomes opportunity.created with
// its title, value and currency, expected close date, pipeline, stage and
// owner (and a close if created won or lost). A change ("change", v1
// "updated") becomes one event per field changed — for v2 the fields in
// previous, for v1 those whose value differs between previous and current:
//
//	stage_id                   opportunity.stage_changed (pipeline, from, to: the ids)
//	value, currency            opportunity.amount_changed (from, to, currency)
//	expected_close_date        opportunity.close_date_changed (a cleared date is ignored)
//	owner_id (v1 user_id)      opportunity.owner_changed
//	status won / lost          opportunity.closed_won (the value) / closed_lost (lost_reason)
//	lost_reason, deal lost     opportunity.closed_lost with the reason
//	title                      opportunity.updated with the name
//
// Other fields (times Pipedrive keeps, custom fields, a status back to
// open, which no event expresses), other entities and deletions are
// counted in Result.Ignored. An event's id is the notification's id (v2
// meta.id; v1 the deal id and meta.timestamp_micro) and the field, which a
// retry repeats; its time is meta.timestamp. The error is for a body that
// is not a webhook of either version.
func Pipedrive(tenant string, body []byte, now time.Time) (Result, error) {
	var b pipedriveBody
	if err := json.Unmarshal(body, &b); err != nil {
		return Result{}, fmt.Errorf("pipedrive: not a webhook body: %w", err)
	}
	m := &b.Meta
	v1 := b.Current != nil || m.Object != ""
	data, entity := b.Data, m.Entity
	if v1 {
		data, entity = b.Current, m.Object
	}
	var res Result
	if entity != "deal" {
		if entity == "" {
			return Result{}, fmt.Errorf("pipedrive: meta has neither entity (v2) nor object (v1)")
		}
		res.ignore("entity:" + entity)
		return res, nil
	}
	var create bool
	switch m.Action {
	case "create", "added":
		create = true
	case "change", "updated":
	default:
		res.ignore("action:" + m.Action)
		return res, nil
	}
	if data == nil {
		return Result{}, fmt.Errorf("pipedrive: the deal (data, or v1 current) is missing")
	}
	at, err := instant(string(m.Timestamp))
	if m.Timestamp == "" {
		at, err = instant(field(data, "update_time"))
	}
	if err != nil {
		return Result{}, fmt.Errorf("pipedrive: meta.timestamp: %w", err)
	}
	deal := cmp.Or(field(data, "id"), string(m.EntityID))
	if deal == "" {
		return Result{}, fmt.Errorf("pipedrive: the deal has no id")
	}
	id := string(m.ID)
	if v1 || id == "" {
		id = deal + "@" + cmp.Or(string(m.TimestampMicro), string(m.Timestamp))
	}
	p := pipedriveDeal{res: &res, base: event.Event{
		Tenant: tenant, Source: PipedriveSource, OccurredAt: at, ReceivedAt: now.UTC(), OpportunityID: deal,
	}, id: id, data: data}
	if create {
		p.created()
		return res, nil
	}
	p.prev = b.Previous
	p.changed = changedFields(b.Previous, data, v1)
	p.changes()
	return res, nil
}

// pipedriveDeal maps one deal notification.
type pipedriveDeal struct {
	res     *Result
	base    event.Event
	id      string
	data    map[string]json.RawMessage
	prev    map[string]json.RawMessage
	changed []string // sorted
}

// emit adds an event of the deal, its id the notification's and part.
func (p *pipedriveDeal) emit(part string, typ event.Type, payload event.Payload) {
	ev := p.base
	ev.ID, ev.Type, ev.Payload = p.id+":"+part, typ, payload
	p.res.Events = append(p.res.Events, ev)
}

func (p *pipedriveDeal) created() {
	value, err := amount(field(p.data, "value"))
	if err != nil {
		p.res.refuse(0, "deal %s value: %v", p.base.OpportunityID, err)
		return
	}
	o := &event.Opportunity{
		Name:     field(p.data, "title"),
		Amount:   value,
		Currency: strings.ToUpper(field(p.data, "currency")),
		Pipeline: field(p.data, "pipeline_id"),
		Stage:    field(p.data, "stage_id"),
		OwnerID:  p.owner(p.data),
	}
	if s := field(p.data, "expected_close_date"); s != "" {
		d, err := date(s)
		if err != nil {
			p.res.refuse(0, "deal %s expected_close_date: %v", p.base.OpportunityID, err)
			return
		}
		o.CloseDate = d
	}
	p.emit("created", event.OpportunityCreated, o)
	p.status(value)
}

// status emits the close the deal's status says, if it is won or lost.
func (p *pipedriveDeal) status(value float64) {
	switch field(p.data, "status") {
	case "won":
		p.emit("won", event.ClosedWon, &event.Won{Amount: value})
	case "lost":
		p.emit("lost", event.ClosedLost, &event.Lost{Reason: field(p.data, "lost_reason")})
	}
}

// owner returns the deal's owner id: owner_id (v2) or user_id (v1, a
// number or an object with its id).
func (p *pipedriveDeal) owner(m map[string]json.RawMessage) string {
	if o := field(m, "owner_id"); o != "" {
		return o
	}
	raw := bytes.TrimSpace(m["user_id"])
	if len(raw) > 0 && raw[0] == '{' {
		var u struct {
			ID flexString `json:"id"`
		}
		if json.Unmarshal(raw, &u) == nil {
			return string(u.ID)
		}
		return ""
	}
	return field(m, "user_id")
}

func (p *pipedriveDeal) changes() {
	value, err := amount(field(p.data, "value"))
	if err != nil {
		p.res.refuse(0, "deal %s value: %v", p.base.OpportunityID, err)
		return
	}
	has := func(f string) bool { _, ok := slices.BinarySearch(p.changed, f); return ok }
	for _, f := range p.changed {
		switch f {
		case "stage_id":
			p.emit("stage", event.StageChanged, &event.StageChange{
				Pipeline: field(p.data, "pipeline_id"), From: field(p.prev, "stage_id"), To: field(p.data, "stage_id"),
			})
		case "pipeline_id":
			if !has("stage_id") {
				p.res.ignore("field:pipeline_id")
			}
		case "value", "currency":
			if f == "currency" && has("value") {
				continue // one amount change for both
			}
			from := value
			if _, ok := p.prev["value"]; ok {
				if from, err = amount(field(p.prev, "value")); err != nil {
					p.res.refuse(0, "deal %s previous value: %v", p.base.OpportunityID, err)
					continue
				}
			}
			p.emit("amount", event.AmountChanged, &event.AmountChange{From: from, To: value, Currency: strings.ToUpper(field(p.data, "currency"))})
		case "expected_close_date":
			to := field(p.data, f)
			if to == "" {
				p.res.ignore("cleared:" + f)
				continue
			}
			c := &event.CloseDateChange{}
			if c.To, err = date(to); err == nil && field(p.prev, f) != "" {
				c.From, err = date(field(p.prev, f))
			}
			if err != nil {
				p.res.refuse(0, "deal %s expected_close_date: %v", p.base.OpportunityID, err)
				continue
			}
			p.emit("close_date", event.CloseDateChanged, c)
		case "owner_id", "user_id":
			if to := p.owner(p.data); to != "" {
				p.emit("owner", event.OwnerChanged, &event.OwnerChange{From: p.owner(p.prev), To: to})
			}
		case "status":
			switch field(p.data, "status") {
			case "won", "lost":
				p.status(value)
			default:
				p.res.ignore("status:" + field(p.data, "status"))
			}
		case "lost_reason":
			if !has("status") && field(p.data, "status") == "lost" && field(p.data, f) != "" {
				p.emit("lost_reason", event.ClosedLost, &event.Lost{Reason: field(p.data, f)})
			}
		case "title":
			if name := field(p.data, f); name != "" {
				p.emit("title", event.OpportunityUpdated, &event.Opportunity{Name: name})
			}
		default:
			p.res.ignore("field:" + f)
		}
	}
}

// changedFields returns the fields a change changed, sorted: for v2 the
// fields of previous, for v1 those whose value in previous and current
// differ (custom fields included, as Pipedrive v1 keeps them at the top).
func changedFields(prev, cur map[string]json.RawMessage, v1 bool) []string {
	var out []string
	for f, old := range prev {
		if !v1 || !sameJSON(old, cur[f]) {
			out = append(out, f)
		}
	}
	if v1 {
		for f := range cur {
			if _, ok := prev[f]; !ok && prev != nil {
				out = append(out, f)
			}
		}
	}
	slices.Sort(out)
	return out
}

// sameJSON reports whether a and b are the same JSON text but for
// insignificant space.
func sameJSON(a, b json.RawMessage) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return bytes.Equal(a, b)
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// field returns the scalar m[name] as text; "" when it is absent, null,
// or an object or array.
func field(m map[string]json.RawMessage, name string) string {
	raw, ok := m[name]
	if !ok {
		return ""
	}
	var f flexString
	if json.Unmarshal(raw, &f) != nil {
		return ""
	}
	return strings.TrimSpace(string(f))
}
