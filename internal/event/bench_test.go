package event_test

import (
	"context"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
)

// BenchmarkParse parses generated events of every type (reports events/s).
func BenchmarkParse(b *testing.B) {
	var msgs [][]byte
	cfg := gen.Config{Seed: 1, Opportunities: 200, Tenant: "acme", End: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	if err := gen.Generate(context.Background(), cfg, func(ev event.Event) error {
		data, err := event.Marshal(ev)
		msgs = append(msgs, data)
		return err
	}); err != nil {
		b.Fatal(err)
	}
	bytes := 0
	for _, m := range msgs {
		bytes += len(m)
	}
	b.SetBytes(int64(bytes / len(msgs)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := event.Parse(msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
