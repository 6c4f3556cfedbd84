package importer

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/commitflow/commitflow/internal/event"
)

// Columns names the CSV columns that hold each field of a history row;
// an empty name means the file does not have that field.
type Columns struct {
	RowID            string `yaml:"row_id"`
	OpportunityID    string `yaml:"opportunity_id"`
	OccurredAt       string `yaml:"occurred_at"`
	Stage            string `yaml:"stage"`
	Amount           string `yaml:"amount"`
	Currency         string `yaml:"currency"`
	CloseDate        string `yaml:"close_date"`
	Probability      string `yaml:"probability"`
	ForecastCategory string `yaml:"forecast_category"`
	Owner            string `yaml:"owner"`
	Name             string `yaml:"name"`
	Deleted          string `yaml:"deleted"`
	// CreatedAt and ClosedAt are the dates of a "one row per deal" file
	// (see Deals); CreatedAt stands for OccurredAt there.
	CreatedAt string `yaml:"created_at"`
	ClosedAt  string `yaml:"closed_at"`
	// Attributes maps free breakdown attributes (event.Opportunity.
	// Attributes) to the columns holding them.
	Attributes map[string]string `yaml:"attributes"`
}

// History reads a "one row per change" CSV: each row holds an
// opportunity's fields as they were after one change, like Salesforce's
// OpportunityHistory. The rows of an opportunity, in time order (file
// order among equal times), become: for the first, opportunity.created
// with every field it has; for each later one, one typed event per field
// that differs from the row before: opportunity.stage_changed,
// amount_changed, close_date_changed, forecast_category_changed,
// owner_changed, and opportunity.updated for a probability changed within
// the same stage. An empty cell means "unknown", never "changed to
// nothing". Closes are not events of their own: a move to a stage the
// tenant's ladder lists as won or lost closes the deal when derived.
type History struct {
	Tenant, Source string
	Columns        Columns
	// ProbabilityPercent says probabilities are written 0..100, not 0..1.
	ProbabilityPercent bool
	// Currency is the currency of amounts when there is no currency
	// column, or its cell is empty; may be empty.
	Currency string
	// Encoding is "utf-8", "windows-1252", or "" / "auto": UTF-8 if the
	// file is valid UTF-8, else Windows-1252.
	Encoding string
	// TimeLayout, if set, is tried before the built-in layouts (ISO 8601
	// with or without time and zone, as Salesforce's Data Export writes).
	TimeLayout string
	// DateLayout, if set, is tried first for close dates.
	DateLayout string
	// Comma is the field separator (default ',').
	Comma rune
}

// SalesforceHistory is the History of a Salesforce OpportunityHistory
// export (Data Export or Data Loader): columns Id, OpportunityId,
// CreatedDate, StageName, Amount, CloseDate, Probability (percent),
// ForecastCategory, IsDeleted and, in multi-currency orgs,
// CurrencyIsoCode. CreatedById is who made the change, not the owner, and
// ExpectedRevenue is Amount × Probability: neither becomes an event.
func SalesforceHistory(tenant, currency string) History {
	return History{
		Tenant: tenant, Source: "salesforce", Currency: currency, ProbabilityPercent: true,
		Columns: Columns{
			RowID: "Id", OpportunityID: "OpportunityId", OccurredAt: "CreatedDate",
			Stage: "StageName", Amount: "Amount", Currency: "CurrencyIsoCode", CloseDate: "CloseDate",
			Probability: "Probability", ForecastCategory: "ForecastCategory", Deleted: "IsDeleted",
		},
	}
}

// snapshot is one parsed history row.
type snapshot struct {
	row         int // index in the file's rows
	line        int
	id, opp     string
	at          time.Time
	stage       string
	amount      *float64
	currency    string
	closeDate   event.Date
	probability *float64
	forecast    string
	owner, name string
	attrs       map[string]string // the attributes with a value
}

