package importer

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
)

// FieldHistory reads a Salesforce OpportunityFieldHistory export (Data
// Export or Data Loader: a header of API field names, quoted cells,
// UTF-8 or Windows-1252): one row per change of one tracked field, with
// columns Id, OpportunityId, CreatedById, CreatedDate, Field, DataType,
// OldValue, NewValue and IsDeleted. Each row becomes at most one event,
// whose id is the row's Id and whose time is its CreatedDate:
//
//   - Field "created": opportunity.created, with the value each tracked
//     field had then, read from the OldValue of its first change in the
//     file (a field never changed stays unknown);
//   - Amount: opportunity.amount_changed, cleared when NewValue is empty,
//     in the opportunity's currency at that time (see CurrencyIsoCode);
//   - CloseDate: opportunity.close_date_changed;
//   - StageName: opportunity.stage_changed;
//   - Probability (percent): opportunity.probability_changed, an empty
//     NewValue read as 0;
//   - Owner: opportunity.owner_changed from the row with user ids
//     (DataType EntityId); Salesforce writes every change of a lookup
//     field twice, once with ids and once with names, and the row with
//     names is skipped;
//   - ForecastCategoryName (or ForecastCategory):
//     opportunity.forecast_category_changed;
//   - CurrencyIsoCode (multi-currency orgs): opportunity.updated with the
//     currency, which is also the currency of the amounts after it; before
//     it, amounts are in its OldValue, and without any, in Currency.
//
// Rows of any other field are skipped and counted by ParseCounted. The
// rows of one edit share their CreatedDate and stay separate events at
// that instant. A row in the recycle bin (IsDeleted true), a repeated Id,
// or a value that is not what its field holds is refused.
type FieldHistory struct {
	Tenant, Source string
	// Currency is the currency of amounts of an opportunity whose history
	// has no CurrencyIsoCode change; may be empty.
	Currency string
	// Encoding is "utf-8", "windows-1252" or "" / "auto" (see Decode).
	Encoding string
}

// SalesforceFieldHistory is the FieldHistory of tenant's Salesforce org.
func SalesforceFieldHistory(tenant, currency, encoding string) FieldHistory {
	return FieldHistory{Tenant: tenant, Source: "salesforce", Currency: currency, Encoding: encoding}
}

// Skipped counts well-formed rows that became no event, by Field; the
// name rows of owner changes count as "Owner (names)".
type Skipped map[string]int

// fieldChange is one parsed OpportunityFieldHistory row.
type fieldChange struct {
	row, line          int
	id, opp            string
	at                 time.Time
	field, dataType    string
	oldValue, newValue string
	refused            bool // its value is not what its field holds
}

// The OpportunityFieldHistory Field values that become events.
const (
	sfCreated  = "created"
	sfAmount   = "Amount"
	sfClose    = "CloseDate"
	sfStage    = "StageName"
	sfProb     = "Probability"
	sfOwner    = "Owner"
	sfForecast = "ForecastCategoryName"
	sfCurrency = "CurrencyIsoCode"
)

// Parse reads an OpportunityFieldHistory CSV; the error is for the file
// as a whole (no header, a column missing from it), a bad row is a
// refused Row.
func (h FieldHistory) Parse(data []byte) (Rows, error) {
	rows, _, err := h.ParseCounted(data)
	return rows, err
}

// ParseCounted is Parse that also counts the rows skipped.
func (h FieldHistory) ParseCounted(data []byte) (Rows, Skipped, error) {
	if err := h.checkCurrency(); err != nil {
		return nil, nil, err
	}
	header, rows, recs, err := readCSV(data, h.Encoding, 0)
	if err != nil {
		return nil, nil, err
	}
	col, err := fieldHistoryColumns(header)
	if err != nil {
		return nil, nil, err
	}
	var (
		changes []fieldChange
		seen    = map[string]int{} // row id -> line
	)
	for _, rec := range recs {
		c, err := h.change(rec, col)
		if err == nil {
			err = repeated(seen, "Id", "row", c.id)
		}
		if err != nil {
			rows[rec.row].Err = err
			continue
		}
		seen[c.id] = rec.line
		changes = append(changes, c)
	}
	// Each opportunity's changes in time order, file order among equal
	// times.
	sort.SliceStable(changes, func(i, j int) bool {
		a, b := &changes[i], &changes[j]
		if a.opp != b.opp {
			return a.opp < b.opp
		}
		return a.at.Before(b.at)
	})
	skipped := Skipped{}
	for start := 0; start < len(changes); {
		end := start + 1
		for end < len(changes) && changes[end].opp == changes[start].opp {
			end++
		}
		h.opportunity(rows, changes[start:end], skipped)
		start = end
	}
	return rows, skipped, nil
}

// checkCurrency refuses a default currency that is not a code, for the
// whole file.
func (h FieldHistory) checkCurrency() error {
	if h.Currency != "" && !event.ValidCurrency(h.Currency) {
		return fmt.Errorf("currency %q is not an ISO 4217 currency code (want three letters, e.g. USD)", h.Currency)
	}
	return nil
}

