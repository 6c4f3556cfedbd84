package event_test

import (
	"context"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
)

// messages returns the encoded events of a generated history of 200
// deals, events of every type, and their mean size.
func messages(tb testing.TB, seed int64) ([][]byte, int) {
	var msgs [][]byte
	cfg := gen.Config{Seed: seed, Opportunities: 200, Tenant: "acme", End: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	if err := gen.Generate(context.Background(), cfg, func(ev event.Event) error {
		data, err := event.Marshal(ev)
		msgs = append(msgs, data)
		return err
	}); err != nil {
		tb.Fatal(err)
	}
	bytes := 0
	for _, m := range msgs {
		bytes += len(m)
	}
	return msgs, bytes / len(msgs)
}

// BenchmarkParse parses generated events of every type (reports events/s).
func BenchmarkParse(b *testing.B) {
	msgs, size := messages(b, 1)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := event.Parse(msgs[i%len(msgs)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecode decodes the same events with the fast decoder Parse
// tries first and with the full decoder alone, side by side.
func BenchmarkDecode(b *testing.B) {
	msgs, size := messages(b, 1)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(size))
		for i := 0; i < b.N; i++ {
			if _, ok := event.DecodeFast(msgs[i%len(msgs)]); !ok {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("full", func(b *testing.B) {
		b.SetBytes(int64(size))
		for i := 0; i < b.N; i++ {
			if _, err := event.DecodeFull(msgs[i%len(msgs)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
