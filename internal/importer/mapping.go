package importer

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/commitflow/commitflow/internal/event"
	"gopkg.in/yaml.v3"
)

// Mapping is the YAML file that describes a generic CSV export:
//
//	shape: history            # history: one row per change; deals: one row per deal
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
//	  created_at: Created     # deals: required, the creation date
//	  closed_at: Closed       # deals: when it was won or lost
//	  attributes:             # free breakdown attributes: key: column
//	    region: Region        #   (by=attr.region in the API)
//	stage_dates:              # deals: the date each stage was entered
//	  Demo: Demo date
//	probability_percent: true # probabilities written 0..100
//	currency: EUR             # when there is no currency column
//	time_layout: "02/01/2006 15:04"  # a Go layout, tried before ISO 8601
//	date_layout: "02/01/2006"        # the same for close dates
//	delimiter: ";"
//	encoding: auto            # utf-8, windows-1252 or auto
type Mapping struct {
	Shape              string     `yaml:"shape"`
	Source             string     `yaml:"source"`
	Columns            Columns    `yaml:"columns"`
	StageDates         StageDates `yaml:"stage_dates"`
	ProbabilityPercent bool       `yaml:"probability_percent"`
	Currency           string     `yaml:"currency"`
	TimeLayout         string     `yaml:"time_layout"`
	DateLayout         string     `yaml:"date_layout"`
	Delimiter          string     `yaml:"delimiter"`
	Encoding           string     `yaml:"encoding"`
}

// StageDate names the column holding the date a deal entered a stage.
type StageDate struct {
	Stage, Column string
	// The rest is set by vendor formats, not by a mapping file. Pipeline
	// is the stage's pipeline; Exited the column of the date the deal
	// left the stage, which orders entries of the same time; Key, if
	// set, names the stage in event ids instead of its place and name;
	// Status, "won" or "lost", closes the deal when it enters the stage.
	Pipeline, Exited, Key, Status string
}

// StageDates are the stage date columns of a deals file, in the order of
// the pipeline's stages (the order of the mapping file).
type StageDates []StageDate

// UnmarshalYAML reads a mapping of stage to column, keeping its order.
func (s *StageDates) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: stage_dates: want a mapping of stage to column", n.Line)
	}
	*s = nil
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			return fmt.Errorf("line %d: stage_dates: want stage: column", k.Line)
		}
		if seen[k.Value] {
			return fmt.Errorf("line %d: stage_dates: %q twice", k.Line, k.Value)
		}
		seen[k.Value] = true
		*s = append(*s, StageDate{Stage: k.Value, Column: v.Value})
	}
	return nil
}

// Parser turns a file into rows, parsed whole in memory (Parse) or read
// deal by deal from the file at path (Open); History and Deals are.
type Parser interface {
	Parse(data []byte) (Rows, error)
	Open(path string) (*File, error)
}

// ParseMapping reads a mapping file and returns the History or Deals it
// describes for tenant. Unknown keys are refused, so that a typo does not
// pass. currency and encoding, unless empty (or "auto" for encoding),
// override the file's.
func ParseMapping(data []byte, tenant, currency, encoding string) (Parser, error) {
	h, m, err := parseMapping(data, tenant)
	if err != nil {
		return nil, err
	}
	if currency != "" {
		h.Currency = currency
	}
	if encoding != "" && encoding != "auto" {
		if _, err := Decode(nil, encoding); err != nil {
			return nil, err
		}
		h.Encoding = encoding
	}
	if m.Shape == "deals" {
		return Deals{History: h, StageDates: m.StageDates}, nil
	}
	return h, nil
}

// parseMapping checks the mapping file and returns it with the History of
// its columns and formats.
func parseMapping(data []byte, tenant string) (History, Mapping, error) {
	var m Mapping
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		return History{}, m, fmt.Errorf("mapping: %w", err)
	}
	c := m.Columns
	switch m.Shape {
	case "", "history":
		m.Shape = "history"
		switch {
		case c.OpportunityID == "" || c.OccurredAt == "":
			return History{}, m, errors.New("mapping: columns.opportunity_id and columns.occurred_at are required")
		case c.CreatedAt != "" || c.ClosedAt != "" || len(m.StageDates) > 0:
			return History{}, m, errors.New("mapping: columns.created_at, columns.closed_at and stage_dates are for shape deals")
		}
	case "deals":
		switch {
		case c.OpportunityID == "" || c.CreatedAt == "" || c.Stage == "":
			return History{}, m, errors.New("mapping: columns.opportunity_id, columns.created_at and columns.stage are required")
		case c.OccurredAt != "" || c.RowID != "" || c.Deleted != "":
			return History{}, m, errors.New("mapping: columns.occurred_at, columns.row_id and columns.deleted are for shape history")
		}
		for _, sd := range m.StageDates {
			if sd.Stage == "" || sd.Column == "" {
				return History{}, m, fmt.Errorf("mapping: stage_dates: %q: %q: want a stage and a column", sd.Stage, sd.Column)
			}
		}
	default:
		return History{}, m, fmt.Errorf("mapping: shape %q: want history (one row per change) or deals (one row per deal)", m.Shape)
	}
	for k, col := range c.Attributes {
		if !event.ValidAttributeKey(k) || col == "" {
			return History{}, m, fmt.Errorf("mapping: columns.attributes: %q: %q: want a key of lower case letters, digits and _ (starting with a letter) and a column", k, col)
		}
	}
	if m.Source == "" {
		m.Source = "csv"
	}
	h := History{Tenant: tenant, Source: m.Source, Columns: m.Columns, ProbabilityPercent: m.ProbabilityPercent,
		Currency: m.Currency, Encoding: m.Encoding, TimeLayout: m.TimeLayout, DateLayout: m.DateLayout}
	if m.Delimiter != "" {
		r, n := utf8.DecodeRuneInString(m.Delimiter)
		if n != len(m.Delimiter) || r == '"' || r == '\n' || r == '\r' || r == utf8.RuneError {
			return History{}, m, fmt.Errorf("mapping: delimiter %q: want one character", m.Delimiter)
		}
		h.Comma = r
	}
	if _, err := Decode(nil, m.Encoding); err != nil {
		return History{}, m, fmt.Errorf("mapping: %w", err)
	}
	return h, m, nil
}
