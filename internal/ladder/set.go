package ladder

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Source gives the ladder of a tenant: a *Set each tenant's own, a single
// *Ladder every tenant's.
type Source interface {
	For(tenant string) *Ladder
}

// For returns l: a single ladder is every tenant's.
func (l *Ladder) For(string) *Ladder { return l }

// Set is the ladders in force: the tenants' own, and a default for every
// other tenant. Each is versioned on its own, so a change to one tenant's
// ladder concerns that tenant only.
type Set struct {
	def     *Ladder
	tenants map[string]*Ladder
}

// NewSet returns the set of the tenants' own ladders and def for the
// others; a nil def is the shipped default.
func NewSet(def *Ladder, tenants map[string]*Ladder) *Set {
	if def == nil {
		def = Default()
	}
	return &Set{def: def, tenants: tenants}
}

// For returns the ladder of tenant: its own, else the default.
func (s *Set) For(tenant string) *Ladder {
	if l, ok := s.tenants[tenant]; ok {
		return l
	}
	return s.def
}

// Default returns the ladder of the tenants without their own.
func (s *Set) Default() *Ladder { return s.def }

// Tenants returns the tenants with their own ladder, sorted.
func (s *Set) Tenants() []string { return slices.Sorted(maps.Keys(s.tenants)) }

// DefaultFile is the name of the file in a ladder directory that holds the
// ladder of the tenants without a file of their own.
const DefaultFile = "default.yaml"

// LoadSet reads the ladders in force. file, if not empty, is the default
// ladder (else the shipped one). dir, if not empty, holds one file per
// tenant with its own ladder, <tenant>.yaml (or .yml), and may hold the
// default as default.yaml, unless file gives it. Other files and
// subdirectories are ignored, so that a README or an editor's backup may
// sit beside the ladders.
func LoadSet(file, dir string) (*Set, error) {
	var def *Ladder
	if file != "" {
		l, err := Load(file)
		if err != nil {
			return nil, err
		}
		def = l
	}
	if dir == "" {
		return NewSet(def, nil), nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("ladder directory: %w", err)
	}
	tenants := map[string]*Ladder{}
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		tenant := strings.TrimSuffix(name, ext)
		if e.IsDir() || ext != ".yaml" && ext != ".yml" || tenant == "" || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		l, err := Load(path)
		if err != nil {
			return nil, err
		}
		if tenant == "default" {
			if file != "" {
				return nil, fmt.Errorf("ladder: both %s and %s give the default ladder: keep one", file, path)
			}
			if def != nil {
				return nil, errors.New("ladder: both default.yaml and default.yml in " + dir + ": keep one")
			}
			def = l
			continue
		}
		if _, dup := tenants[tenant]; dup {
			return nil, fmt.Errorf("ladder: tenant %s has two files in %s (.yaml and .yml): keep one", tenant, dir)
		}
		tenants[tenant] = l
	}
	return NewSet(def, tenants), nil
}
