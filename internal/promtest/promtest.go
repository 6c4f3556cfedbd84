// Package promtest reads, for tests, the value of a metric that a
// component registered on a Prometheus registry, where the test cannot
// reach the collector itself (one it can reach is read with
// prometheus/testutil.ToFloat64). Only tests import it.
package promtest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Sum returns the sum of the values of the series of the counter or gauge
// family name gathered from g whose labels include labels, given as pairs
// of label name and value. A family g does not gather (a vector with no
// series yet) sums to 0. It fails t when g cannot be gathered, when labels
// are not pairs, or when the family is neither a counter nor a gauge.
func Sum(t testing.TB, g prometheus.Gatherer, name string, labels ...string) float64 {
	t.Helper()
	if len(labels)%2 != 0 {
		t.Fatalf("promtest.Sum(%s): labels %q are not name, value pairs", name, labels)
	}
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				sum += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				sum += m.GetGauge().GetValue()
			default:
				t.Fatalf("promtest.Sum: %s is a %s, not a counter or gauge", name, mf.GetType())
			}
		}
	}
	return sum
}

// hasLabels reports whether m has every label name, value pair of labels.
func hasLabels(m *dto.Metric, labels []string) bool {
	for i := 0; i < len(labels); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
