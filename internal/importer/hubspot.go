package importer

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/webhook"
)

// HubSpotDeals reads HubSpot's deals export (CRM > Deals > Export, CSV),
// one row per deal, with its stage-history columns: for each stage,
// "Date entered" and "Date exited", HubSpot's stage calculated
// properties (knowledge.hubspot.com/properties/stage-calculated-properties).
// The header names columns by their labels, as the export writes them —
// Record ID, Deal Name, Deal Stage, Pipeline, Amount, Currency, Close
// Date, Create Date, Deal owner, Closed Lost Reason, Closed Won Reason,
// Date entered "STAGE (PIPELINE)" (quoted with " or ', or not) — or by
// the properties' internal names: hs_object_id, dealname, dealstage,
// pipeline, amount, deal_currency_code, closedate, createdate,
// hubspot_owner_id, closed_lost_reason, closed_won_reason,
// hs_date_entered_STAGEID, hs_v2_date_entered_STAGEID (and _exited_).
// Record ID, Create Date and Deal Stage are required; other columns are
// read when present. When a stage has several entered (or exited)
// columns, the first filled one counts.
//
// A row becomes, as Deals makes it (ids RECORD:created, RECORD:stage:NN:KEY):
//
//   - opportunity.created at Create Date with the deal's name, amount,
//     currency, close date, owner and pipeline as they are now;
//   - one opportunity.stage_changed per "Date entered" filled, in time
//     order, entries of the same time in the order their exits say, then
//     in pipeline order;
//   - the current stage (Deal Stage), when it has no date entered, dated
//     Close Date if the stage is closed, else the row's latest date;
//   - with Pipelines, after every entry into a closed stage (metadata
//     isClosed) opportunity.closed_won (probability 1.0) or closed_lost,
//     the current stage's with the Closed Won/Lost Reason.
//
// With Pipelines, stage and pipeline ids (of internal-name columns, or of
// Deal Stage and Pipeline cells) become their labels, which the ladder
// maps, and KEY is the stage id; a row whose stage is not in the file is
// refused. Without them the labels are the columns' own (an id where the
// file has only ids) and KEY is the column's "STAGE (PIPELINE)"; no close
// events are made, so only a stage the ladder lists as won or lost closes
// the deal.
//
// What the export cannot tell: re-entries and backward moves (HubSpot
// keeps one entered and one exited date per stage), when amount, close
// date or owner changed, and who the owner is beyond what Deal owner
// says (a name in a UI export, an owner id with internal names).
//
// Times: HubSpot stores UTC and shows times in the account's time zone
// (developers.hubspot.com/docs/faq/how-should-timestamps-be-formatted-for-hubspots-apis);
// an export writes them without an offset, so they are read in Location
// (Settings > Account defaults > Time zone; nil: UTC). A value with an
// offset or Z is taken as written; a date without a time is midnight in
// Location. Close Date is a calendar date as written.
type HubSpotDeals struct {
	Tenant string
	// Currency is the currency of amounts when there is no Currency
	// column or its cell is empty.
	Currency string
	// Pipelines are the account's deal pipelines (ParseHubSpotPipelines);
	// nil without the pipelines file.
	Pipelines []HubSpotPipeline
	// Location is the time zone of times written without an offset.
	Location *time.Location
}

// HubSpotPipeline is a deal pipeline of the CRM pipelines API.
type HubSpotPipeline struct {
	ID, Label    string
	DisplayOrder int
	Stages       []HubSpotStage
}

// HubSpotStage is a stage of a pipeline: Closed and Probability are its
// metadata.isClosed and metadata.probability (1.0 is closed won).
type HubSpotStage struct {
	ID, Label    string
	DisplayOrder int
	Closed       bool
	Probability  float64
}

// status is "won" or "lost" for a closed stage, else "".
func (s HubSpotStage) status() string {
	switch {
	case !s.Closed:
		return ""
	case s.Probability >= 1:
		return "won"
	}
	return "lost"
}

