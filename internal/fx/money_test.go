package fx

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/param"
)

func TestCheck(t *testing.T) {
	tab, err := Parse(strings.NewReader(sample), "usd")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tab       *Table
		cur, want string
		code      param.Code
	}{
		{tab, "", "", ""},
		{nil, "", "", ""},
		{tab, "eur", "EUR", ""},
		{tab, "USD", "USD", ""},
		{tab, "JPY", "", param.Unsupported},
		{tab, "euro", "", param.Invalid},
		{nil, "EUR", "", param.Unsupported},
	} {
		got, err := Check(c.tab, c.cur)
		var pe *param.Error
		if c.code == "" && err != nil || c.code != "" && (!errors.As(err, &pe) || pe.Code != c.code || pe.Param != "currency") || got != c.want {
			t.Errorf("Check(%v, %q) = %q, %v; want %q, code %q", c.tab != nil, c.cur, got, err, c.want, c.code)
		}
	}
}

func TestDecide(t *testing.T) {
	tab, err := Parse(strings.NewReader(sample), "usd")
	if err != nil {
		t.Fatal(err)
	}
	set := func(cs ...string) map[string]bool {
		m := map[string]bool{}
		for _, c := range cs {
			m[c] = true
		}
		return m
	}
	for _, c := range []struct {
		name    string
		tab     *Table
		want    string
		present map[string]bool
		to      string
		mixed   bool
		rates   map[string]float64
	}{
		{"none", nil, "", set(), "", false, nil},
		{"one", nil, "", set("EUR"), "EUR", false, nil},
		{"no currency", nil, "", set(""), "", false, nil},
		{"mixed", nil, "", set("EUR", "GBP"), "", true, nil},
		{"to base", tab, "", set("EUR", ""), "USD", false, map[string]float64{"EUR": 1.05, "": 1}},
		{"to EUR", tab, "EUR", set("GBP"), "EUR", false, map[string]float64{"GBP": 1.25 / 1.05}},
	} {
		m, err := Decide(c.tab, c.want, day("2024-08-01"), c.present)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if m.To != c.to || m.Mixed != c.mixed || len(m.Rates) != len(c.rates) || (c.tab != nil) != (m.Rates != nil) {
			t.Errorf("%s: %+v; want to %q, mixed %v, rates %v", c.name, m, c.to, c.mixed, c.rates)
		}
		for k, r := range c.rates {
			if math.Abs(m.Rates[k]-r) > 1e-12 {
				t.Errorf("%s: rate of %q = %v, want %v", c.name, k, m.Rates[k], r)
			}
		}
	}
	var pe *param.Error
	if _, err := Decide(tab, "", day("2023-06-01"), set("EUR")); !errors.As(err, &pe) || pe.Code != param.Unsupported {
		t.Errorf("before the table's first date: %v, want an unsupported currency error", err)
	}
}
