package config

import (
	"math"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1024", 1024, true},
		{"10B", 10, true},
		{"64KiB", 64 << 10, true},
		{"512MiB", 512 << 20, true},
		{"4GiB", 4 << 30, true},
		{"2TiB", 2 << 40, true},
		{"4GB", 0, false},
		{"4 GiB", 4 << 30, true},
		{"GiB", 0, false},
		{"-1GiB", 0, false},
		{"0", 0, false},
		{"1.5GiB", 0, false},
		{"9999999TiB", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestMemTotal(t *testing.T) {
	got, err := memTotal([]byte("MemFree:  100 kB\nMemTotal:       24683624 kB\nBuffers: 1 kB\n"))
	if err != nil || got != 24683624<<10 {
		t.Errorf("memTotal = %d, %v", got, err)
	}
	if _, err := memTotal([]byte("MemFree: 1 kB\n")); err == nil {
		t.Error("memTotal without MemTotal: no error")
	}
}

func TestCgroupLimit(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"max\n", 0, false},
		{"2147483648\n", 2 << 30, true},
		{"9223372036854771712\n", 9223372036854771712, true},
		{"0\n", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := cgroupLimit([]byte(tt.in))
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("cgroupLimit(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestGCLimit(t *testing.T) {
	if l, err := (GC{MemoryLimit: "off"}).limit(); err != nil || l != math.MaxInt64 {
		t.Errorf("off: %d, %v", l, err)
	}
	if l, err := (GC{MemoryLimit: "3GiB"}).limit(); err != nil || l != 3<<30 {
		t.Errorf("3GiB: %d, %v", l, err)
	}
	if _, err := (GC{MemoryLimit: "lots"}).limit(); err == nil {
		t.Error("lots: no error")
	}
	l, err := (GC{}).limit()
	if err != nil || l <= 0 {
		t.Errorf("default: %d, %v", l, err)
	}
	if total, ok := machineMemory(); ok && l != min(int64(total/4), DefaultMemoryLimit) {
		t.Errorf("default: %d, want a quarter of %d, at most %d", l, total, int64(DefaultMemoryLimit))
	}
}