// ParseHubSpotPipelines reads the deal pipelines file: the response of
// GET /crm/v3/pipelines/deals ({"results": [pipeline, ...]}) or of one
// pipeline (GET /crm/v3/pipelines/deals/{pipelineId}), as the CRM
// pipelines API documents them
// (developers.hubspot.com/docs/api/crm/pipelines): a pipeline has id,
// label, displayOrder and stages; a stage id, label, displayOrder and
// metadata {"isClosed": "true", "probability": "1.0"} (strings in the
// API's answers; JSON booleans and numbers are read too). Pipelines and
// stages are returned in display order.
func ParseHubSpotPipelines(data []byte) ([]HubSpotPipeline, error) {
	type stage struct {
		ID           string `json:"id"`
		Label        string `json:"label"`
		DisplayOrder int    `json:"displayOrder"`
		Metadata     struct {
			IsClosed    json.RawMessage `json:"isClosed"`
			Probability json.RawMessage `json:"probability"`
		} `json:"metadata"`
	}
	type pipeline struct {
		ID           string  `json:"id"`
		Label        string  `json:"label"`
		DisplayOrder int     `json:"displayOrder"`
		Stages       []stage `json:"stages"`
	}
	var doc struct {
		Results *[]pipeline `json:"results"`
		pipeline
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("pipelines: %w", err)
	}
	ps := []pipeline{doc.pipeline}
	if doc.Results != nil {
		ps = *doc.Results
	}
	var out []HubSpotPipeline
	stageIDs := map[string]string{}
	for i, p := range ps {
		if p.ID == "" || p.Label == "" || len(p.Stages) == 0 {
			return nil, fmt.Errorf("pipelines: pipeline %d: want an id, a label and stages", i)
		}
		hp := HubSpotPipeline{ID: p.ID, Label: p.Label, DisplayOrder: p.DisplayOrder}
		for _, s := range p.Stages {
			if s.ID == "" || s.Label == "" {
				return nil, fmt.Errorf("pipelines: pipeline %s: a stage without an id or a label", p.ID)
			}
			if other, ok := stageIDs[s.ID]; ok {
				return nil, fmt.Errorf("pipelines: stage id %s in pipelines %s and %s", s.ID, other, p.ID)
			}
			stageIDs[s.ID] = p.ID
			closed, err := jsonBool(s.Metadata.IsClosed)
			if err != nil {
				return nil, fmt.Errorf("pipelines: stage %s: metadata.isClosed: %w", s.ID, err)
			}
			prob, err := jsonNumber(s.Metadata.Probability)
			if err != nil || prob < 0 || prob > 1 {
				return nil, fmt.Errorf("pipelines: stage %s: metadata.probability: want 0.0 to 1.0", s.ID)
			}
			hp.Stages = append(hp.Stages, HubSpotStage{ID: s.ID, Label: s.Label, DisplayOrder: s.DisplayOrder, Closed: closed, Probability: prob})
		}
		slices.SortStableFunc(hp.Stages, func(a, b HubSpotStage) int { return cmp.Compare(a.DisplayOrder, b.DisplayOrder) })
		out = append(out, hp)
	}
	slices.SortStableFunc(out, func(a, b HubSpotPipeline) int {
		return cmp.Or(cmp.Compare(a.DisplayOrder, b.DisplayOrder), cmp.Compare(a.Label, b.Label))
	})
	return out, nil
}

// jsonBool reads true/false or "true"/"false"; absent is false.
func jsonBool(raw json.RawMessage) (bool, error) {
	v := strings.Trim(string(bytes.TrimSpace(raw)), `"`)
	if v == "" || v == "null" {
		return false, nil
	}
	return strconv.ParseBool(v)
}

// jsonNumber reads a number or a string holding one; absent is 0.
func jsonNumber(raw json.RawMessage) (float64, error) {
	v := strings.Trim(string(bytes.TrimSpace(raw)), `"`)
	if v == "" || v == "null" {
		return 0, nil
	}
	return strconv.ParseFloat(v, 64)
}

// hubspotColumns are the standard columns of a deals export: labels and
// internal names.
var hubspotColumns = map[string][]string{
	"id":         {"Record ID", "hs_object_id", "Deal ID"},
	"name":       {"Deal Name", "dealname"},
	"stage":      {"Deal Stage", "dealstage"},
	"pipeline":   {"Pipeline", "pipeline"},
	"amount":     {"Amount", "amount"},
	"currency":   {"Currency", "deal_currency_code"},
	"closeDate":  {"Close Date", "closedate"},
	"created":    {"Create Date", "createdate"},
	"owner":      {"Deal owner", "hubspot_owner_id"},
	"lostReason": {"Closed Lost Reason", "closed_lost_reason"},
	"wonReason":  {"Closed Won Reason", "closed_won_reason"},
}