// fieldHistoryColumns finds the columns of an OpportunityFieldHistory
// export's header.
func fieldHistoryColumns(header []string) (map[string]int, error) {
	return sfColumns(header, []string{"Id", "OpportunityId", "CreatedDate", "Field", "OldValue", "NewValue"}, "DataType", "IsDeleted")
}

// change reads one record's cells.
func (h FieldHistory) change(rec record, col map[string]int) (fieldChange, error) {
	cell := sfCell(rec.cells, col)
	c := fieldChange{row: rec.row, line: rec.line, id: cell("Id"), opp: cell("OpportunityId"), field: cell("Field"),
		dataType: cell("DataType"), oldValue: cell("OldValue"), newValue: cell("NewValue")}
	if err := sfDeleted(cell("IsDeleted")); err != nil {
		return c, err
	}
	switch {
	case c.id == "":
		return c, errors.New("Id: missing")
	case c.opp == "":
		return c, errors.New("OpportunityId: missing")
	case c.field == "":
		return c, errors.New("Field: missing")
	}
	var err error
	if c.at, err = parseTime(cell("CreatedDate"), ""); err != nil {
		return c, fmt.Errorf("CreatedDate: %w", err)
	}
	return c, nil
}

// opportunity fills in the events of the changes of one opportunity, in
// time order: the changes first, then the creations, whose payloads read
// the changes not refused.
func (h FieldHistory) opportunity(rows Rows, cs []fieldChange, skipped Skipped) {
	for _, created := range []bool{false, true} {
		for i := range cs {
			c := &cs[i]
			if (c.field == sfCreated) != created {
				continue
			}
			ev, skip, err := h.event(cs, i)
			if err == nil && skip == "" {
				err = ev.Validate()
			} else if err != nil {
				err = fmt.Errorf("%s: %w", c.field, err)
			}
			switch {
			case err != nil:
				rows[c.row].Err, c.refused = err, true
			case skip != "":
				skipped[skip]++
			default:
				rows[c.row].Events = []event.Event{ev}
			}
		}
	}
}

// event is the event of cs[i], or the name it is skipped under.
func (h FieldHistory) event(cs []fieldChange, i int) (ev event.Event, skip string, err error) {
	c := &cs[i]
	ev = event.Event{ID: c.id, Tenant: h.Tenant, Source: h.Source, OccurredAt: c.at, OpportunityID: c.opp}
	switch c.field {
	case sfCreated:
		ev.Type, ev.Payload = event.OpportunityCreated, h.created(cs, i)
	case sfAmount:
		from, err := sfAmountValue(c.oldValue)
		if err != nil {
			return ev, "", fmt.Errorf("OldValue: %w", err)
		}
		to, err := sfAmountValue(c.newValue)
		if err != nil {
			return ev, "", fmt.Errorf("NewValue: %w", err)
		}
		ac := &event.AmountChange{Currency: h.currencyAt(cs, c.at), Cleared: to == nil}
		if from != nil {
			ac.From = *from
		}
		if to != nil {
			ac.To = *to
		}
		ev.Type, ev.Payload = event.AmountChanged, ac
	case sfClose:
		to, err := sfDate(c.newValue)
		if err != nil {
			return ev, "", fmt.Errorf("NewValue: %w", err)
		}
		if to == "" {
			return ev, "", errors.New("NewValue: missing (a close date cannot be cleared)")
		}
		from, err := sfDate(c.oldValue)
		if err != nil {
			return ev, "", fmt.Errorf("OldValue: %w", err)
		}
		ev.Type, ev.Payload = event.CloseDateChanged, &event.CloseDateChange{From: from, To: to}
	case sfStage:
		if c.newValue == "" {
			return ev, "", errors.New("NewValue: missing (a stage cannot be cleared)")
		}
		ev.Type, ev.Payload = event.StageChanged, &event.StageChange{From: c.oldValue, To: c.newValue}
	case sfProb:
		from, err := sfPercent(c.oldValue)
		if err != nil {
			return ev, "", fmt.Errorf("OldValue: %w", err)
		}
		to, err := sfPercent(c.newValue)
		if err != nil {
			return ev, "", fmt.Errorf("NewValue: %w", err)
		}
		ev.Type, ev.Payload = event.ProbabilityChanged, &event.ProbabilityChange{From: from, To: to}
	case sfOwner:
		if !c.ownerIDs() {
			return ev, "Owner (names)", nil
		}
		if c.newValue == "" {
			return ev, "", errors.New("NewValue: missing (an opportunity always has an owner)")
		}
		ev.Type, ev.Payload = event.OwnerChanged, &event.OwnerChange{From: c.oldValue, To: c.newValue}
	case sfForecast, "ForecastCategory":
		if c.newValue == "" {
			return ev, "", errors.New("NewValue: missing (a forecast category cannot be cleared)")
		}
		ev.Type, ev.Payload = event.ForecastCategoryChanged, &event.ForecastCategoryChange{From: c.oldValue, To: c.newValue}
	case sfCurrency:
		if !event.ValidCurrency(c.newValue) {
			return ev, "", fmt.Errorf("NewValue: %q is not an ISO 4217 currency code", c.newValue)
		}
		ev.Type, ev.Payload = event.OpportunityUpdated, &event.Opportunity{Currency: c.newValue}
	default:
		return ev, c.field, nil
	}
	return ev, "", nil
}

