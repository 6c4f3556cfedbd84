package forecast

import (
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/metrics"
)

// Amounts of several currencies are never added. Each open deal's amount
// is in its own currency, and so is the amount a back-tested deal closed
// at; every figure keeps its sums per currency (amounts_by_currency), the
// P10/P90 of a currency from a Monte Carlo of that currency's deals alone.
// The scalar figures beside them are, for the whole answer (see decideMoney):
// the plain sums when all its amounts are in one currency; with a rate
// table, the sums converted at the rates in force on forecast_at, and
// P10/P90 from a Monte Carlo of every deal's amount converted first; else
// null.

// currencyCodes decodes the currency numbers of dealsSQL
// (reinterpretAsUInt32 of the code: its bytes little-endian, 0 for ""),
// handing out one string per code.
type currencyCodes map[uint32]string

// code returns the currency code of n.
func (c *currencyCodes) code(n uint32) string {
	if s, ok := (*c)[n]; ok {
		return s
	}
	if *c == nil {
		*c = currencyCodes{}
	}
	b := []byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}
	s := strings.TrimRight(string(b), "\x00")
	(*c)[n] = s
	return s
}

// decideMoney decides how an answer whose amounts are in the currencies
// present shows its scalar amounts (fx.Decide: asked in want, checked by
// fx.Check, converted with rates, nil for none, at the rates of on). It
// records the decision in d.
func decideMoney(rates *fx.Table, want string, on time.Time, present map[string]bool, d *Definitions) (fx.Money, error) {
	m, err := fx.Decide(rates, want, on, present)
	if err != nil {
		return m, err
	}
	to := m.To
	d.Currency = &to
	d.Currencies = currencyRule
	if m.Rates != nil {
		d.Converted = &metrics.Conversion{To: to, RatesOn: on.UTC().Format(time.DateOnly), Rates: maps.Clone(m.Rates)}
		d.Currencies = convertedRule(to, on, rates.Base())
	}
	return m, nil
}

// currencyRule is the rule of the amounts of an answer without a rate
// table.
const currencyRule = `amounts: never added across currencies; amounts_by_currency holds each figure's sums per currency ` +
	`("" = the CRM gave none, a currency of its own; currencies whose amounts are all 0 are left out), ` +
	`its p10/p90 from a Monte Carlo of that currency's deals alone; a back-tested deal's actual is in the currency it closed in; ` +
	`a scalar amount (amount, expected, p10, p90, crm_weighted, the back-test's amount, won_amount, forecast, actual, error) ` +
	`is the plain figure when the answer's amounts are all in one currency (definitions.currency), else null`

// convertedRule is the rule of the amounts of an answer converted to to at
// the rates of on, from a rate table in base.
func convertedRule(to string, on time.Time, base string) string {
	return fmt.Sprintf(`amounts: never added across currencies; amounts_by_currency holds each figure's sums per currency, unconverted, `+
		`its p10/p90 from a Monte Carlo of that currency's deals alone; a back-tested deal's actual is in the currency it closed in; `+
		`a scalar amount is the sum of those converted to %s at the operator's rates in force on %s (forecast_at: as_of, or the back-test date, `+
		`for the pipeline and the back-test's forecast and actuals alike; definitions.converted), and the scalar p10/p90 come from a Monte Carlo `+
		`of every deal's amount converted first; an amount without a currency ("") is taken to be in the rate table's base currency %s`,
		to, on.UTC().Format(time.DateOnly), base)
}

// scalar returns the scalar of one amount from its sums per currency
// index (codes names the indexes; field reads the amount): nil when the
// answer is mixed.
func scalar[T any](m fx.Money, codes []string, by []T, field func(*T) float64) *float64 {
	if m.Mixed {
		return nil
	}
	s := 0.0
	for c := range by {
		switch {
		case m.Rates != nil:
			if x := field(&by[c]); x != 0 {
				s += x * m.Rates[codes[c]]
			}
		case codes[c] == m.To:
			s += field(&by[c])
		}
	}
	return &s
}
