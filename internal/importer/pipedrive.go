package importer

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/webhook"
)

// PipedriveDeals reads Pipedrive's deals export (the deals list view
// exported to CSV), one row per deal as it stands now. The export labels
// each field as the app names it, "Deal - " in front when related items
// are exported too; the fields are those of the Deals API
// (developers.pipedrive.com/docs/api/v1/Deals: add_time, won_time,
// lost_time, close_time, stage_change_time, expected_close_date,
// lost_reason, status open/won/lost/deleted): Deal -
// ID, Deal - Title, Deal - Value, Deal - Currency, Deal - Pipeline, Deal
// - Stage, Deal - Status (open, won, lost or deleted), Deal - Owner, Deal
// - Deal created (or Deal - Add time), Deal - Won time, Deal - Lost time,
// Deal - Deal closed on, Deal - Expected close date, Deal - Lost reason,
// Deal - Last stage change; the prefix may be absent. ID, Deal created,
// Stage and Status are required; the others are read when present.
//
// A row becomes, as Deals makes it:
//
//   - opportunity.created at Deal created (id DEAL:created) with the
//     title, value, currency, expected close date, owner and pipeline as
//     they are now;
//   - opportunity.stage_changed to the current stage (id
//     DEAL:stage:00:STAGE) at Last stage change, or for a closed deal
//     without it at its close; an open deal without it was in its stage
//     since creation as far as the file says (the stage is in
//     opportunity.created);
//   - for a won deal opportunity.closed_won (DEAL:status:won) at Won time,
//     for a lost one opportunity.closed_lost (DEAL:status:lost) at Lost
//     time with the lost reason; Deal closed on stands in for a missing
//     won or lost time. A deleted deal, or a closed one with no close
//     time, is refused.
//
// What the export cannot tell: the stages a deal went through before its
// current one (the export has no stage history: the funnel sees the
// current stage only, so a won deal gains the steps its last stage and
// the win give, and a deal lost early looks like one lost in its last
// stage), when value, expected close date or owner changed, and reopened
// deals. Stages and owners are names (the webhooks give ids), pipelines
// names. A stage change after the close (Pipedrive lets a closed deal
// move) is dated at the close, so that it does not reopen the deal.
// Times without an offset are read in Location, as HubSpotDeals reads
// them.
type PipedriveDeals struct {
	Tenant string
	// Currency is the currency of values when there is no Currency
	// column or its cell is empty.
	Currency string
	// Location is the time zone of times written without an offset.
	Location *time.Location
}

// pipedriveColumns are the columns of a deals export, with and without
// the prefix.
var pipedriveColumns = func() map[string][]string {
	m := map[string][]string{
		"id":          {"ID"},
		"title":       {"Title"},
		"value":       {"Value"},
		"currency":    {"Currency", "Currency of Value"},
		"pipeline":    {"Pipeline"},
		"stage":       {"Stage"},
		"status":      {"Status"},
		"owner":       {"Owner"},
		"created":     {"Deal created", "Add time"},
		"won":         {"Won time"},
		"lost":        {"Lost time"},
		"closedOn":    {"Deal closed on"},
		"expected":    {"Expected close date"},
		"lostReason":  {"Lost reason"},
		"stageChange": {"Last stage change", "Stage change time"},
	}
	for k, names := range m {
		var both []string
		for _, n := range names {
			both = append(both, "Deal - "+n)
		}
		m[k] = append(both, names...)
	}
	return m
}()

// Parse reads a deals export; the error is for the file as a whole (no
// header, a required column missing).
func (p PipedriveDeals) Parse(data []byte) (Rows, error) {
	if err := p.history().checkCurrency(); err != nil {
		return nil, err
	}
	return p.records().parse(data)
}

// history is the History of p's deals, without its columns.
func (p PipedriveDeals) history() History {
	return History{Tenant: p.Tenant, Source: webhook.PipedriveSource, Currency: p.Currency}
}

