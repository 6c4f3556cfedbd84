package fx

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/param"
)

// Money is how an answer shows its scalar amounts, decided by Decide once
// the currencies of its sums are known.
type Money struct {
	// Rates, when set, converts each currency of the answer to To.
	Rates map[string]float64
	// Mixed: the amounts are in several currencies and not converted;
	// the scalars are null.
	Mixed bool
	// To is the answer's currency: the one currency of its amounts
	// unconverted ("" when none, or mixed), or the one converted to.
	To string
}

// Check validates the currency an answer is asked in (the parameter
// currency): "" (the default) or a code t converts. It returns the code in
// upper case. t nil means no rate table.
func Check(t *Table, cur string) (string, error) {
	if cur == "" {
		return "", nil
	}
	code, err := Code(cur)
	if err != nil {
		return "", param.Errorf("currency", param.Invalid, "%v", err)
	}
	if t == nil {
		return "", param.Errorf("currency", param.Unsupported, "no rate table to convert amounts with: start commitflow with --fx-rates FILE and --fx-base CODE")
	}
	if !t.Has(code) {
		return "", param.Errorf("currency", param.Unsupported, "%s is not in the rate table (it has %s)", code, strings.Join(t.Currencies(), ", "))
	}
	return code, nil
}

// Decide decides how an answer whose amounts are in the currencies present
// shows its scalar amounts, asked in want (checked by Check; "" means t's
// base): without a table (t nil), plain when they are all in one currency,
// else mixed; with one, converted to want at the rates in force on on.
func Decide(t *Table, want string, on time.Time, present map[string]bool) (Money, error) {
	curs := slices.Sorted(maps.Keys(present))
	if t == nil {
		var m Money
		switch len(curs) {
		case 0:
		case 1:
			m.To = curs[0]
		default:
			m.Mixed = true
		}
		return m, nil
	}
	m := Money{Rates: map[string]float64{}, To: want}
	if m.To == "" {
		m.To = t.Base()
	}
	if _, err := t.Rate(m.To, "", on); err != nil {
		return m, param.Errorf("currency", param.Unsupported, "cannot convert the amounts to %s: %v", m.To, err)
	}
	for _, c := range curs {
		r, err := t.Rate(c, m.To, on)
		if err != nil {
			return m, param.Errorf("currency", param.Unsupported, "cannot convert the amounts to %s: %v", m.To, err)
		}
		m.Rates[c] = r
	}
	return m, nil
}
