package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{0.4}, 0.4},
		{[]float64{0.6, 0.4}, 0.5},
		{[]float64{0.5, 0.3, 0.4}, 0.4},
		{[]float64{0.9, 0.1, 0.5, 0.4}, 0.45},
	} {
		xs := append([]float64(nil), tc.xs...)
		if got := median(xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		for i := range xs {
			if xs[i] != tc.xs[i] {
				t.Errorf("median reordered its input: %v", xs)
			}
		}
	}
}

func TestProcCPU(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"plain", "1234 (commitflow) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0", 3 * time.Second, true},
		{"spaces and parentheses in the name", "99 (a (b) c) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0", 100 * time.Millisecond, true},
		{"truncated", "99 (x) R 1 1 1", 0, false},
		{"no name", "99 x R", 0, false},
		{"not a number", "99 (x) R 1 1 1 0 -1 0 0 0 0 0 a 3 0 0", 0, false},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, "stat")
		if err := os.WriteFile(p, []byte(tt.stat), 0o644); err != nil {
			t.Fatal(err)
		}
		got, ok := procCPU(p)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: procCPU = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := procCPU(filepath.Join(dir, "missing")); ok {
		t.Error("missing file: ok")
	}
}

func TestFmtCost(t *testing.T) {
	if got := fmtCost(-1); got != "n/a" {
		t.Errorf("fmtCost(-1) = %q", got)
	}
	if got := fmtCost(17.66); got != "17.7" {
		t.Errorf("fmtCost(17.66) = %q", got)
	}
}
