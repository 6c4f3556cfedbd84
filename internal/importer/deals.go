package importer

import (
	"cmp"
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
//
// Vendor formats (HubSpotDeals, PipedriveDeals) add to this: a pipeline
// column, a column with the date the current stage was entered, stage
// dates with exits (an entry exited orders before one of the same time
// that was not, or was exited later) and stages whose entry closes the
// deal (an opportunity.closed_won or closed_lost follows the
// stage_changed, id STAGE-ID:won or :lost). A stage date with a Key gets
// the id OPP:stage:NN:KEY, NN its place among the deal's entries of the
// same time, so that the fold, which orders events of one instant by id,
// applies them in the order of the file.
type Deals struct {
	// History holds the columns and formats; Columns.CreatedAt is the
	// created date and RowID, OccurredAt are not used (the opportunity id
	// is the row's identity).
	History
	// StageDates are the columns with the date the deal entered each
	// stage, in pipeline order; a stage date without a column names a
	// stage for the current stage's entry.
	StageDates StageDates
	// Pipeline, if set, is the column of the deal's pipeline: that of
	// opportunity.created and of the current stage's entry.
	Pipeline string
	// StageSince, if set, is the column of the time the deal entered its
	// current stage; it dates the current stage when no stage date does.
	StageSince string
}

// stageEntry is a dated move into a stage, the rank-th of StageDates.
type stageEntry struct {
	StageDate
	rank       int
	at, exited time.Time
}

// before orders entries by time, then an entry exited before one not
// exited or exited later (it was left first); equal ones keep their order.
func (a stageEntry) before(b stageEntry) bool {
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	if az, bz := a.exited.IsZero(), b.exited.IsZero(); az != bz {
		return bz
	}
	return a.exited.Before(b.exited)
}

// is reports whether sd is stage in pipeline (any pipeline when either
// is unknown).
func (sd StageDate) is(stage, pipeline string) bool {
	return sd.Stage == stage && (sd.Pipeline == "" || pipeline == "" || sd.Pipeline == pipeline)
}

// Parse reads a deals CSV; see History.Parse for the errors.
func (d Deals) Parse(data []byte) (Rows, error) {
	if err := d.checkCurrency(); err != nil {
		return nil, err
	}
	return d.records().parse(data)
}

// records is d as a format of one record a deal.
func (d Deals) records() records {
	return records{encoding: d.Encoding, comma: d.Comma, noun: "deal",
		prepare: func(header []string) (recordFunc, string, error) {
			fn, err := d.prepare(header)
			if err != nil {
				return nil, "", err
			}
			return func(rec record) ([]event.Event, error) { return fn(rec, nil) }, d.Columns.OpportunityID, nil
		}}
}

// moreFunc is given the events of a deal's record and returns them with
// what a vendor's format adds, or an error refusing the record.
type moreFunc func(rec record, evs []event.Event) ([]event.Event, error)

// prepare finds the columns of a deals file with header and returns the
// function making the events of each record: those of row, with what
// more (if not nil) adds, each valid.
func (d Deals) prepare(header []string) (func(rec record, more moreFunc) ([]event.Event, error), error) {
	h := d.History
	h.Columns.OccurredAt, h.Columns.RowID = h.Columns.CreatedAt, ""
	cols := []string{d.Pipeline, d.StageSince}
	for _, sd := range d.StageDates {
		cols = append(cols, sd.Column, sd.Exited)
	}
	col, err := h.index(header, cols...)
	if err != nil {
		return nil, err
	}
	return func(rec record, more moreFunc) ([]event.Event, error) {
		evs, err := d.row(h, rec, col)
		if err == nil && more != nil {
			evs, err = more(rec, evs)
		}
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			if err := ev.Validate(); err != nil {
				return nil, err
			}
		}
		return evs, nil
	}, nil
}

// recordFunc makes the events of one record of a file, or says why the
// record is refused.
type recordFunc func(rec record) ([]event.Event, error)

// records is a CSV format whose records each become events of their own:
// a deal's record (Deals, Opportunity, HubSpotDeals, PipedriveDeals) or a
// contact role's (ContactRoles), each deal or row at most once a file.
type records struct {
	encoding string // see Decode
	comma    rune   // 0 for ','
	// prepare checks the header and returns the function of its records
	// and the column of their ids. A record is refused as a repeat when
	// its id is that of an earlier record not refused (`Id: "006A"
	// repeats the opportunity at line 3` for the column "Id" and noun
	// "opportunity"): its first event's id with byEvent, else its deal's.
	prepare func(header []string) (fn recordFunc, idColumn string, err error)
	noun    string
	byEvent bool
}