// Parse reads a history CSV. The error is for the file as a whole (no
// header, a mapped column missing from it); a bad row is a refused Row.
func (h History) Parse(data []byte) (Rows, error) {
	if err := h.checkCurrency(); err != nil {
		return nil, err
	}
	header, rows, recs, err := readCSV(data, h.Encoding, h.Comma)
	if err != nil {
		return nil, err
	}
	col, err := h.index(header)
	if err != nil {
		return nil, err
	}
	var (
		snaps = make([]snapshot, 0, len(recs))
		seen  = make(map[string]int, len(recs)) // row id -> line
	)
	for _, rec := range recs {
		s, err := h.snapshot(rec.cells, col)
		if err == nil && s.id != "" {
			err = repeated(seen, h.Columns.RowID, "row", s.id)
		}
		if err != nil {
			rows[rec.row].Err = err
			continue
		}
		if s.id == "" {
			s.id = contentID(rec.cells)
		}
		seen[s.id] = rec.line
		s.row, s.line = rec.row, rec.line
		snaps = append(snaps, s)
	}
	h.events(rows, snaps)
	return rows, nil
}

// record is a CSV record with as many cells as the header.
type record struct {
	row, line int // index in the rows, first line in the file
	cells     []string
}

// repeated refuses a row whose id an earlier row of the file had: seen
// maps the ids read so far to their lines; column names the id's column
// and noun what the earlier row was in the refusal (`Id:
// "0085g00000H3AAAAA1" repeats the row at line 2` for column "Id" and
// noun "row"). It returns nil for an id not seen.
func repeated(seen map[string]int, column, noun, id string) error {
	if prev, ok := seen[id]; ok {
		return fmt.Errorf("%s: %q repeats the %s at line %d", column, id, noun, prev)
	}
	return nil
}

// readCSV decodes data (see Decode) and reads its header and records:
// one Row for each record, refused for a record that is not valid CSV or
// has not as many cells as the header, and the valid records.
func readCSV(data []byte, encoding string, comma rune) (header []string, rows Rows, recs []record, err error) {
	text, err := Decode(data, encoding)
	if err != nil {
		return nil, nil, nil, err
	}
	// Room for a record a line: most records are one line.
	lines := strings.Count(text, "\n") + 1
	rows, recs = make(Rows, 0, lines), make([]record, 0, lines)
	r := csv.NewReader(strings.NewReader(text))
	if comma != 0 {
		r.Comma = comma
	}
	r.FieldsPerRecord = -1
	if header, err = r.Read(); err != nil {
		return nil, nil, nil, fmt.Errorf("header: %w", err)
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return header, rows, recs, nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, nil, nil, fmt.Errorf("csv: %w", err)
			}
			rows = append(rows, Row{Line: pe.StartLine, Err: fmt.Errorf("csv: %w", pe.Err)})
			continue
		}
		line, _ := r.FieldPos(0)
		if len(rec) != len(header) {
			rows = append(rows, Row{Line: line, Err: fmt.Errorf("%d fields, the header has %d", len(rec), len(header))})
			continue
		}
		recs = append(recs, record{row: len(rows), line: line, cells: rec})
		rows = append(rows, Row{Line: line})
	}
}

// index finds each mapped column in header.
func (h History) index(header []string, extra ...string) (map[string]int, error) {
	at := make(map[string]int, len(header))
	for i, name := range header {
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff")
		}
		at[strings.TrimSpace(name)] = i
	}
	c := h.Columns
	if c.OpportunityID == "" || c.OccurredAt == "" {
		return nil, errors.New("mapping: opportunity_id and occurred_at columns are required")
	}
	col := map[string]int{}
	names := append([]string{c.RowID, c.OpportunityID, c.OccurredAt, c.Stage, c.Amount, c.CloseDate,
		c.Probability, c.ForecastCategory, c.Owner, c.Name, c.Deleted, c.ClosedAt}, extra...)
	for _, name := range c.Attributes {
		names = append(names, name)
	}
	for _, name := range names {
		if name == "" {
			continue
		}
		i, ok := at[name]
		if !ok {
			return nil, fmt.Errorf("header: no column %q (columns: %s)", name, strings.Join(header, ", "))
		}
		col[name] = i
	}
	// The currency column is optional even when named: single-currency
	// Salesforce orgs have no CurrencyIsoCode.
	if i, ok := at[c.Currency]; ok && c.Currency != "" {
		col[c.Currency] = i
	}
	return col, nil
}

