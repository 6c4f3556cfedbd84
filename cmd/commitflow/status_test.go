package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/store"
)

func TestStatusCommand(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 2)
	for _, subject := range []string{"cf.events.acme.crm.opportunity_created.0", "cf.events.acme.crm.opportunity_created.1"} {
		if _, err := js.Publish(ctx, subject, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	dsn := chtest.DSN(t)
	st, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Two versions of one opportunity's state: one superseded.
	for v := range 2 {
		b, err := st.Conn().PrepareBatch(ctx, "INSERT INTO opportunity_state (tenant, opportunity_id, version)")
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Append("acme", "o1", uint64(v+1)); err != nil {
			t.Fatal(err)
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}

	var out bytes.Buffer
	if err := cmdStatus(ctx, []string{"--nats", url, "--clickhouse", dsn, "--format", "json"}, &out); err != nil {
		t.Fatalf("status: %v\n%s", err, out.String())
	}
	var got pipelineStatus
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("status --format json: %v\n%s", err, out.String())
	}
	if got.Bus == nil || len(got.Bus.Streams) != 3 || got.Bus.Streams[0].Name != bus.EventsStream || got.Bus.Streams[0].Messages != 2 {
		t.Fatalf("streams: %+v", got.Bus)
	}
	if got.Bus.Ingest == nil || got.Bus.Ingest.Pending != 2 || got.Bus.Derive.Consumers != 2 || got.Bus.Derive.Pending != 2 {
		t.Errorf("consumers: ingest %+v, derive %+v", got.Bus.Ingest, got.Bus.Derive)
	}
	if !got.Migrated || got.Version == "" || got.Rows["schema_migrations"] == 0 || got.SupersededStates != 1 || got.ClickHouseError != "" {
		t.Errorf("clickhouse: %+v", got)
	}

	out.Reset()
	if err := cmdStatus(ctx, []string{"--nats", url, "--clickhouse", dsn}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CF_EVENTS", "2 messages", "ingest", "2 to deliver", "migrations", "all applied", "2 rows, 1 superseded"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}

	// What cannot be read is said, and the command fails.
	out.Reset()
	err = cmdStatus(ctx, []string{"--nats", "nats://127.0.0.1:1", "--data", t.TempDir()}, &out)
	if err == nil || !strings.Contains(out.String(), "no managed server running") || !strings.Contains(out.String(), "nats://127.0.0.1:1") {
		t.Errorf("status without services: %v\n%s", err, out.String())
	}
	if err := cmdStatus(ctx, []string{"--format", "xml"}, io.Discard); err == nil {
		t.Error("status --format xml: no error")
	}
}
