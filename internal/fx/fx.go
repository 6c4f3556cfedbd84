// Package fx holds the dated currency rate table an operator supplies to
// convert amounts of several currencies into one. commitflow never adds
// amounts of different currencies without it: the metrics answer per
// currency, or convert with a Table and say so.
//
// The table is CSV with the header date,currency,rate; each row says that
// from date (YYYY-MM-DD, UTC) until the next row of the same currency, one
// unit of currency is worth rate units of the base currency, which the
// operator names and which is worth 1 on every date:
//
//	date,currency,rate
//	2024-01-01,EUR,1.10
//	2024-01-01,GBP,1.27
//	2024-07-01,EUR,1.07
package fx

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Table is a parsed rate table. It is read-only once parsed and safe for
// concurrent use.
type Table struct {
	base string
	// rates holds each currency's rates, sorted by the date they take
	// effect; the base currency has none.
	rates map[string][]dated
}

// dated is a rate in force from a date on.
type dated struct {
	from time.Time
	rate float64
}

// Code checks an ISO 4217 currency code, three letters in any case, and
// returns it in upper case.
func Code(s string) (string, error) {
	if len(s) != 3 || !isLetter(s[0]) || !isLetter(s[1]) || !isLetter(s[2]) {
		return "", fmt.Errorf("%q is not an ISO 4217 currency code (want three letters, e.g. USD)", s)
	}
	return strings.ToUpper(s), nil
}

func isLetter(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' }

// Load reads the rate table of file with base currency base.
func Load(file, base string) (*Table, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("fx: %w", err)
	}
	defer f.Close()
	t, err := Parse(f, base)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return t, nil
}

// Parse reads a rate table (see the package documentation) whose rates
// are in units of base. An error names the line and the field: a header
// other than date,currency,rate, a date that is not YYYY-MM-DD, a code
// that is not three letters, a rate that is not a finite number above 0,
// a currency given twice for one date, or a base currency row whose rate
// is not 1.
func Parse(r io.Reader, base string) (*Table, error) {
	base, err := Code(base)
	if err != nil {
		return nil, fmt.Errorf("fx: base currency: %w", err)
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 3
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	t := &Table{base: base, rates: map[string][]dated{}}
	// seen maps currency and date to the line that gave them.
	seen := map[string]int{}
	for first := true; ; first = false {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			if first {
				return nil, errors.New("fx: empty rate table: want the header date,currency,rate")
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("fx: %w", err)
		}
		line, _ := cr.FieldPos(0)
		if first {
			if !strings.EqualFold(strings.TrimPrefix(strings.Join(rec, ","), "\ufeff"), "date,currency,rate") {
				return nil, fmt.Errorf("fx: line %d: header %q, want date,currency,rate", line, strings.Join(rec, ","))
			}
			continue
		}
		on, err := time.Parse(time.DateOnly, strings.TrimSpace(rec[0]))
		if err != nil {
			return nil, fmt.Errorf("fx: line %d: date: %q is not a date YYYY-MM-DD", line, rec[0])
		}
		cur, err := Code(strings.TrimSpace(rec[1]))
		if err != nil {
			return nil, fmt.Errorf("fx: line %d: currency: %w", line, err)
		}
		rate, err := strconv.ParseFloat(strings.TrimSpace(rec[2]), 64)
		if err != nil || math.IsNaN(rate) || math.IsInf(rate, 0) || rate <= 0 {
			return nil, fmt.Errorf("fx: line %d: rate: %q is not a number above 0", line, rec[2])
		}
		key := cur + " " + on.Format(time.DateOnly)
		if prev, ok := seen[key]; ok {
			return nil, fmt.Errorf("fx: line %d: %s on %s is already given on line %d", line, cur, on.Format(time.DateOnly), prev)
		}
		seen[key] = line
		if cur == base {
			if rate != 1 {
				return nil, fmt.Errorf("fx: line %d: rate: %s is the base currency, worth 1 on every date, not %s", line, cur, rec[2])
			}
			continue
		}
		t.rates[cur] = append(t.rates[cur], dated{on, rate})
	}
	for _, rs := range t.rates {
		slices.SortFunc(rs, func(a, b dated) int { return a.from.Compare(b.from) })
	}
	return t, nil
}

// Base returns the base currency.
func (t *Table) Base() string { return t.base }

// Currencies returns the currencies the table converts, the base first,
// then the others sorted.
func (t *Table) Currencies() []string {
	out := make([]string, 0, len(t.rates))
	for c := range t.rates {
		out = append(out, c)
	}
	slices.Sort(out)
	return append([]string{t.base}, out...)
}

// Has reports whether the table converts cur (upper case): the base or a
// currency with a row.
func (t *Table) Has(cur string) bool {
	_, ok := t.rates[cur]
	return ok || cur == t.base
}

// Rate returns the value of one unit of cur in units of to, at the rates
// in force on the date of on (UTC): rate(cur)/rate(to). An empty cur or to
// is the base currency. It fails when either has no row on or before that
// date.
func (t *Table) Rate(cur, to string, on time.Time) (float64, error) {
	a, err := t.rate(cur, on)
	if err != nil {
		return 0, err
	}
	b, err := t.rate(to, on)
	if err != nil {
		return 0, err
	}
	return a / b, nil
}

// rate is the value of one unit of cur in the base currency on on.
func (t *Table) rate(cur string, on time.Time) (float64, error) {
	if cur == "" || cur == t.base {
		return 1, nil
	}
	rs, ok := t.rates[cur]
	if !ok {
		return 0, fmt.Errorf("no %s rate in the rate table", cur)
	}
	// The rows in force on on: those from a date at or before on.
	i, _ := slices.BinarySearchFunc(rs, on.UTC(), func(d dated, on time.Time) int {
		if d.from.After(on) {
			return 1
		}
		return -1
	})
	if i == 0 {
		return 0, fmt.Errorf("no %s rate on or before %s in the rate table (the first is on %s)",
			cur, on.UTC().Format(time.DateOnly), rs[0].from.Format(time.DateOnly))
	}
	return rs[i-1].rate, nil
}
