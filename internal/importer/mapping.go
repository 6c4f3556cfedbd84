package importer

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Mapping is the YAML file that describes a generic CSV export:
//
//	shape: history            # one row per change (the only shape so far)
//	source: mycrm             # the events' source (default "csv")
//	columns:                  # CSV column names; omit what the file lacks
//	  row_id: Change Id       # unique per row; without it a hash of the row
//	  opportunity_id: Deal Id # required
//	  occurred_at: Changed At # required
//	  stage: Stage
//	  amount: Amount
//	  currency: Currency
//	  close_date: Close Date
//	  probability: Probability
//	  forecast_category: Forecast
//	  owner: Owner
//	  name: Deal Name
//	  deleted: Deleted
//	probability_percent: true # probabilities written 0..100
//	currency: EUR             # when there is no currency column
//	time_layout: "02/01/2006 15:04"  # a Go layout, tried before ISO 8601
//	date_layout: "02/01/2006"        # the same for close dates
//	delimiter: ";"
//	encoding: auto            # utf-8, windows-1252 or auto
type Mapping struct {
	Shape              string  `yaml:"shape"`
	Source             string  `yaml:"source"`
	Columns            Columns `yaml:"columns"`
	ProbabilityPercent bool    `yaml:"probability_percent"`
	Currency           string  `yaml:"currency"`
	TimeLayout         string  `yaml:"time_layout"`
	DateLayout         string  `yaml:"date_layout"`
	Delimiter          string  `yaml:"delimiter"`
	Encoding           string  `yaml:"encoding"`
}

// ParseMapping reads a mapping file and returns the History it describes
// for tenant. Unknown keys are refused, so that a typo does not pass.
func ParseMapping(data []byte, tenant string) (History, error) {
	var m Mapping
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return History{}, fmt.Errorf("mapping: %w", err)
	}
	switch m.Shape {
	case "", "history":
	default:
		return History{}, fmt.Errorf("mapping: shape %q: want history (one row per change)", m.Shape)
	}
	if m.Columns.OpportunityID == "" || m.Columns.OccurredAt == "" {
		return History{}, errors.New("mapping: columns.opportunity_id and columns.occurred_at are required")
	}
	if m.Source == "" {
		m.Source = "csv"
	}
	h := History{Tenant: tenant, Source: m.Source, Columns: m.Columns, ProbabilityPercent: m.ProbabilityPercent,
		Currency: m.Currency, Encoding: m.Encoding, TimeLayout: m.TimeLayout, DateLayout: m.DateLayout}
	if m.Delimiter != "" {
		r, n := utf8.DecodeRuneInString(m.Delimiter)
		if n != len(m.Delimiter) || r == '"' || r == '\n' || r == '\r' || r == utf8.RuneError {
			return History{}, fmt.Errorf("mapping: delimiter %q: want one character", m.Delimiter)
		}
		h.Comma = r
	}
	if _, err := Decode(nil, m.Encoding); err != nil {
		return History{}, fmt.Errorf("mapping: %w", err)
	}
	return h, nil
}
