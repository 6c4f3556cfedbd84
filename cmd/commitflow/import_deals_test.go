package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/bus"
)

// TestImportDealsExports imports the HubSpot (with its pipelines file and
// the account's time zone) and Pipedrive deals exports of the importer's
// fixtures twice: the second import publishes the same message ids, which
// the stream drops.
func TestImportDealsExports(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 4)
	fixtures := filepath.Join("..", "..", "internal", "importer", "testdata")
	hubspot := filepath.Join(fixtures, "hubspot", "deals.csv")
	pipedrive := filepath.Join(fixtures, "pipedrive", "deals.csv")
	data := filepath.Join(t.TempDir(), "data")
	common := []string{"--nats", url, "--data", data, "--tenant", "acme"}
	var msgs uint64
	for _, tc := range []struct {
		args    []string
		summary string
		events  uint64
	}{
		{[]string{"--format", "hubspot-deals", "--pipelines", filepath.Join(fixtures, "hubspot", "pipelines.json"), "--timezone", "America/New_York", hubspot},
			hubspot + ": 8 rows read, 26 events published, 2 rows refused\n" +
				`  line 7: Create Date: "someday" is not a date or time (want 2024-03-27, 2024-03-27 14:30 or ISO 8601)` + "\n" +
				`  line 8: Deal Stage: "Demo Booked" is not a stage of pipeline "Sales Pipeline" in the pipelines file` + "\n", 26},
		{[]string{"--format", "pipedrive-deals", pipedrive},
			pipedrive + ": 8 rows read, 12 events published, 3 rows refused\n" +
				"  line 7: Deal - Status: won, but neither the won time nor the close time is given\n" +
				"  line 8: Deal - Status: a deleted deal\n" +
				`  line 9: Deal - Value: "1.000,50" is not an amount >= 0` + "\n", 12},
	} {
		msgs += tc.events
		for i := range 2 {
			var stdout, stderr bytes.Buffer
			if err := runImport(ctx, append(common, tc.args...), &stdout, &stderr); err != nil {
				t.Fatalf("import %v: %v\n%s", tc.args, err, stderr.String())
			}
			if stdout.String() != tc.summary {
				t.Errorf("import %d of %s: summary\n%s\nwant\n%s", i+1, tc.args[1], stdout.String(), tc.summary)
			}
			s, err := js.Stream(ctx, bus.EventsStream)
			if err != nil {
				t.Fatal(err)
			}
			if n := s.CachedInfo().State.Msgs; n != msgs {
				t.Errorf("after import %d of %s: %d messages, want %d", i+1, tc.args[1], n, msgs)
			}
		}
	}
	for _, bad := range [][]string{
		{"--format", "hubspot-deals", "--timezone", "Mars/Olympus", hubspot},
		{"--format", "pipedrive-deals", "--pipelines", filepath.Join(fixtures, "hubspot", "pipelines.json"), pipedrive},
		{"--format", "hubspot-deals", "--pipelines", hubspot, hubspot},
	} {
		var stdout, stderr bytes.Buffer
		if err := runImport(ctx, append(common, bad...), &stdout, &stderr); err == nil {
			t.Errorf("import %v: no error", bad)
		} else if !strings.Contains(err.Error(), "import:") {
			t.Errorf("import %v: %v", bad, err)
		}
	}
}