// checkCurrency refuses a default currency that is not a code, for the
// whole file: every row without its own would be refused for it.
func (h History) checkCurrency() error {
	if h.Currency != "" && !event.ValidCurrency(h.Currency) {
		return fmt.Errorf("currency %q is not an ISO 4217 currency code (want three letters, e.g. USD)", h.Currency)
	}
	return nil
}

// snapshot parses one record.
func (h History) snapshot(rec []string, col map[string]int) (snapshot, error) {
	c := h.Columns
	cell := func(name string) string {
		if i, ok := col[name]; ok && name != "" {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	var s snapshot
	if d := cell(c.Deleted); d != "" {
		if b, err := strconv.ParseBool(d); err != nil {
			return s, fmt.Errorf("%s: %q is not true or false", c.Deleted, d)
		} else if b {
			return s, fmt.Errorf("%s: a deleted row (in the recycle bin)", c.Deleted)
		}
	}
	if c.RowID != "" {
		if s.id = cell(c.RowID); s.id == "" {
			return s, fmt.Errorf("%s: missing", c.RowID)
		}
	}
	if s.opp = cell(c.OpportunityID); s.opp == "" {
		return s, fmt.Errorf("%s: missing", c.OpportunityID)
	}
	var err error
	if s.at, err = parseTime(cell(c.OccurredAt), h.TimeLayout); err != nil {
		return s, fmt.Errorf("%s: %w", c.OccurredAt, err)
	}
	s.stage, s.forecast, s.owner, s.name = cell(c.Stage), cell(c.ForecastCategory), cell(c.Owner), cell(c.Name)
	for k, name := range c.Attributes {
		if v := cell(name); v != "" {
			if n := utf8.RuneCountInString(v); n > event.MaxAttributeValue {
				return s, fmt.Errorf("%s: %d characters, at most %d", name, n, event.MaxAttributeValue)
			}
			if s.attrs == nil {
				s.attrs = map[string]string{}
			}
			s.attrs[k] = v
		}
	}
	if s.currency = cell(c.Currency); s.currency == "" {
		s.currency = h.Currency
	} else if !event.ValidCurrency(s.currency) {
		return s, fmt.Errorf("%s: %q is not an ISO 4217 currency code (want three letters, e.g. USD)", c.Currency, s.currency)
	}
	if v := cell(c.Amount); v != "" {
		a, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(a) || math.IsInf(a, 0) || a < 0 {
			return s, fmt.Errorf("%s: %q is not an amount >= 0", c.Amount, v)
		}
		s.amount = &a
	}
	if v := cell(c.CloseDate); v != "" {
		t, err := parseTime(v, h.DateLayout)
		if err != nil {
			return s, fmt.Errorf("%s: %w", c.CloseDate, err)
		}
		s.closeDate = event.Date(t.Format(time.DateOnly))
	}
	if v := cell(c.Probability); v != "" {
		p, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
		if h.ProbabilityPercent || strings.HasSuffix(v, "%") {
			p /= 100
		}
		if err != nil || math.IsNaN(p) || p < 0 || p > 1 {
			return s, fmt.Errorf("%s: %q is not a probability", c.Probability, v)
		}
		s.probability = &p
	}
	// The envelope's checks (id length, time range, tenant and source
	// tokens), on the row's fields; an id from the content comes later.
	ev := event.Event{ID: s.id + "-", Tenant: h.Tenant, Source: h.Source, Type: event.OpportunityCreated,
		OccurredAt: s.at, OpportunityID: s.opp, Payload: &event.Opportunity{CloseDate: s.closeDate, Attributes: s.attrs}}
	if err := ev.Validate(); err != nil {
		return s, err
	}
	return s, nil
}

// events fills in the events of every parsed row, diffing each
// opportunity's rows in time order (file order among equal times: snaps
// are in file order).
func (h History) events(rows Rows, snaps []snapshot) {
	var arena eventArena
	h.diff(snaps, func(s *snapshot, evs []event.Event) { rows[s.row].Events = arena.copy(evs) })
}

// diff calls fn with each of snaps, rows of one or more opportunities in
// file order, and the events it becomes: each opportunity's rows in time
// order (file order among equal times), the first opportunity.created and
// each later one its changes from the row before (which it inherits the
// unknown fields of). evs is only valid until fn returns.
func (h History) diff(snaps []snapshot, fn func(s *snapshot, evs []event.Event)) {
	order := make([]int32, len(snaps))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &snaps[i], &snaps[j]
		if c := strings.Compare(a.opp, b.opp); c != 0 {
			return c
		}
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(i, j)
	})
	var (
		prev    *snapshot
		scratch []event.Event
	)
	for _, i := range order {
		s := &snaps[i]
		if prev == nil || prev.opp != s.opp {
			scratch = append(scratch[:0], h.created(s))
		} else {
			scratch = h.changes(prev, s, scratch[:0])
			s.inherit(prev)
		}
		fn(s, scratch)
		prev = s
	}
}