// key is the id of a record of events evs that no later record may have.
func (rs records) key(evs []event.Event) string {
	if rs.byEvent {
		return evs[0].ID
	}
	return evs[0].OpportunityID
}

// parse reads data whole: a Row for each record, in file order.
func (rs records) parse(data []byte) (Rows, error) {
	header, rows, recs, err := readCSV(data, rs.encoding, rs.comma)
	if err != nil {
		return nil, err
	}
	fn, idColumn, err := rs.prepare(header)
	if err != nil {
		return nil, err
	}
	seen := map[string]int{} // id -> line
	for _, rec := range recs {
		evs, err := fn(rec)
		if err == nil {
			err = repeated(seen, idColumn, rs.noun, rs.key(evs))
		}
		if err != nil {
			rows[rec.row].Err = err
			continue
		}
		seen[rs.key(evs)] = rec.line
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
	cell := func(name string) string {
		if name == "" {
			return ""
		}
		return strings.TrimSpace(rec.cells[col[name]])
	}
	date := func(name string) (time.Time, error) {
		v := cell(name)
		if v == "" {
			return time.Time{}, nil
		}
		t, err := parseTime(v, h.DateLayout)
		if err != nil {
			return t, fmt.Errorf("%s: %w", name, err)
		}
		return t, nil
	}
	closed, err := date(h.Columns.ClosedAt)
	if err != nil {
		return nil, err
	}
	since, err := date(d.StageSince)
	if err != nil {
		return nil, err
	}
	pipeline := cell(d.Pipeline)
	var entries []stageEntry
	last := s.at
	current := false
	for rank, sd := range d.StageDates {
		e := stageEntry{StageDate: sd, rank: rank}
		if e.at, err = date(sd.Column); err != nil {
			return nil, err
		}
		if e.at.IsZero() {
			continue
		}
		if e.exited, err = date(sd.Exited); err != nil {
			return nil, err
		}
		e.Pipeline = cmp.Or(e.Pipeline, pipeline)
		entries = append(entries, e)
		if e.at.After(last) {
			last = e.at
		}
		current = current || sd.is(s.stage, pipeline)
	}
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].before(entries[j]) })
	if !current && s.stage != "" && (len(entries) > 0 || !closed.IsZero() || !since.IsZero()) {
		e := stageEntry{StageDate: StageDate{Stage: s.stage}, rank: len(d.StageDates), at: cmp.Or(since, closed, last)}
		for i, sd := range d.StageDates {
			if sd.is(s.stage, pipeline) {
				e.StageDate, e.rank = sd, i
			}
		}
		e.Pipeline = cmp.Or(e.Pipeline, pipeline)
		entries = append(entries, e)
	}
	created := h.created(&s)
	created.ID = s.opp + ":created"
	o := created.Payload.(*event.Opportunity)
	o.Pipeline = pipeline
	if len(entries) > 0 {
		o.Stage = ""
	}
	evs := []event.Event{created}
	from := ""
	for i, e := range entries {
		sc := &event.StageChange{Pipeline: e.Pipeline, From: from, To: e.Stage}
		if e.Stage == s.stage && s.probability != nil {
			sc.Probability = *s.probability
		}
		id := fmt.Sprintf("%s:stage:%02d:%s", s.opp, e.rank, e.Stage)
		if e.Key != "" {
			tie := 0
			for j := i - 1; j >= 0 && entries[j].at.Equal(e.at); j-- {
				tie++
			}
			id = fmt.Sprintf("%s:stage:%02d:%s", s.opp, tie, e.Key)
		}
		ev := event.Event{ID: id, Tenant: h.Tenant, Source: h.Source, OccurredAt: e.at, OpportunityID: s.opp}
		sev := ev
		sev.Type, sev.Payload = event.StageChanged, sc
		evs = append(evs, sev)
		switch e.Status {
		case "won":
			ev.ID, ev.Type, ev.Payload = id+":won", event.ClosedWon, &event.Won{}
			evs = append(evs, ev)
		case "lost":
			ev.ID, ev.Type, ev.Payload = id+":lost", event.ClosedLost, &event.Lost{}
			evs = append(evs, ev)
		}
		from = e.Stage
	}
	return evs, nil
}
