package importer

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// Deals reads a "one row per deal" CSV: each row is an opportunity as it
// stands now (current stage, amount, close date, owner, ...) with a few
// dates: when it was created, when it entered some stages, when it
// closed. A row becomes:
//
//   - opportunity.created at the created date, id OPP:created, with the
//     row's current name, amount, currency, close date, probability,
//     forecast category and owner (their history is not in the file);
//   - one opportunity.stage_changed per stage date that is filled in, in
//     date order (pipeline order among equal dates), id OPP:stage:NN:STAGE
//     with NN the stage's place in StageDates, each from the stage before;
//   - for the current stage, when it has no date of its own, a
//     stage_changed dated the closed date if there is one, else the
//     latest date of the row (the deal was there by then at the latest),
//     with the stage's place in StageDates, or after them all if it has
//     none;
//   - with no stage date and no closed date, the current stage is the
//     stage of opportunity.created instead.
//
// A stage the ladder lists as won or lost closes the deal when derived.
// What such a row cannot tell: when amount, close date, owner or
// probability changed (each is as of creation), stages entered without a
// date column, re-entries and backward moves, loss reasons, and when the
// current stage was entered when it has no date.
type Deals struct {
	// History holds the columns and formats; Columns.CreatedAt is the
	// created date and RowID, OccurredAt are not used (the opportunity id
	// is the row's identity).
	History
	// StageDates are the columns with the date the deal entered each
	// stage, in pipeline order.
	StageDates StageDates
}

// stageEntry is a dated move into a stage, the rank-th of the pipeline.
type stageEntry struct {
	stage string
	rank  int
	at    time.Time
}

// Parse reads a deals CSV; see History.Parse for the errors.
func (d Deals) Parse(data []byte) (Rows, error) {
	h := d.History
	if err := h.checkCurrency(); err != nil {
		return nil, err
	}
	h.Columns.OccurredAt, h.Columns.RowID = h.Columns.CreatedAt, ""
	header, rows, recs, err := readCSV(data, h.Encoding, h.Comma)
	if err != nil {
		return nil, err
	}
	cols := make([]string, 0, len(d.StageDates))
	for _, sd := range d.StageDates {
		cols = append(cols, sd.Column)
	}
	col, err := h.index(header, cols...)
	if err != nil {
		return nil, err
	}
	seen := map[string]int{} // opportunity id -> line
	for _, rec := range recs {
		evs, err := d.row(h, rec, col)
		if err == nil {
			if prev, ok := seen[evs[0].OpportunityID]; ok {
				err = fmt.Errorf("%s: %q repeats the deal at line %d", h.Columns.OpportunityID, evs[0].OpportunityID, prev)
			}
		}
		if err != nil {
			rows[rec.row].Err = err
			continue
		}
		seen[evs[0].OpportunityID] = rec.line
		rows[rec.row].Events = evs
	}
	return rows, nil
}

// row returns the events of one deal; the first is its creation.
func (d Deals) row(h History, rec record, col map[string]int) ([]event.Event, error) {
	s, err := h.snapshot(rec.cells, col)
	if err != nil {
		return nil, err
	}
	s.id = s.opp
	cell := func(name string) string { return strings.TrimSpace(rec.cells[col[name]]) }
	var closed time.Time
	if c := h.Columns.ClosedAt; c != "" && cell(c) != "" {
		if closed, err = parseTime(cell(c), h.DateLayout); err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
	}
	var entries []stageEntry
	last := s.at
	current := false
	for rank, sd := range d.StageDates {
		v := cell(sd.Column)
		if v == "" {
			continue
		}
		at, err := parseTime(v, h.DateLayout)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sd.Column, err)
		}
		entries = append(entries, stageEntry{sd.Stage, rank, at})
		if at.After(last) {
			last = at
		}
		current = current || sd.Stage == s.stage
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].at.Before(entries[j].at) })
	if !current && s.stage != "" && (len(entries) > 0 || !closed.IsZero()) {
		at := last
		if !closed.IsZero() {
			at = closed
		}
		rank := len(d.StageDates)
		for i, sd := range d.StageDates {
			if sd.Stage == s.stage {
				rank = i
			}
		}
		entries = append(entries, stageEntry{s.stage, rank, at})
	}
	created := h.created(&s)
	created.ID = s.opp + ":created"
	if len(entries) > 0 {
		created.Payload.(*event.Opportunity).Stage = ""
	}
	evs := []event.Event{created}
	from := ""
	for _, e := range entries {
		sc := &event.StageChange{From: from, To: e.stage}
		if e.stage == s.stage && s.probability != nil {
			sc.Probability = *s.probability
		}
		evs = append(evs, event.Event{ID: fmt.Sprintf("%s:stage:%02d:%s", s.opp, e.rank, e.stage), Tenant: h.Tenant, Source: h.Source,
			Type: event.StageChanged, OccurredAt: e.at, OpportunityID: s.opp, Payload: sc})
		from = e.stage
	}
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			return nil, err
		}
	}
	return evs, nil
}
