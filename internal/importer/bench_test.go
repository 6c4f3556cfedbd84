package importer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/gen"
)

// benchRows is the size of the export the import benchmarks read:
// $COMMITFLOW_IMPORT_ROWS, default 100,000 rows.
func benchRows() int {
	if n, _ := strconv.Atoi(os.Getenv("COMMITFLOW_IMPORT_ROWS")); n > 0 {
		return n
	}
	return 100000
}

// BenchmarkImportHistory imports a generated OpportunityHistory export
// into an embedded JetStream, checkpointing as the import command does:
// the import's own part of the end-to-end figure, without ClickHouse.
// file reads the export from its file deal by deal (HistoryFile, as the
// import command does), timing both of its passes; parse+publish parses
// it in memory within the timer; publish parses outside the timer,
// leaving the events' encoding, their publishing and the checkpoints.
// Each iteration imports the file as another tenant, so that no message
// is a duplicate of an earlier iteration's.
func BenchmarkImportHistory(b *testing.B) {
	for _, bc := range []struct {
		name string
		mode string
	}{{"file", "file"}, {"parse+publish", "parse"}, {"publish", ""}} {
		b.Run(bc.name, func(b *testing.B) { benchImport(b, bc.mode) })
	}
}

func benchImport(b *testing.B, mode string) {
	ctx := context.Background()
	_, js := bustest.Start(b, bus.Options{})
	parts, err := bus.Partitions(ctx, js)
	if err != nil {
		b.Fatal(err)
	}
	pub := bus.NewPublisher(js, parts)
	n := benchRows()
	data := gen.SalesforceHistory(n)
	dir := b.TempDir()
	path := filepath.Join(dir, "history.csv")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	events := 0
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		tenant := fmt.Sprintf("t%d", i)
		h := SalesforceHistory(tenant, "USD")
		var in Input
		switch mode {
		case "file":
			hf, err := h.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer hf.Close()
			in = hf
		case "parse":
			if in, err = h.Parse(data); err != nil {
				b.Fatal(err)
			}
		default:
			b.StopTimer()
			if in, err = h.Parse(data); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		key := Key(data, "salesforce-history", tenant)
		sum, err := Run(ctx, in, key, pub, Options{Checkpoint: CheckpointPath(dir, key)})
		if err != nil {
			b.Fatal(err)
		}
		events += sum.Events
	}
	el := b.Elapsed().Seconds()
	b.ReportMetric(float64(n*b.N)/el, "rows/s")
	b.ReportMetric(float64(events)/el, "events/s")
	if _, err := os.Stat(filepath.Join(dir, "import")); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkImportParse makes the rows and events of a generated
// OpportunityHistory export: the import's work before publishing. memory
// parses the export in memory (History.Parse), file reads it from its file
// deal by deal (HistoryFile: Open and Each).
func BenchmarkImportParse(b *testing.B) {
	n := benchRows()
	data := gen.SalesforceHistory(n)
	path := filepath.Join(b.TempDir(), "history.csv")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	h := SalesforceHistory("acme", "USD")
	for _, bc := range []struct {
		name  string
		parse func() error
	}{
		{"memory", func() error { _, err := h.Parse(data); return err }},
		{"file", func() error {
			hf, err := h.Open(path)
			if err != nil {
				return err
			}
			defer hf.Close()
			return hf.Each(func(Row) error { return nil })
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := bc.parse(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
