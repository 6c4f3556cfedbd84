package importer

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/commitflow/commitflow/internal/event"
)

// Opportunity reads a Salesforce Opportunity export (Data Export or Data
// Loader: a header of API field names, quoted cells, UTF-8 or
// Windows-1252): one row per opportunity as it stands now. Columns Id,
// StageName, CreatedDate, LastModifiedDate, IsClosed and IsWon are
// required; Name, AccountId, Amount, CurrencyIsoCode, CloseDate,
// Probability (percent), ForecastCategoryName, OwnerId, LeadSource,
// LastStageChangeDate and IsDeleted are read when the file has them. A
// row becomes:
//
//   - opportunity.created at CreatedDate, id OPP:created, with the name,
//     account, amount, currency, close date, owner and lead source;
//   - the current stage at the time it was entered: LastStageChangeDate
//     when the export has it, else LastModifiedDate (the deal was in that
//     stage by then at the latest). At CreatedDate it is the stage of
//     opportunity.created; later, opportunity.stage_changed, id
//     OPP:stage:STAGE, with its probability, forecast category
//     (forecast_category_changed, OPP:stage:STAGE:forecast_category) and
//     a probability of 0 (probability_changed, OPP:stage:STAGE:probability),
//     which follow the stage in Salesforce;
//   - when IsClosed, opportunity.closed_won (IsWon) or closed_lost at that
//     same time with the amount, id OPP:stage:STAGE:closed, so that a
//     deal closes whatever its stage is called.
//
// The ids name the stage, so a later export of a deal that moved on adds
// its new stage and keeps the one imported before. What such a row cannot
// tell: the stages before the current one, when amount, close date, owner
// or name changed (each is as of creation), why a deal was lost, and,
// without LastStageChangeDate, when the current stage was entered.
type Opportunity struct {
	Tenant, Source string
	// Currency is the currency of amounts without a CurrencyIsoCode
	// column (single-currency orgs); may be empty.
	Currency string
	// Encoding is "utf-8", "windows-1252" or "" / "auto" (see Decode).
	Encoding string
}

// SalesforceOpportunity is the Opportunity of tenant's Salesforce org.
func SalesforceOpportunity(tenant, currency, encoding string) Opportunity {
	return Opportunity{Tenant: tenant, Source: "salesforce", Currency: currency, Encoding: encoding}
}

// Parse reads an Opportunity CSV; the error is for the file as a whole,
// a bad row is a refused Row.
func (o Opportunity) Parse(data []byte) (Rows, error) { return o.records().parse(data) }

// records is o as a format of one record a deal.
func (o Opportunity) records() records {
	return records{encoding: o.Encoding, noun: "opportunity", prepare: func(header []string) (recordFunc, string, error) {
		col, err := sfColumns(header, []string{"Id", "StageName", "CreatedDate", "LastModifiedDate", "IsClosed", "IsWon"},
			"Name", "AccountId", "Amount", "CurrencyIsoCode", "CloseDate", "Probability", "ForecastCategoryName",
			"OwnerId", "LeadSource", "LastStageChangeDate", "IsDeleted")
		if err != nil {
			return nil, "", err
		}
		// The fields History reads, those the file has.
		has := func(name string) string {
			if _, ok := col[name]; ok {
				return name
			}
			return ""
		}
		h := History{Tenant: o.Tenant, Source: o.Source, Currency: o.Currency, ProbabilityPercent: true,
			Columns: Columns{OpportunityID: "Id", OccurredAt: "CreatedDate", Stage: "StageName", Name: has("Name"),
				Amount: has("Amount"), Currency: "CurrencyIsoCode", CloseDate: has("CloseDate"), Probability: has("Probability"),
				ForecastCategory: has("ForecastCategoryName"), Owner: has("OwnerId"), Deleted: has("IsDeleted")}}
		if err := h.checkCurrency(); err != nil {
			return nil, "", err
		}
		return func(rec record) ([]event.Event, error) { return o.row(h, rec, col) }, "Id", nil
	}}
}

// row returns the events of one opportunity; the first is its creation.
func (o Opportunity) row(h History, rec record, col map[string]int) ([]event.Event, error) {
	s, err := h.snapshot(rec.cells, col)
	if err != nil {
		return nil, err
	}
	if s.stage == "" {
		return nil, errors.New("StageName: missing")
	}
	cell := sfCell(rec.cells, col)
	closed, err := sfBool("IsClosed", cell("IsClosed"))
	if err != nil {
		return nil, err
	}
	won, err := sfBool("IsWon", cell("IsWon"))
	if err != nil {
		return nil, err
	}
	if won && !closed {
		return nil, errors.New("IsWon: true on an opportunity that is not closed (IsClosed false)")
	}
	at, name := cell("LastStageChangeDate"), "LastStageChangeDate"
	if at == "" {
		at, name = cell("LastModifiedDate"), "LastModifiedDate"
	}
	stageAt, err := parseTime(at, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if stageAt.Before(s.at) {
		return nil, fmt.Errorf("%s: %s is before CreatedDate %s", name, at, cell("CreatedDate"))
	}

	s.id = s.opp + ":created"
	created := h.created(&s)
	cp := created.Payload.(*event.Opportunity)
	cp.AccountID, cp.LeadSource = cell("AccountId"), cell("LeadSource")
	evs := []event.Event{created}
	ev := func(suffix string, t event.Type, p event.Payload) event.Event {
		return event.Event{ID: s.opp + ":stage:" + s.stage + suffix, Tenant: h.Tenant, Source: h.Source, Type: t,
			OccurredAt: stageAt, OpportunityID: s.opp, Payload: p}
	}
	if !stageAt.Equal(s.at) {
		cp.Stage, cp.Probability, cp.ForecastCategory = "", 0, ""
		sc := &event.StageChange{To: s.stage}
		if s.probability != nil {
			sc.Probability = *s.probability
		}
		evs = append(evs, ev("", event.StageChanged, sc))
		if s.forecast != "" {
			evs = append(evs, ev(":forecast_category", event.ForecastCategoryChanged, &event.ForecastCategoryChange{To: s.forecast}))
		}
		if s.probability != nil && *s.probability == 0 {
			evs = append(evs, ev(":probability", event.ProbabilityChanged, &event.ProbabilityChange{}))
		}
	}
	if closed {
		amount := 0.0
		if s.amount != nil {
			amount = *s.amount
		}
		if won {
			evs = append(evs, ev(":closed", event.ClosedWon, &event.Won{Amount: amount, Currency: s.currency}))
		} else {
			evs = append(evs, ev(":closed", event.ClosedLost, &event.Lost{Amount: amount, Currency: s.currency}))
		}
	}
	for i := range evs {
		if err := evs[i].Validate(); err != nil {
			return nil, err
		}
	}
	return evs, nil
}

// sfBool reads a required true/false cell.
func sfBool(name, v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s: %q is not true or false", name, v)
	}
	return b, nil
}
