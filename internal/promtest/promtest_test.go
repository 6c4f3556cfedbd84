package promtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestSum: the series of a family are summed, those without the labels
// asked for left out; a counter and a gauge are read alike; a family not
// gathered is 0.
func TestSum(t *testing.T) {
	reg := prometheus.NewRegistry()
	lost := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_lost_total", Help: "h"}, []string{"bucket", "reason"})
	held := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x_held", Help: "h"})
	unused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_unused_total", Help: "h"}, []string{"bucket"})
	reg.MustRegister(lost, held, unused)
	lost.WithLabelValues("a", "taken").Add(1)
	lost.WithLabelValues("a", "unreachable").Add(2)
	lost.WithLabelValues("b", "taken").Add(4)
	held.Set(3)

	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"x_lost_total", nil, 7},
		{"x_lost_total", []string{"bucket", "a"}, 3},
		{"x_lost_total", []string{"bucket", "a", "reason", "taken"}, 1},
		{"x_lost_total", []string{"reason", "taken"}, 5},
		{"x_lost_total", []string{"bucket", "c"}, 0},
		{"x_held", nil, 3},
		{"x_unused_total", nil, 0},
		{"x_absent", nil, 0},
	} {
		if got := Sum(t, reg, tt.name, tt.labels...); got != tt.want {
			t.Errorf("Sum(%s, %q) = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
}