// The virtual columns a vendor format adds to each record for Deals: the
// deal's pipeline and when it closed. A CSV header cannot hold a NUL.
const (
	pipelineColumn = "\x00pipeline"
	closedColumn   = "\x00closed"
)

// hsStageCols is a stage of the export with its entered and exited columns.
type hsStageCols struct {
	StageDate
	entered, exited []int
}

// hubspotFile is what a header says: where each column is.
type hubspotFile struct {
	names  []string       // the header's column names
	col    map[string]int // standard column -> index
	stages []*hsStageCols
	// byID and byLabel find a stage of Pipelines by its id and by
	// "pipeline label\x00stage label" (both lower case).
	byID, byLabel map[string]hsStage
}

// hsStage is a stage of Pipelines with its pipeline.
type hsStage struct {
	HubSpotStage
	pipeline *HubSpotPipeline
}

// Parse reads a deals export; the error is for the file as a whole (no
// header, a required column missing).
func (p HubSpotDeals) Parse(data []byte) (Rows, error) {
	if err := p.history().checkCurrency(); err != nil {
		return nil, err
	}
	return p.records().parse(data)
}

// history is the History of p's deals, without its columns.
func (p HubSpotDeals) history() History {
	return History{Tenant: p.Tenant, Source: webhook.HubSpotSource, Currency: p.Currency}
}

// records is p as a format of one record a deal.
func (p HubSpotDeals) records() records {
	return records{noun: "deal", prepare: func(header []string) (recordFunc, string, error) {
		h := p.history()
		f, err := p.header(header)
		if err != nil {
			return nil, "", err
		}
		header = append(trimHeader(header), pipelineColumn, closedColumn)
		name := func(k string) string {
			if i, ok := f.col[k]; ok {
				return header[i]
			}
			return ""
		}
		h.Columns = Columns{OpportunityID: name("id"), CreatedAt: name("created"), Stage: name("stage"), Name: name("name"),
			Amount: name("amount"), Currency: name("currency"), CloseDate: name("closeDate"), Owner: name("owner"), ClosedAt: closedColumn}
		d := Deals{History: h, Pipeline: pipelineColumn}
		for _, s := range f.stages {
			sd := s.StageDate
			if len(s.entered) > 0 {
				sd.Column = header[s.entered[0]]
			}
			if len(s.exited) > 0 {
				sd.Exited = header[s.exited[0]]
			}
			d.StageDates = append(d.StageDates, sd)
		}
		deal, err := d.prepare(header)
		if err != nil {
			return nil, "", err
		}
		reason := func(rec record, k string) string {
			if i, ok := f.col[k]; ok {
				return strings.TrimSpace(rec.cells[i])
			}
			return ""
		}
		return func(rec record) ([]event.Event, error) {
			rec.cells = append(slices.Clip(rec.cells), "", "")
			status, err := p.fix(f, rec.cells)
			if err != nil {
				return nil, err
			}
			return deal(rec, func(rec record, evs []event.Event) ([]event.Event, error) {
				// The reasons are the current stage's: its close is the last.
				for i := len(evs) - 1; i >= 0; i-- {
					switch pl := evs[i].Payload.(type) {
					case *event.Won:
						if status == "won" {
							pl.Reason = reason(rec, "wonReason")
						}
						return evs, nil
					case *event.Lost:
						if status == "lost" {
							pl.Reason = reason(rec, "lostReason")
						}
						return evs, nil
					}
				}
				return evs, nil
			})
		}, h.Columns.OpportunityID, nil
	}}
}

// trimHeader returns the header's names as index finds them.
func trimHeader(header []string) []string {
	out := make([]string, len(header))
	for i, n := range header {
		if i == 0 {
			n = strings.TrimPrefix(n, "\ufeff")
		}
		out[i] = strings.TrimSpace(n)
	}
	return out
}

