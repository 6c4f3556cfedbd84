package main

import "testing"

func TestAnswerCacheSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"64MiB", 64 << 20, true},
		{"1000", 1000, true},
		{"-1", 0, false},
		{"lots", 0, false},
	}
	for _, tt := range tests {
		got, err := answerCacheSize(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("answerCacheSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
