package main

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/commitflow/commitflow/internal/bus"
)

func TestDLQCommand(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 2)
	for i, r := range []string{"payload.amount: must not be negative", "type: missing", "payload.amount: must not be negative"} {
		subject := "cf.events.acme.crm.opportunity_created.1"
		m := nats.NewMsg(bus.DLQSubject(subject))
		m.Data = []byte(`{"id":"x` + string(rune('0'+i)) + `", "note": "é"}`)
		m.Header.Set(bus.ErrorHeader, r)
		m.Header.Set(bus.SubjectHeader, subject)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := cmdDLQ(ctx, append(args, "--nats", url), &out); err != nil {
			t.Fatalf("dlq %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}

	out := run("list")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 || !strings.Contains(lines[2], "type: missing") {
		t.Errorf("dlq list:\n%s", out)
	}
	if !strings.Contains(out, `{"id":"x0", "note": "é"}`) {
		t.Errorf("dlq list lacks the body:\n%s", out)
	}
	if out := run("list", "--by-reason"); !strings.Contains(out, "2      payload.amount: must not be negative") || !strings.Contains(out, "1      type: missing") {
		t.Errorf("dlq list --by-reason:\n%s", out)
	}
	if out := run("list", "--format", "json", "--reason", "type:"); strings.Count(out, "\n") != 1 ||
		!strings.Contains(out, `"reason":"type: missing"`) || !strings.Contains(out, `"body":{"id":"x1"`) {
		t.Errorf("dlq list --format json --reason type::\n%s", out)
	}
	if out := run("replay", "--reason", "amount"); !strings.Contains(out, "replayed 2 dead letters to CF_EVENTS") {
		t.Errorf("dlq replay:\n%s", out)
	}
	if out := run("list", "--by-reason"); strings.Contains(out, "amount") || !strings.Contains(out, "type: missing") {
		t.Errorf("dlq list --by-reason after replay:\n%s", out)
	}

	for _, args := range [][]string{{}, {"purge"}, {"list", "--format", "csv"}, {"list", "--limit", "-1"}, {"list", "--subject", "cf.dlq.>"}, {"list", "extra"}} {
		if err := cmdDLQ(ctx, append(args, "--nats", url), io.Discard); err == nil {
			t.Errorf("dlq %v: no error", args)
		}
	}
}