// findColumns returns the index of each column of want found in header,
// matching any of its names, case-insensitively; the first match wins.
func findColumns(header []string, want map[string][]string) map[string]int {
	at := map[string]int{}
	for i, n := range trimHeader(header) {
		if _, ok := at[strings.ToLower(n)]; !ok {
			at[strings.ToLower(n)] = i
		}
	}
	col := map[string]int{}
	for k, names := range want {
		for _, n := range names {
			if i, ok := at[strings.ToLower(n)]; ok {
				col[k] = i
				break
			}
		}
	}
	return col
}

// header finds the columns of a deals export and its stages: with
// Pipelines every stage of every pipeline in display order, then stages
// of columns the pipelines do not have; without, the columns' stages in
// the file's order.
func (p HubSpotDeals) header(header []string) (*hubspotFile, error) {
	f := &hubspotFile{names: trimHeader(header), col: findColumns(header, hubspotColumns), byID: map[string]hsStage{}, byLabel: map[string]hsStage{}}
	for _, k := range []string{"id", "created", "stage"} {
		if _, ok := f.col[k]; !ok {
			return nil, fmt.Errorf("header: no column %q (columns: %s)", hubspotColumns[k][0], strings.Join(header, ", "))
		}
	}
	byKey := map[string]*hsStageCols{}
	for i := range p.Pipelines {
		pl := &p.Pipelines[i]
		for _, s := range pl.Stages {
			hs := hsStage{s, pl}
			f.byID[strings.ToLower(s.ID)] = hs
			f.byLabel[strings.ToLower(pl.Label+"\x00"+s.Label)] = hs
			c := &hsStageCols{StageDate: StageDate{Stage: s.Label, Pipeline: pl.Label, Key: s.ID, Status: s.status()}}
			byKey[s.ID] = c
			f.stages = append(f.stages, c)
		}
	}
	for i, name := range f.names {
		exited, stage, pipeline, id, ok := hubspotStageColumn(name)
		if !ok {
			continue
		}
		key := id
		if s, known := f.byID[strings.ToLower(id)]; id != "" && known {
			key = s.ID
		} else if s, known := f.byLabel[strings.ToLower(pipeline+"\x00"+stage)]; id == "" && known {
			key = s.ID
		} else if id == "" {
			key = stage
			if pipeline != "" {
				key += " (" + pipeline + ")"
			}
		}
		c := byKey[key]
		if c == nil {
			c = &hsStageCols{StageDate: StageDate{Stage: cmp.Or(stage, id), Pipeline: pipeline, Key: key}}
			byKey[key] = c
			f.stages = append(f.stages, c)
		}
		if exited {
			c.exited = append(c.exited, i)
		} else {
			c.entered = append(c.entered, i)
		}
	}
	return f, nil
}

// hubspotStageColumn reads a stage-history column name: a label, Date
// entered "STAGE (PIPELINE)" (or Date exited; quoted with " or ', or
// not), or an internal name, hs_date_entered_ID or hs_v2_date_entered_ID
// (or exited).
func hubspotStageColumn(name string) (exited bool, stage, pipeline, id string, ok bool) {
	lower := strings.ToLower(name)
	for _, prefix := range []string{"hs_date_", "hs_v2_date_"} {
		if rest, found := strings.CutPrefix(lower, prefix); found {
			rest = name[len(name)-len(rest):]
			if v, found := strings.CutPrefix(rest, "entered_"); found && v != "" {
				return false, "", "", v, true
			}
			if v, found := strings.CutPrefix(rest, "exited_"); found && v != "" {
				return true, "", "", v, true
			}
			return false, "", "", "", false
		}
	}
	var rest string
	switch {
	case strings.HasPrefix(lower, "date entered "):
		rest = name[len("date entered "):]
	case strings.HasPrefix(lower, "date exited "):
		exited, rest = true, name[len("date exited "):]
	default:
		return false, "", "", "", false
	}
	rest = strings.TrimSpace(rest)
	for _, q := range []string{`"`, `'`, "“", "‘"} {
		if strings.HasPrefix(rest, q) {
			rest = strings.TrimSpace(strings.Trim(rest, `"'“”‘’`))
			break
		}
	}
	stage = rest
	if open := strings.LastIndex(rest, " ("); open > 0 && strings.HasSuffix(rest, ")") {
		stage, pipeline = strings.TrimSpace(rest[:open]), strings.TrimSpace(rest[open+2:len(rest)-1])
	}
	if stage == "" {
		return false, "", "", "", false
	}
	return exited, stage, pipeline, "", true
}

