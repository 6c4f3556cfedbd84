package importer

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadCheckpoint(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.json")
	if err := writeCheckpoint(path, checkpoint{Key: "k", Rows: 7, Line: 9}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		n    int
		want int
	}{
		{"k", 10, 7},
		{"other file", 10, 0},
		{"k", 5, 0}, // more rows than the file has: start over
	} {
		if got, err := readCheckpoint(path, tc.key, tc.n); err != nil || got != tc.want {
			t.Errorf("readCheckpoint(%q, %d) = %d, %v; want %d", tc.key, tc.n, got, err, tc.want)
		}
	}
	if got, err := readCheckpoint(filepath.Join(dir, "none.json"), "k", 10); err != nil || got != 0 {
		t.Errorf("no checkpoint: %d, %v; want 0", got, err)
	}
	if err := os.WriteFile(path, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readCheckpoint(path, "k", 10); err == nil {
		t.Error("a corrupt checkpoint was read")
	}
}