// created is the payload of the creation cs[i]: each tracked field as its
// first later change not refused says it was before.
func (h FieldHistory) created(cs []fieldChange, i int) *event.Opportunity {
	p := &event.Opportunity{Currency: h.currencyAt(cs, cs[i].at)}
	seen := map[string]bool{}
	for _, c := range cs[i+1:] {
		field := c.field
		if field == "ForecastCategory" {
			field = sfForecast
		}
		if c.refused || seen[field] || (field == sfOwner && !c.ownerIDs()) {
			continue
		}
		seen[field] = true
		v := c.oldValue
		switch field {
		case sfAmount:
			if a, err := sfAmountValue(v); err == nil && a != nil {
				p.Amount = *a
			}
		case sfClose:
			if d, err := sfDate(v); err == nil {
				p.CloseDate = d
			}
		case sfStage:
			p.Stage = v
		case sfProb:
			if pr, err := sfPercent(v); err == nil {
				p.Probability = pr
			}
		case sfOwner:
			p.OwnerID = v
		case sfForecast:
			p.ForecastCategory = v
		}
	}
	return p
}

// currencyAt is the opportunity's currency at t: the NewValue of its last
// CurrencyIsoCode change (not refused) at or before t, else the OldValue
// of the first one after t, else the default.
func (h FieldHistory) currencyAt(cs []fieldChange, t time.Time) string {
	cur := ""
	for _, c := range cs {
		if c.field != sfCurrency || c.refused {
			continue
		}
		if c.at.After(t) {
			if cur == "" && event.ValidCurrency(c.oldValue) {
				return c.oldValue
			}
			break
		}
		if event.ValidCurrency(c.newValue) {
			cur = c.newValue
		}
	}
	if cur == "" {
		return h.Currency
	}
	return cur
}

// ownerIDs reports whether an Owner row is the one of the pair with user
// ids: DataType EntityId, or without a DataType, values shaped like
// Salesforce ids.
func (c *fieldChange) ownerIDs() bool {
	if c.dataType != "" {
		return strings.EqualFold(c.dataType, "EntityId")
	}
	return sfID(c.newValue) && (c.oldValue == "" || sfID(c.oldValue))
}

// sfID reports whether v is shaped like a Salesforce record id: 15 or 18
// letters and digits.
func sfID(v string) bool {
	if len(v) != 15 && len(v) != 18 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// sfAmountValue reads an amount; nil for an empty cell.
func sfAmountValue(v string) (*float64, error) {
	if v == "" {
		return nil, nil
	}
	a, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(a) || math.IsInf(a, 0) || a < 0 {
		return nil, fmt.Errorf("%q is not an amount >= 0", v)
	}
	return &a, nil
}

// sfPercent reads a percentage as a probability 0..1; 0 for an empty
// cell.
func sfPercent(v string) (float64, error) {
	if v == "" {
		return 0, nil
	}
	p, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
	if err != nil || math.IsNaN(p) || p < 0 || p > 100 {
		return 0, fmt.Errorf("%q is not a percentage 0..100", v)
	}
	return p / 100, nil
}

// sfDate reads a date (or a date-time, whose date it keeps); "" for an
// empty cell.
func sfDate(v string) (event.Date, error) {
	if v == "" {
		return "", nil
	}
	t, err := parseTime(v, "")
	if err != nil {
		return "", err
	}
	return event.Date(t.Format(time.DateOnly)), nil
}

// sfDeleted refuses a row in the recycle bin.
func sfDeleted(v string) error {
	if v == "" {
		return nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("IsDeleted: %q is not true or false", v)
	}
	if b {
		return errors.New("IsDeleted: a deleted row (in the recycle bin)")
	}
	return nil
}

// sfColumns finds the columns of a Salesforce export's header: every
// required one, and the optional ones the file has.
func sfColumns(header, required []string, optional ...string) (map[string]int, error) {
	at := make(map[string]int, len(header))
	for i, name := range header {
		if i == 0 {
			name = strings.TrimPrefix(name, "\ufeff")
		}
		at[strings.TrimSpace(name)] = i
	}
	col := map[string]int{}
	for _, name := range required {
		i, ok := at[name]
		if !ok {
			return nil, fmt.Errorf("header: no column %q (columns: %s)", name, strings.Join(header, ", "))
		}
		col[name] = i
	}
	for _, name := range optional {
		if i, ok := at[name]; ok {
			col[name] = i
		}
	}
	return col, nil
}

// sfCell returns the trimmed cell of a column by name; "" for a column
// the file does not have.
func sfCell(cells []string, col map[string]int) func(string) string {
	return func(name string) string {
		if i, ok := col[name]; ok {
			return strings.TrimSpace(cells[i])
		}
		return ""
	}
}
