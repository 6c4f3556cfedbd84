package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadRates checks --fx-rates and --fx-base: both or neither, and a
// bad table refused at start naming its file and line.
func TestLoadRates(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.csv"), filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(good, []byte("date,currency,rate\n2024-01-01,EUR,1.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("date,currency,rate\n2024-01-01,EUR,1.1\n2024-01-01,EUR,1.2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tab, err := loadRates("", ""); tab != nil || err != nil {
		t.Errorf("neither flag: %v, %v", tab, err)
	}
	if tab, err := loadRates(good, "usd"); err != nil || tab.Base() != "USD" || !tab.Has("EUR") {
		t.Errorf("good table: %v, %v", tab, err)
	}
	for _, c := range []struct{ file, base, want string }{
		{good, "", "--fx-rates needs --fx-base"},
		{"", "USD", "--fx-base needs --fx-rates"},
		{bad, "USD", "--fx-rates: " + bad + ": fx: line 3: EUR on 2024-01-01 is already given on line 2"},
		{good, "dollars", "base currency"},
	} {
		if _, err := loadRates(c.file, c.base); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("loadRates(%q, %q): %v, want %q", c.file, c.base, err, c.want)
		}
	}
}
