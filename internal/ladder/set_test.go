package ladder

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	twoSteps   = "version: two\nsteps:\n  - key: meet\n  - key: buy\nwon_step: buy\n"
	threeSteps = "version: three\nsteps:\n  - key: meet\n  - key: agree\n  - key: buy\nwon_step: buy\n"
	oneStep    = "version: one\nsteps:\n  - key: buy\nwon_step: buy\n"
)

// writeFiles writes name -> content under a new directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadSet(t *testing.T) {
	shipped := Default().Version
	other := writeFiles(t, map[string]string{"one.yaml": oneStep})
	tests := []struct {
		name    string
		files   map[string]string // the directory; nil: no --ladders
		file    string            // --ladder, under other
		tenants []string          // with their own ladder
		want    map[string]string // tenant -> version
	}{
		{"nothing", nil, "", nil, map[string]string{"acme": shipped}},
		{"one file", nil, "one.yaml", nil, map[string]string{"acme": "one", "globex": "one"}},
		{"tenant files", map[string]string{"acme.yaml": twoSteps, "globex.yml": threeSteps, "README.md": "not a ladder", ".acme.yaml.swp": "x", "old/acme.yaml": "x"}, "",
			[]string{"acme", "globex"}, map[string]string{"acme": "two", "globex": "three", "initech": shipped}},
		{"default in dir", map[string]string{"acme.yaml": twoSteps, "default.yaml": threeSteps}, "",
			[]string{"acme"}, map[string]string{"acme": "two", "initech": "three"}},
		{"default from file", map[string]string{"acme.yaml": twoSteps}, "one.yaml",
			[]string{"acme"}, map[string]string{"acme": "two", "initech": "one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, file := "", ""
			if tt.files != nil {
				dir = writeFiles(t, tt.files)
			}
			if tt.file != "" {
				file = filepath.Join(other, tt.file)
			}
			s, err := LoadSet(file, dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Tenants(); !slices.Equal(got, tt.tenants) {
				t.Errorf("tenants %v, want %v", got, tt.tenants)
			}
			for tenant, v := range tt.want {
				if got := s.For(tenant).Version; got != v {
					t.Errorf("For(%s) = %s, want %s", tenant, got, v)
				}
			}
		})
	}
}

func TestLoadSetErrors(t *testing.T) {
	other := writeFiles(t, map[string]string{"one.yaml": oneStep})
	tests := []struct {
		name  string
		files map[string]string
		file  string
		want  string
	}{
		{"bad tenant file", map[string]string{"acme.yaml": "version: x\nsteps: 3\n"}, "", "acme.yaml:2: steps"},
		{"two defaults", map[string]string{"default.yaml": twoSteps}, filepath.Join(other, "one.yaml"), "both " + filepath.Join(other, "one.yaml") + " and "},
		{"yaml and yml", map[string]string{"acme.yaml": twoSteps, "acme.yml": twoSteps}, "", "tenant acme has two files"},
		{"missing file", map[string]string{}, filepath.Join(other, "nope.yaml"), "nope.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadSet(tt.file, writeFiles(t, tt.files))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	if _, err := LoadSet("", filepath.Join(other, "nope")); err == nil || !strings.Contains(err.Error(), "ladder directory") {
		t.Errorf("missing directory: %v", err)
	}
}

// A single ladder is a Source giving itself to every tenant, so callers
// with one ladder pass it where a Set goes.
func TestSingleLadderSource(t *testing.T) {
	l := Default()
	var src Source = l
	if src.For("acme") != l || src.For("") != l {
		t.Error("a ladder is not every tenant's")
	}
	if s := NewSet(nil, nil); s.For("acme").Version != l.Version || s.Default().Version != l.Version {
		t.Error("an empty set does not give the shipped default")
	}
}
