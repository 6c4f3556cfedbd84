package main

import "testing"

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