// records is p as a format of one record a deal.
func (p PipedriveDeals) records() records {
	return records{noun: "deal", prepare: func(header []string) (recordFunc, string, error) {
		h := p.history()
		col := findColumns(header, pipedriveColumns)
		for _, k := range []string{"id", "created", "stage", "status"} {
			if _, ok := col[k]; !ok {
				return nil, "", fmt.Errorf("header: no column %q (columns: %s)", pipedriveColumns[k][0], strings.Join(header, ", "))
			}
		}
		header = append(trimHeader(header), closedColumn)
		name := func(k string) string {
			if i, ok := col[k]; ok {
				return header[i]
			}
			return ""
		}
		h.Columns = Columns{OpportunityID: name("id"), CreatedAt: name("created"), Stage: name("stage"), Name: name("title"),
			Amount: name("value"), Currency: name("currency"), CloseDate: name("expected"), Owner: name("owner"), ClosedAt: closedColumn}
		d := Deals{History: h, Pipeline: name("pipeline"), StageSince: name("stageChange")}
		deal, err := d.prepare(header)
		if err != nil {
			return nil, "", err
		}
		return func(rec record) ([]event.Event, error) {
			rec.cells = append(slices.Clip(rec.cells), "")
			status, err := p.fix(col, header, rec.cells)
			if err != nil {
				return nil, err
			}
			return deal(rec, func(rec record, evs []event.Event) ([]event.Event, error) {
				at, err := time.Parse(time.RFC3339Nano, rec.cells[len(rec.cells)-1])
				if err != nil {
					return evs, nil // open
				}
				ev := event.Event{ID: evs[0].OpportunityID + ":status:" + status, Tenant: h.Tenant, Source: h.Source,
					OccurredAt: at, OpportunityID: evs[0].OpportunityID}
				if status == "won" {
					ev.Type, ev.Payload = event.ClosedWon, &event.Won{}
				} else {
					reason := ""
					if i, ok := col["lostReason"]; ok {
						reason = strings.TrimSpace(rec.cells[i])
					}
					ev.Type, ev.Payload = event.ClosedLost, &event.Lost{Reason: reason}
				}
				return append(evs, ev), nil
			})
		}, h.Columns.OpportunityID, nil
	}}
}

// fix rewrites a record's cells to what Deals reads: times in UTC, the
// expected close date as a date, the virtual closed cell (the won or
// lost time of a closed deal), a stage change no later than the close.
// It returns the deal's status: "open", "won" or "lost".
func (p PipedriveDeals) fix(col map[string]int, header, cells []string) (string, error) {
	times := map[string]time.Time{}
	for _, k := range []string{"created", "won", "lost", "closedOn", "stageChange", "expected"} {
		i, ok := col[k]
		if !ok || strings.TrimSpace(cells[i]) == "" {
			continue
		}
		t, err := exportTime(strings.TrimSpace(cells[i]), p.Location)
		if err != nil {
			return "", fmt.Errorf("%s: %w", header[i], err)
		}
		times[k] = t
		cells[i] = t.UTC().Format(time.RFC3339Nano)
		if k == "expected" {
			cells[i] = t.Format(time.DateOnly)
		}
	}
	st := strings.ToLower(strings.TrimSpace(cells[col["status"]]))
	var closed time.Time
	switch st {
	case "open":
		return st, nil
	case "won", "lost":
		if closed = times[st]; closed.IsZero() {
			closed = times["closedOn"]
		}
		if closed.IsZero() {
			return "", fmt.Errorf("%s: %s, but neither the %s time nor the close time is given", header[col["status"]], st, st)
		}
	case "deleted":
		return "", fmt.Errorf("%s: a deleted deal", header[col["status"]])
	default:
		return "", fmt.Errorf("%s: %q is not open, won, lost or deleted", header[col["status"]], cells[col["status"]])
	}
	cells[len(cells)-1] = closed.UTC().Format(time.RFC3339Nano)
	if since := times["stageChange"]; since.After(closed) {
		cells[col["stageChange"]] = cells[len(cells)-1]
	}
	return st, nil
}
