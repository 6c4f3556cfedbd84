package forecast

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
)

// Amounts of several currencies are never added. Each open deal's amount
// is in its own currency, and so is the amount a back-tested deal closed
// at; every figure keeps its sums per currency (amounts_by_currency), the
// P10/P90 of a currency from a Monte Carlo of that currency's deals alone.
// The scalar figures beside them are, for the whole answer (see money):
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

// money is how an answer shows its scalar amounts, decided once all its
// sums per currency are known.
type money struct {
	// rates, when set, converts each currency of the answer to the
	// answer's currency.
	rates map[string]float64
	// mixed: the amounts are in several currencies and not converted; the
	// scalars are null.
	mixed bool
	// cur is the one currency of the answer's amounts, unconverted
	// (meaningful when neither rates nor mixed).
	cur string
}

// checkCurrency validates the currency an answer is asked in: "" (the
// default) or a code the rate table converts. It returns the code in
// upper case.
func checkCurrency(rates *fx.Table, cur string) (string, error) {
	if cur == "" {
		return "", nil
	}
	code, err := fx.Code(cur)
	if err != nil {
		return "", param.Errorf("currency", param.Invalid, "%v", err)
	}
	if rates == nil {
		return "", param.Errorf("currency", param.Unsupported, "no rate table to convert amounts with: start commitflow with --fx-rates FILE and --fx-base CODE")
	}
	if !rates.Has(code) {
		return "", param.Errorf("currency", param.Unsupported, "%s is not in the rate table (it has %s)", code, strings.Join(rates.Currencies(), ", "))
	}
	return code, nil
}

// decideMoney decides how an answer whose amounts are in the currencies
// present shows its scalar amounts: asked in the currency want (checked by
// checkCurrency), converted with rates (nil: none) at the rates of on. It
// records the decision in d.
func decideMoney(rates *fx.Table, want string, on time.Time, present map[string]bool, d *Definitions) (money, error) {
	curs := slices.Sorted(maps.Keys(present))
	if rates == nil {
		var m money
		switch len(curs) {
		case 0:
		case 1:
			m.cur = curs[0]
		default:
			m.mixed = true
		}
		cur := m.cur
		d.Currency = &cur
		d.Currencies = currencyRule
		return m, nil
	}
	to := want
	if to == "" {
		to = rates.Base()
	}
	m := money{rates: map[string]float64{}}
	if _, err := rates.Rate(to, "", on); err != nil {
		return m, param.Errorf("currency", param.Unsupported, "cannot convert the amounts to %s: %v", to, err)
	}
	for _, c := range curs {
		r, err := rates.Rate(c, to, on)
		if err != nil {
			return m, param.Errorf("currency", param.Unsupported, "cannot convert the amounts to %s: %v", to, err)
		}
		m.rates[c] = r
	}
	d.Currency = &to
	d.Converted = &metrics.Conversion{To: to, RatesOn: on.UTC().Format(time.DateOnly), Rates: maps.Clone(m.rates)}
	d.Currencies = convertedRule(to, on, rates.Base())
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
func scalar[T any](m money, codes []string, by []T, field func(*T) float64) *float64 {
	if m.mixed {
		return nil
	}
	s := 0.0
	for c := range by {
		switch {
		case m.rates != nil:
			if x := field(&by[c]); x != 0 {
				s += x * m.rates[codes[c]]
			}
		case codes[c] == m.cur:
			s += field(&by[c])
		}
	}
	return &s
}
