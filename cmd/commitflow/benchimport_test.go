package main

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestBenchImport runs bench import small, its importer a commitflow
// import process of its own (this test binary, run as the command): every
// row is stored and derived, and the importer's CPU is measured apart.
func TestBenchImport(t *testing.T) {
	t.Setenv("COMMITFLOW_TEST_AS_CLI", "1") // for the importer the benchmark starts
	dsn := chtest.DSN(t)
	admin := storetest.OpenDSN(t, dsn, store.Options{})
	t.Cleanup(func() { admin.Conn().Exec(context.Background(), "DROP DATABASE IF EXISTS commitflow_bench_import") })

	var out strings.Builder
	if err := cmdBench(t.Context(), []string{"import", "--rows", "2000", "--clickhouse", dsn, "--log-level", "warn"}, &out); err != nil {
		t.Fatalf("bench import: %v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^2000 rows \(\d+ events\)`),
		regexp.MustCompile(`(?m)^derived after \S+: \d+ rows/s`),
		regexp.MustCompile(`(?m)^CPU µs a row: commitflow [0-9.]+ \(NATS, ingest and derive\), ClickHouse \S+, the importer [0-9.]+$`),
	} {
		if !want.MatchString(out.String()) {
			t.Errorf("output lacks %s", want)
		}
	}
	var stored uint64
	if err := admin.Conn().QueryRow(t.Context(), "SELECT uniqExact(event_id) FROM commitflow_bench_import.events").Scan(&stored); err != nil || stored <= 2000 {
		t.Errorf("%d events stored (%v), want every event of the 2000 rows", stored, err)
	}
}
