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
// parse+publish times it from the file's bytes; publish parses outside the
// timer, leaving the events' encoding, their publishing and the
// checkpoints. Each iteration imports the file as another tenant, so that
// no message is a duplicate of an earlier iteration's.
func BenchmarkImportHistory(b *testing.B) {
	for _, bc := range []struct {
		name  string
		parse bool // parse within the timer
	}{{"parse+publish", true}, {"publish", false}} {
		b.Run(bc.name, func(b *testing.B) { benchImport(b, bc.parse) })
	}
}

func benchImport(b *testing.B, timeParse bool) {
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
	events := 0
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		tenant := fmt.Sprintf("t%d", i)
		if !timeParse {
			b.StopTimer()
		}
		rows, err := SalesforceHistory(tenant, "USD").Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		key := Key(data, "salesforce-history", tenant)
		sum, err := Run(ctx, rows, key, pub, Options{Checkpoint: CheckpointPath(dir, key)})
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

// BenchmarkImportParse parses a generated OpportunityHistory export into
// rows and events: the import's work before publishing.
func BenchmarkImportParse(b *testing.B) {
	n := benchRows()
	data := gen.SalesforceHistory(n)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SalesforceHistory("acme", "USD").Parse(data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