// eventArena hands out copies of event slices cut from large chunks: one
// allocation a chunk instead of one a row.
type eventArena struct{ free []event.Event }

// copy returns a copy of evs, nil for none, with no room to append into
// the next copy's events.
func (a *eventArena) copy(evs []event.Event) []event.Event {
	if len(evs) == 0 {
		return nil
	}
	if len(evs) > cap(a.free)-len(a.free) {
		a.free = make([]event.Event, 0, max(4096, len(evs)))
	}
	n := len(a.free)
	a.free = append(a.free, evs...)
	return a.free[n:len(a.free):len(a.free)]
}

// inherit fills s's unknown fields from the row before.
func (s *snapshot) inherit(p *snapshot) {
	if s.stage == "" {
		s.stage = p.stage
	}
	if s.amount == nil {
		s.amount = p.amount
	}
	if s.closeDate == "" {
		s.closeDate = p.closeDate
	}
	if s.probability == nil {
		s.probability = p.probability
	}
	if s.forecast == "" {
		s.forecast = p.forecast
	}
	if s.owner == "" {
		s.owner = p.owner
	}
	for k, v := range p.attrs {
		if _, ok := s.attrs[k]; !ok {
			if s.attrs == nil {
				s.attrs = map[string]string{}
			}
			s.attrs[k] = v
		}
	}
}

func (h History) event(s *snapshot, suffix string, t event.Type, p event.Payload) event.Event {
	return event.Event{ID: s.id + suffix, Tenant: h.Tenant, Source: h.Source, Type: t,
		OccurredAt: s.at, OpportunityID: s.opp, Payload: p}
}

func (h History) created(s *snapshot) event.Event {
	p := &event.Opportunity{Name: s.name, Currency: s.currency, CloseDate: s.closeDate, Stage: s.stage,
		ForecastCategory: s.forecast, OwnerID: s.owner, Attributes: s.attrs}
	if s.amount != nil {
		p.Amount = *s.amount
	}
	if s.probability != nil {
		p.Probability = *s.probability
	}
	return h.event(s, "", event.OpportunityCreated, p)
}

// changes appends to evs the events of s, the row after p of the same
// opportunity.
func (h History) changes(p, s *snapshot, evs []event.Event) []event.Event {
	stageMoved := s.stage != "" && s.stage != p.stage
	if stageMoved {
		sc := &event.StageChange{From: p.stage, To: s.stage}
		if s.probability != nil {
			sc.Probability = *s.probability
		}
		evs = append(evs, h.event(s, ":stage", event.StageChanged, sc))
	}
	if s.amount != nil && (p.amount == nil || *s.amount != *p.amount) {
		ac := &event.AmountChange{To: *s.amount, Currency: s.currency}
		if p.amount != nil {
			ac.From = *p.amount
		}
		evs = append(evs, h.event(s, ":amount", event.AmountChanged, ac))
	}
	if s.closeDate != "" && s.closeDate != p.closeDate {
		evs = append(evs, h.event(s, ":close_date", event.CloseDateChanged, &event.CloseDateChange{From: p.closeDate, To: s.closeDate}))
	}
	if s.forecast != "" && s.forecast != p.forecast {
		evs = append(evs, h.event(s, ":forecast_category", event.ForecastCategoryChanged,
			&event.ForecastCategoryChange{From: p.forecast, To: s.forecast}))
	}
	if s.owner != "" && s.owner != p.owner {
		evs = append(evs, h.event(s, ":owner", event.OwnerChanged, &event.OwnerChange{From: p.owner, To: s.owner}))
	}
	var attrs map[string]string
	for k, v := range s.attrs {
		if p.attrs[k] != v {
			if attrs == nil {
				attrs = map[string]string{}
			}
			attrs[k] = v
		}
	}
	if attrs != nil {
		evs = append(evs, h.event(s, ":attributes", event.OpportunityUpdated, &event.Opportunity{Attributes: attrs}))
	}
	probMoved := s.probability != nil && (p.probability == nil || *s.probability != *p.probability)
	switch {
	case probMoved && *s.probability == 0:
		// Only a probability change can say 0 (elsewhere it means unchanged).
		pc := &event.ProbabilityChange{}
		if p.probability != nil {
			pc.From = *p.probability
		}
		evs = append(evs, h.event(s, ":probability", event.ProbabilityChanged, pc))
	case probMoved && !stageMoved:
		evs = append(evs, h.event(s, ":probability", event.OpportunityUpdated, &event.Opportunity{Probability: *s.probability}))
	}
	return evs
}

