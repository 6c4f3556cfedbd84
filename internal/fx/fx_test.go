package fx

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

const sample = `date,currency,rate
2024-01-01,EUR,1.10
2024-01-01,GBP,1.25
2024-07-01,EUR,1.05
2024-01-01,USD,1
`

func TestRate(t *testing.T) {
	tab, err := Parse(strings.NewReader(sample), "usd")
	if err != nil {
		t.Fatal(err)
	}
	if tab.Base() != "USD" {
		t.Errorf("base %q, want USD", tab.Base())
	}
	if got := strings.Join(tab.Currencies(), ","); got != "USD,EUR,GBP" {
		t.Errorf("currencies %s", got)
	}
	for _, c := range []struct {
		cur, to, on string
		want        float64
		err         string
	}{
		{"EUR", "USD", "2024-01-01", 1.10, ""},
		{"EUR", "", "2024-06-30", 1.10, ""},
		{"EUR", "USD", "2024-07-01", 1.05, ""},
		{"EUR", "USD", "2030-01-01", 1.05, ""},
		{"USD", "EUR", "2024-03-01", 1 / 1.10, ""},
		{"GBP", "EUR", "2024-08-01", 1.25 / 1.05, ""},
		{"", "EUR", "2024-08-01", 1 / 1.05, ""},
		{"", "", "1999-01-01", 1, ""},
		{"USD", "USD", "1999-01-01", 1, ""},
		{"EUR", "EUR", "2024-02-01", 1, ""},
		{"EUR", "USD", "2023-12-31", 0, "no EUR rate on or before 2023-12-31 in the rate table (the first is on 2024-01-01)"},
		{"USD", "GBP", "2023-06-01", 0, "no GBP rate on or before 2023-06-01"},
		{"CHF", "USD", "2024-06-01", 0, "no CHF rate in the rate table"},
	} {
		// A time of day does not change the rates of the day.
		on := day(c.on).Add(13 * time.Hour)
		got, err := tab.Rate(c.cur, c.to, on)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Rate(%q, %q, %s): %v, want error %q", c.cur, c.to, c.on, err, c.err)
			}
			continue
		}
		if err != nil || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Rate(%q, %q, %s) = %v, %v; want %v", c.cur, c.to, c.on, got, err, c.want)
		}
	}
	for cur, want := range map[string]bool{"USD": true, "EUR": true, "GBP": true, "CHF": false, "": false} {
		if tab.Has(cur) != want {
			t.Errorf("Has(%q) = %v", cur, !want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, in, base, err string
	}{
		{"empty", "", "USD", "empty rate table"},
		{"header", "day,code,rate\n", "USD", `line 1: header "day,code,rate"`},
		{"bad base", "date,currency,rate\n", "US", "base currency"},
		{"bad date", "date,currency,rate\n2024-01-01,EUR,1\n2024-13-01,EUR,1\n", "USD", `line 3: date: "2024-13-01"`},
		{"time", "date,currency,rate\n2024-01-01T00:00:00Z,EUR,1\n", "USD", "line 2: date"},
		{"bad code", "date,currency,rate\n2024-01-01,EURO,1\n", "USD", `line 2: currency: "EURO" is not an ISO 4217`},
		{"digit code", "date,currency,rate\n2024-01-01,E1R,1\n", "USD", "line 2: currency"},
		{"zero", "date,currency,rate\n2024-01-01,EUR,0\n", "USD", `line 2: rate: "0" is not a number above 0`},
		{"negative", "date,currency,rate\n2024-01-01,EUR,-1.1\n", "USD", "line 2: rate"},
		{"NaN", "date,currency,rate\n2024-01-01,EUR,NaN\n", "USD", "line 2: rate"},
		{"Inf", "date,currency,rate\n2024-01-01,EUR,+Inf\n", "USD", "line 2: rate"},
		{"text", "date,currency,rate\n2024-01-01,EUR,one\n", "USD", "line 2: rate"},
		{"duplicate", "date,currency,rate\n2024-01-01,EUR,1.1\n2024-02-01,EUR,1.1\n2024-01-01,eur,1.2\n", "USD",
			"line 4: EUR on 2024-01-01 is already given on line 2"},
		{"base not 1", "date,currency,rate\n2024-01-01,USD,1.1\n", "USD", "line 2: rate: USD is the base currency"},
		{"fields", "date,currency,rate\n2024-01-01,EUR\n", "USD", "line 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.in), c.base)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("Parse: %v, want an error with %q", err, c.err)
			}
		})
	}
}

func TestParseLenient(t *testing.T) {
	// A byte order mark, spaces after commas, lower-case codes, CRLF.
	in := "\ufeffDate, Currency, Rate\r\n2024-01-01, eur, 1.5\r\n"
	tab, err := Parse(strings.NewReader(in), "gbp")
	if err != nil {
		t.Fatal(err)
	}
	if r, err := tab.Rate("EUR", "GBP", day("2024-01-02")); err != nil || r != 1.5 {
		t.Fatalf("Rate = %v, %v", r, err)
	}
}

func TestLoad(t *testing.T) {
	file := filepath.Join(t.TempDir(), "rates.csv")
	if err := os.WriteFile(file, []byte("date,currency,rate\n2024-01-01,EUR,x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file, "USD"); err == nil || !strings.Contains(err.Error(), file+": fx: line 2: rate") {
		t.Fatalf("Load: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.csv"), "USD"); err == nil {
		t.Fatal("Load of a missing file: no error")
	}
}

// FuzzParse checks that Parse never panics and that a table it accepts
// gives back every rate of its rows on their dates, positive and finite.
func FuzzParse(f *testing.F) {
	f.Add(sample, "USD")
	f.Add("date,currency,rate\n2024-01-01,EUR,1e308\n2024-01-02,EUR,1e-308\n", "GBP")
	f.Add("date,currency,rate\n\"2024-01-01\",\"E\nR\",1\n", "USD")
	f.Fuzz(func(t *testing.T, in, base string) {
		tab, err := Parse(strings.NewReader(in), base)
		if err != nil {
			return
		}
		for cur, rs := range tab.rates {
			for i, d := range rs {
				if i > 0 && !rs[i-1].from.Before(d.from) {
					t.Fatalf("%s: rates not sorted by date", cur)
				}
				got, err := tab.Rate(cur, "", d.from)
				if err != nil || got != d.rate || !(got > 0) || math.IsInf(got, 0) {
					t.Fatalf("Rate(%s, base, %s) = %v, %v; want %v", cur, d.from, got, err, d.rate)
				}
			}
		}
	})
}
