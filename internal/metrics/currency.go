package metrics

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/fx"
)

// Amounts of several currencies are never added. The queries sum every
// amount per currency: the inner GROUP BY of each branch has the currency,
// as the number curSQL makes of its code, and the outer query collects the
// sums with sumMap([cur], [a0], [a1], ...) without grouping by it, so that
// the counts and the quantile states it merges stay over all currencies.
// Each counts object of an answer gets its sums per currency
// (amounts_by_currency); its scalar amount figures are then, for the whole
// answer (see money): the plain sums when all its amounts are in one
// currency, their conversion when the Querier has a rate table, else null.

// curSQL is the currency of the fact array element fi as a number: the
// code's bytes little-endian (reinterpretAsUInt32), 0 for ”. curCode
// decodes it.
func curSQL(arr, fi string) string { return "reinterpretAsUInt32(" + arr + "[" + fi + "])" }

// curCode decodes a currency number of curSQL.
func curCode(n uint32) string {
	b := []byte{byte(n), byte(n >> 8), byte(n >> 16), byte(n >> 24)}
	return strings.TrimRight(string(b), "\x00")
}

// sumMapSQL returns the SELECT expressions of the sums per currency of
// the partial amounts as (the branches' columns, cur their currency): the
// currencies, then one array of sums per amount, all elements of one
// sumMap (ClickHouse computes an aggregate written several times once).
func sumMapSQL(as ...string) string {
	arrs := make([]string, len(as))
	for i, a := range as {
		arrs[i] = "[" + a + "]"
	}
	m := "sumMap([cur], " + strings.Join(arrs, ", ") + ")"
	s := ""
	for i := 0; i <= len(as); i++ {
		s += fmt.Sprintf(", tupleElement(%s, %d)", m, i+1)
	}
	return s[2:]
}

// sumMapDest returns the scan destinations of sumMapSQL's columns: the
// currencies and one array of sums per amount.
func sumMapDest(curs *[]uint32, sums [][]float64) []any {
	dest := []any{curs}
	for i := range sums {
		dest = append(dest, &sums[i])
	}
	return dest
}

// byCurrency turns sumMap's currencies and sums into one value per
// currency made by mk from that currency's sums, leaving out currencies
// whose sums are all zero (ClickHouse 24 leaves them out of sumMap's
// answer, 18.16 keeps them). It returns nil when none is left.
func byCurrency[T any](curs []uint32, sums [][]float64, mk func(a []float64) T) map[string]T {
	var out map[string]T
	for i, c := range curs {
		a := make([]float64, len(sums))
		zero := true
		for j := range sums {
			a[j] = sums[j][i]
			zero = zero && a[j] == 0
		}
		if zero {
			continue
		}
		if out == nil {
			out = map[string]T{}
		}
		out[curCode(c)] = mk(a)
	}
	return out
}

// Conversion says how an answer's scalar amounts were converted.
type Conversion struct {
	// To is the currency they are in.
	To string `json:"to"`
	// RatesOn is the date (UTC) of the rates used.
	RatesOn string `json:"rates_on"`
	// Rates is the value of one unit of each currency of the answer in
	// To; "" is an amount the CRM gave without a currency, taken to be in
	// the rate table's base currency.
	Rates map[string]float64 `json:"rates"`
}

// moneyAsk is how an answer is asked to show its scalar amounts: with the
// Querier's rate table (nil for none), in the currency want ("" means the
// table's base).
type moneyAsk struct {
	rates *fx.Table
	want  string
}

// checkCurrency validates the currency an answer is asked in (fx.Check)
// and returns how it is asked.
func (q *Querier) checkCurrency(cur string) (moneyAsk, error) {
	want, err := fx.Check(q.rates, cur)
	return moneyAsk{rates: q.rates, want: want}, err
}

// money decides how an answer whose amounts are in the currencies present
// shows its scalar amounts, as a asks, at the rates of on (fx.Decide); it
// records the decision in d: the answer's currency, the conversion and a
// rule line.
func (a moneyAsk) money(on time.Time, present map[string]bool, d *Definitions) (fx.Money, error) {
	m, err := fx.Decide(a.rates, a.want, on, present)
	if err != nil {
		return m, err
	}
	to := m.To
	d.Currency = &to
	if m.Rates == nil {
		d.Rules = append(slices.Clip(d.Rules), currencyRule)
		return m, nil
	}
	d.Converted = &Conversion{To: to, RatesOn: on.UTC().Format(time.DateOnly), Rates: maps.Clone(m.Rates)}
	d.Rules = append(slices.Clip(d.Rules), convertedRule(to, on, a.rates.Base()))
	return m, nil
}

// currencyRule is the rule of the amounts of an answer without a rate
// table.
const currencyRule = `amounts: never added across currencies; amounts_by_currency holds each counts object's sums per currency ("" = the CRM gave none, a currency of its own; currencies whose amounts are all 0 are left out); a scalar amount is the plain sum when the answer's amounts are all in one currency (definitions.currency), else null`

// convertedRule is the rule of the amounts of an answer converted to to
// at the rates of on, from a rate table in base.
func convertedRule(to string, on time.Time, base string) string {
	return fmt.Sprintf(`amounts: never added across currencies; amounts_by_currency holds each counts object's sums per currency, unconverted; a scalar amount is the sum of those converted to %s at the operator's rates in force on %s (definitions.converted); an amount without a currency ("") is taken to be in the rate table's base currency %s`,
		to, on.UTC().Format(time.DateOnly), base)
}

// sum returns the scalar of one amount of a counts object from its sums
// per currency (field reads that amount): nil when the answer is mixed.
func sum[T any](m fx.Money, by map[string]T, field func(T) float64) *float64 {
	if m.Mixed {
		return nil
	}
	s := 0.0
	for c, a := range by {
		switch {
		case m.Rates != nil:
			s += field(a) * m.Rates[c]
		case c == m.To:
			s += field(a)
		}
	}
	return &s
}

// addCurrencies adds the currencies of by to present.
func addCurrencies[T any](present map[string]bool, by map[string]T) {
	for c := range by {
		present[c] = true
	}
}

// ratioPtr returns num/den, nil when either is nil or den is zero.
func ratioPtr(num, den *float64) *float64 {
	if num == nil || den == nil {
		return nil
	}
	return ratio(*num, *den)
}

// plus returns a+b, nil when either is nil.
func plus(a, b *float64) *float64 {
	if a == nil || b == nil {
		return nil
	}
	s := *a + *b
	return &s
}

// sumCurSQL is the currency number (curSQL) a deal's amount at fact index
// fi is summed under: its currency then, or, when every non-zero amount
// the scan reads is in one currency, that currency for every deal: a zero
// amount adds nothing under any currency, so the sums are the same, and
// the currencies are not read. Only sums may use it: a deal listed with
// its currency takes curSQL.
func (sh shape) sumCurSQL(fi string) string {
	if sh.oneCurrency {
		return "toUInt32(" + strconv.FormatUint(uint64(sh.cur), 10) + ")"
	}
	return curSQL("currencies", fi)
}

// sumCurLatestSQL is sumCurSQL for a deal's latest_currency (see
// shape.latestBy).
func (sh shape) sumCurLatestSQL() string {
	if sh.oneCurrency {
		return sh.sumCurSQL("")
	}
	return "reinterpretAsUInt32(latest_currency)"
}