// contentID is the id of a row without an id column: a hash of its cells.
func contentID(rec []string) string {
	h := sha256.New()
	for _, c := range rec {
		h.Write([]byte(c))
		h.Write([]byte{0})
	}
	return "row-" + hex.EncodeToString(h.Sum(nil))[:24]
}

// timeLayouts are tried in order; a layout without a zone reads UTC.
var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.000Z0700",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	time.DateOnly,
}

// parseTime reads v with layout first, if set, then the built-in layouts.
func parseTime(v, layout string) (time.Time, error) {
	if v == "" {
		return time.Time{}, errors.New("missing")
	}
	if layout != "" {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	// Of the built-in layouts, only a date fits ten characters: try it
	// first rather than failing every other layout on it.
	if len(v) == len(time.DateOnly) {
		if t, err := time.Parse(time.DateOnly, v); err == nil {
			return t, nil
		}
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, v); err == nil {
			return t, nil
		}
	}
	if layout != "" {
		return time.Time{}, fmt.Errorf("%q is not a time (want %s or ISO 8601)", v, layout)
	}
	return time.Time{}, fmt.Errorf("%q is not a time (want ISO 8601, e.g. 2024-03-27T14:30:12.000Z or 2024-03-27)", v)
}

// Decode returns data as UTF-8 text, without a byte-order mark. encoding
// is "utf-8", "windows-1252" (also "cp1252"), or "" / "auto": UTF-8 when
// data is valid UTF-8, Windows-1252 otherwise.
func Decode(data []byte, encoding string) (string, error) {
	data = bytes.TrimPrefix(data, bom)
	cp, err := is1252(encoding, utf8.Valid(data))
	if err != nil {
		return "", err
	}
	if cp {
		return decode1252(data), nil
	}
	return string(data), nil
}

// bom is UTF-8's byte-order mark.
var bom = []byte("\xef\xbb\xbf")

// is1252 says whether text in encoding (see Decode) is read as
// Windows-1252, valid whether it is valid UTF-8.
func is1252(encoding string, valid bool) (bool, error) {
	switch strings.ToLower(encoding) {
	case "", "auto":
		return !valid, nil
	case "utf-8", "utf8":
		if !valid {
			return false, errors.New("encoding: the file is not valid UTF-8 (try --encoding windows-1252)")
		}
		return false, nil
	case "windows-1252", "cp1252":
		return true, nil
	}
	return false, fmt.Errorf("encoding: %q is not utf-8, windows-1252 or auto", encoding)
}

// cp1252 are the characters of bytes 0x80..0x9F in Windows-1252; the
// five undefined bytes map to their C1 control code points, as WHATWG's
// decoder does. The other bytes are the Latin-1 code points.
var cp1252 = [32]rune{
	'€', 0x81, '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', 0x8d, 'Ž', 0x8f,
	0x90, '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', 0x9d, 'ž', 'Ÿ',
}

func decode1252(data []byte) string {
	var b strings.Builder
	b.Grow(len(data) + len(data)/8)
	for _, c := range data {
		switch {
		case c < 0x80:
			b.WriteByte(c)
		case c < 0xa0:
			b.WriteRune(cp1252[c-0x80])
		default:
			b.WriteRune(rune(c))
		}
	}
	return b.String()
}