// fix rewrites a record's cells to what Deals reads: times in UTC, Close
// Date as a date, stage and pipeline as labels, the virtual pipeline and
// closed cells. It returns the current stage's status ("won", "lost" or
// "" when open or unknown).
func (p HubSpotDeals) fix(f *hubspotFile, cells []string) (string, error) {
	n := len(cells) - 2 // the virtual cells
	get := func(k string) (int, string) {
		i, ok := f.col[k]
		if !ok {
			return -1, ""
		}
		return i, strings.TrimSpace(cells[i])
	}
	if i, v := get("created"); v != "" {
		t, err := exportTime(v, p.Location)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.names[i], err)
		}
		cells[i] = t.UTC().Format(time.RFC3339Nano)
	}
	for _, s := range f.stages {
		for _, cols := range [][]int{s.entered, s.exited} {
			// The first filled column of the stage is read, from the
			// first column of the stage (Deals reads that one).
			for _, i := range cols {
				if v := strings.TrimSpace(cells[i]); v != "" {
					t, err := exportTime(v, p.Location)
					if err != nil {
						return "", fmt.Errorf("%s: %w", f.names[i], err)
					}
					cells[cols[0]] = t.UTC().Format(time.RFC3339Nano)
					break
				}
			}
		}
	}
	var closeAt time.Time
	if i, v := get("closeDate"); v != "" {
		t, err := exportTime(v, p.Location)
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.names[i], err)
		}
		cells[i], closeAt = t.Format(time.DateOnly), t.UTC()
	}
	si, stage := get("stage")
	pi, pipeline := get("pipeline")
	cells[n] = pipeline
	if p.Pipelines == nil || stage == "" {
		return "", nil
	}
	s, err := f.stage(stage, pipeline, pi >= 0)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.names[si], err)
	}
	cells[si], cells[n] = s.Label, s.pipeline.Label
	st := s.status()
	if st != "" && !closeAt.IsZero() {
		cells[n+1] = closeAt.Format(time.RFC3339Nano)
	}
	return st, nil
}

// stage finds the Deal Stage cell (an id or a label) among the pipelines:
// in the row's pipeline (an id or a label) when the file has a Pipeline
// column, else in any pipeline if only one has it.
func (f *hubspotFile) stage(stage, pipeline string, hasPipeline bool) (hsStage, error) {
	if s, ok := f.byID[strings.ToLower(stage)]; ok {
		if !hasPipeline || pipeline == "" || strings.EqualFold(pipeline, s.pipeline.ID) || strings.EqualFold(pipeline, s.pipeline.Label) {
			return s, nil
		}
	}
	var found []hsStage
	for _, s := range f.byLabel {
		if !strings.EqualFold(s.Label, stage) {
			continue
		}
		if hasPipeline && pipeline != "" && !strings.EqualFold(pipeline, s.pipeline.ID) && !strings.EqualFold(pipeline, s.pipeline.Label) {
			continue
		}
		found = append(found, s)
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		if hasPipeline && pipeline != "" {
			return hsStage{}, fmt.Errorf("%q is not a stage of pipeline %q in the pipelines file", stage, pipeline)
		}
		return hsStage{}, fmt.Errorf("%q is not a stage in the pipelines file", stage)
	}
	return hsStage{}, fmt.Errorf("%q is a stage of several pipelines and the row names none", stage)
}

// zonedLayouts are the date-time forms of exports with a zone.
var zonedLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05Z07:00",
}

// exportLayouts are the date-time forms of exports without a zone, read
// in the export's time zone.
var exportLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	time.DateOnly,
}

// exportTime reads a date or date-time of an export: with a zone (ISO
// 8601, Z or an offset) as written, else as a wall-clock time in loc (nil:
// UTC).
func exportTime(v string, loc *time.Location) (time.Time, error) {
	if loc == nil {
		loc = time.UTC
	}
	for _, l := range zonedLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	for _, l := range exportLayouts {
		if t, err := time.ParseInLocation(l, v, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New(strconv.Quote(v) + " is not a date or time (want 2024-03-27, 2024-03-27 14:30 or ISO 8601)")
}
