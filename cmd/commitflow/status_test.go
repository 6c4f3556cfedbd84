package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/chserver"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
	ladderschema "github.com/commitflow/commitflow/schemas/ladder"
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
	st := storetest.OpenDSN(t, dsn, store.Options{})
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
	err := cmdStatus(ctx, []string{"--nats", "nats://127.0.0.1:1", "--data", t.TempDir()}, &out)
	if err == nil || !strings.Contains(out.String(), "no managed ClickHouse running") || !strings.Contains(out.String(), "nats://127.0.0.1:1") {
		t.Errorf("status without services: %v\n%s", err, out.String())
	}
	if err := cmdStatus(ctx, []string{"--format", "xml"}, io.Discard); err == nil {
		t.Error("status --format xml: no error")
	}
}

// status and report find a running `commitflow run` from --data alone,
// whatever ports it picked, and answer in its ladder; once it has stopped
// they say there is none (issue 18 defect 5).
func TestStatusAndReportFindRun(t *testing.T) {
	if !chserver.Installed() {
		if os.Getenv("CI") == "true" {
			t.Fatal(chserver.ErrNotInstalled)
		}
		t.Skip(chserver.ErrNotInstalled)
	}
	for _, env := range []string{"COMMITFLOW_CLICKHOUSE", "COMMITFLOW_NATS", "COMMITFLOW_LADDER", "COMMITFLOW_TOKENS"} {
		t.Setenv(env, "")
	}
	data := t.TempDir()
	ladderFile := filepath.Join(t.TempDir(), "ladder.yaml")
	if err := os.WriteFile(ladderFile, []byte("version: run-ladder\n"+ladderschema.DefaultYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- cmdRun(ctx, []string{"--data", data, "--nats-listen", "127.0.0.1:-1", "--http", "127.0.0.1:0",
			"--demo", "--demo-opportunities", "30", "--partitions", "2", "--ladder", ladderFile,
			"--sweep", "1h", "--compact-every", "0", "--log-level", "error"}, io.Discard)
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil && ctx.Err() == nil {
				t.Errorf("run: %v", err)
			}
		}
	}
	t.Cleanup(stop)

	// The demo's deals derived, read with only --data.
	var stalls struct {
		Open        int64
		Definitions struct {
			LadderVersion string `json:"ladder_version"`
		}
	}
	for deadline := time.Now().Add(3 * time.Minute); ; {
		out, err := runReport("stalls", "--tenant", "demo", "--data", data, "--format", "json", "--log-level", "error")
		if err == nil {
			if err := json.Unmarshal([]byte(out), &stalls); err != nil {
				t.Fatalf("report stalls: %v\n%s", err, out)
			}
			if stalls.Open > 0 {
				break
			}
		}
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("run stopped: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("report stalls with only --data: %v, %+v", err, stalls)
		}
	}
	if stalls.Definitions.LadderVersion != "run-ladder" {
		t.Errorf("report answered with ladder %q, want run's run-ladder", stalls.Definitions.LadderVersion)
	}

	info, err := readRunInfo(data)
	if err != nil || info.NATS == "" || info.NATS == "nats://127.0.0.1:4222" || info.Ladder != ladderFile {
		t.Fatalf("run info: %+v, %v", info, err)
	}
	var out bytes.Buffer
	if err := cmdStatus(ctx, []string{"--data", data, "--format", "json"}, &out); err != nil {
		t.Fatalf("status with only --data: %v\n%s", err, out.String())
	}
	var got pipelineStatus
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.NATS != info.NATS || got.Bus == nil || len(got.Bus.Streams) != 3 || got.Bus.Streams[0].Messages == 0 {
		t.Errorf("status nats %s: %+v", got.NATS, got.Bus)
	}
	if got.ClickHouse == "" || !got.Migrated || got.Rows["opportunity_state"] == 0 {
		t.Errorf("status clickhouse: %+v", got)
	}

	// verify and dlq find the run the same way.
	out.Reset()
	if err := cmdVerify(ctx, []string{"--data", data, "--format", "json"}, &out); err != nil {
		t.Errorf("verify with only --data: %v\n%s", err, out.String())
	}
	out.Reset()
	if err := cmdDLQ(ctx, []string{"list", "--data", data}, &out); err != nil {
		t.Errorf("dlq list with only --data: %v\n%s", err, out.String())
	}

	// Stopped: run's file is gone, and both say what they did not find.
	stop()
	if _, err := os.Stat(filepath.Join(data, runInfoFile)); !os.IsNotExist(err) {
		t.Errorf("%s after run stopped: %v", runInfoFile, err)
	}
	out.Reset()
	err = cmdStatus(t.Context(), []string{"--data", data}, &out)
	for _, want := range []string{"no --nats given and no commitflow run under " + data, "no managed ClickHouse running under " + filepath.Join(data, "clickhouse")} {
		if err == nil || !strings.Contains(out.String(), want) {
			t.Errorf("status after run stopped: %v, lacks %q:\n%s", err, want, out.String())
		}
	}
	_, err = runReport("stalls", "--tenant", "demo", "--data", data)
	if err == nil || !strings.Contains(err.Error(), "no managed ClickHouse running under "+filepath.Join(data, "clickhouse")) {
		t.Errorf("report after run stopped: %v", err)
	}

	// The file of a run killed with SIGKILL stays behind; a run given its
	// NATS server names none.
	for _, tt := range []struct {
		nats, want string
	}{
		{info.NATS, "(from " + filepath.Join(data, runInfoFile) + ", written by commitflow run pid " + strconv.Itoa(info.PID) + "; is it still running?)"},
		{"", "no --nats given, and the commitflow run under " + data + " was given its NATS server: pass that URL, --nats URL"},
	} {
		if _, err := writeRunInfo(data, runInfo{PID: info.PID, NATS: tt.nats}); err != nil {
			t.Fatal(err)
		}
		out.Reset()
		if err := cmdStatus(t.Context(), []string{"--data", data}, &out); err == nil || !strings.Contains(out.String(), tt.want) {
			t.Errorf("status with run info %q: %v, lacks %q:\n%s", tt.nats, err, tt.want, out.String())
		}
	}
}
