package ingest

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
)

// TestIngestHandWrittenShapes: events as senders write them by hand — white
// space, payload before type, time offsets and fractions, escapes, surrogate
// pairs, null for an optional field — are stored with the envelope their
// JSON says (read here with encoding/json, not with the worker's decoder)
// and their bytes; the hostile variants of the same events are
// dead-lettered with a reason naming what is wrong. The worker decodes the
// usual shape with a fast decoder and anything else with the full one: both
// paths are taken here.
func TestIngestHandWrittenShapes(t *testing.T) {
	ctx := t.Context()
	_, js := bustest.Start(t, bus.Options{})
	st := openStore(t, chtest.DSN(t))
	n, err := bus.Partitions(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, n)

	valid := []string{
		// As Marshal writes it: the fast decoder's shape.
		`{"v":1,"id":"s1","tenant":"acme","source":"salesforce","type":"opportunity.stage_changed","occurred_at":"2026-03-02T14:30:00Z","opportunity_id":"006S1","payload":{"from":"Discovery","to":"Proposal"}}`,
		// Pretty-printed, payload first, an offset, no version.
		"{\n\t\"payload\": {\"to\": \"Negotiation\", \"probability\": 0.6},\n\t\"type\": \"opportunity.stage_changed\",\n\t\"id\": \"s2\",\n\t\"tenant\": \"acme\",\n\t\"source\": \"salesforce\",\n\t\"occurred_at\": \"2026-03-02T16:30:00+02:00\",\n\t\"opportunity_id\": \"006S2\"\n}\n",
		// Escapes in the envelope and the payload, a surrogate pair, an
		// escaped member name, null for an optional field.
		`{"id":"s3 \"quoted\" \u00e9","tenant":"acme","source":"salesforce","type":"opportunity.closed_lost","occurred_at":"2026-03-02T14:30:00.123456789Z","opportunity_id":"006\u0053\u0033","payload":{"re\u0061son":"budget \ud83d\ude00 \n next year","competitor":null,"amount":1.5e4,"currency":"eur"}}`,
		// A call with every list, unicode, fractions and offsets.
		`{"id":"s4","tenant":"acme","source":"gong","type":"call.completed","occurred_at":"2026-03-02T15:00:00.5Z","received_at":"2026-03-02T15:00:01-05:00","opportunity_id":"006S1","payload":{"call_id":"c4","title":"Café – naïve 日本","started_at":"2026-03-02T14:00:00Z","duration_seconds":1800,"participants":[{"name":"Zoë","side":"buyer","email":"zoe@buyer.example"},{"email":"ana@seller.example","side":"seller"}],"action_items":[{"text":"send \u003cpricing\u003e","owner_side":"seller","due_at":"2026-03-09T17:00:00+01:00"}],"next_meeting_booked":true}}`,
	}
	opps := map[string]bool{}
	for i, b := range valid {
		var env struct {
			Tenant, Source, Type string
			OpportunityID        string `json:"opportunity_id"`
		}
		if err := json.Unmarshal([]byte(b), &env); err != nil {
			t.Fatalf("body %d: %v", i, err)
		}
		opps[env.OpportunityID] = true
		subject := bus.Subject(event.Event{Tenant: env.Tenant, Source: env.Source, Type: event.Type(env.Type), OpportunityID: env.OpportunityID}, n)
		if err := pub.PublishRaw(ctx, subject, fmt.Sprint("shape:", i), []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	subj := "cf.events.acme.salesforce.opportunity_stage_changed." + fmt.Sprint(bus.Partition("acme", "006B", n))
	lostSubj := "cf.events.acme.salesforce.opportunity_closed_lost." + fmt.Sprint(bus.Partition("acme", "006B", n))
	const env = `"tenant":"acme","source":"salesforce","occurred_at":"2026-03-02T14:30:00Z","opportunity_id":"006B"`
	bads := []malformed{
		{subj, []byte(`{"id":"b1",` + env + `,"type":"opportunity.stage_changed","payload":{"to":"P"},"id":"b1x"}`), "id: invalid JSON at byte 166: duplicate object member name"},
		{subj, []byte(`{"id":"b2",` + env + `,"type":"opportunity.stage_changed","payload":{"to":"P` + "\xff" + `"}}`), "payload.to: invalid JSON at byte 163: invalid UTF-8"},
		{lostSubj, []byte(`{"id":"b3",` + env + `,"type":"opportunity.closed_lost","payload":{"reason":"\ud83d"}}`), "payload.reason: invalid JSON at byte 164: invalid surrogate pair"},
		{lostSubj, []byte(`{"id":"b4","Tenant":"acme","source":"salesforce","occurred_at":"2026-03-02T14:30:00Z","opportunity_id":"006B","type":"opportunity.closed_lost","payload":{}}`), `envelope: unknown field "Tenant"`},
		{lostSubj, []byte(`{"id":"b5",` + env + `,"type":"opportunity.closed_lost","payload":{}} {"id":"b5x"}`), "body: invalid JSON at byte 158: invalid character '{' after top-level value"},
		{subj, []byte(`{"id":"b6",` + env + `,"type":"opportunity.stage_changed","payload":{"to":"P","to":"Q"}}`), "payload.to: invalid JSON at byte 165: duplicate object member name"},
		{lostSubj, []byte(`{"id":"b7","tenant":"acme","source":"salesforce","occurred_at":"2026-03-02t14:30:00z","opportunity_id":"006B","type":"opportunity.closed_lost","payload":{}}`), "occurred_at: cannot unmarshal JSON string into time.Time"},
	}
	for i, b := range bads {
		if err := pub.PublishRaw(ctx, b.subject, fmt.Sprint("bad:", i), b.data); err != nil {
			t.Fatal(err)
		}
	}

	drain(t, js, st, Config{BatchSize: 100, MaxWait: 50 * time.Millisecond}, prometheus.NewRegistry(), 30*time.Second)

	rows, err := st.LoadEvents(ctx, "acme", slices.Sorted(func(yield func(string) bool) {
		for o := range opps {
			if !yield(o) {
				return
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for _, r := range rows {
		stored[string(r.Payload)] = fmt.Sprintf("%s|%s|%s|%s|%s|%s", r.Tenant, r.Source, r.EventID, r.Type, r.OpportunityID, r.OccurredAt.UTC().Format(time.RFC3339))
	}
	if len(rows) != len(valid) {
		t.Errorf("%d rows stored, want %d", len(rows), len(valid))
	}
	for i, b := range valid {
		var env struct {
			ID, Tenant, Source, Type string
			OccurredAt               time.Time `json:"occurred_at"`
			OpportunityID            string    `json:"opportunity_id"`
		}
		if err := json.Unmarshal([]byte(b), &env); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%s|%s|%s|%s|%s|%s", env.Tenant, env.Source, env.ID, env.Type, env.OpportunityID,
			env.OccurredAt.UTC().Truncate(time.Second).Format(time.RFC3339))
		got, ok := stored[b]
		switch {
		case !ok:
			t.Errorf("body %d not stored byte for byte: %s", i, b)
		case got != want:
			t.Errorf("body %d stored as %s, want %s", i, got, want)
		}
	}
	checkDLQ(t, js, bads)
}
