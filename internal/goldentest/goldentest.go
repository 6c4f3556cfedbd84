// Package goldentest compares text a test makes, such as the SQL a query
// builder writes, with a golden file the change under review shows. Tests
// only.
package goldentest

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden from what the tests make")

// Check compares got with testdata/golden/name.sql of the package under
// test, or with -update writes it there: go test ./<package> -run SQL
// -update, then review the diff.
func Check(t testing.TB, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".sql")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run SQL -update to write it)", err)
	}
	if string(want) != got+"\n" {
		t.Errorf("%s: differs from %s (if the change is meant, run go test -run SQL -update and review the diff):\n%s", name, path, got)
	}
}
