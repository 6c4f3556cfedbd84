package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/ingest"
	"github.com/commitflow/commitflow/internal/ingest/ingesttest"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
)

// TestCallsWebhook: POST /v1/webhooks/calls takes generic call records
// with a bearer token; a refused record is answered naming its field and
// dead-lettered with its own bytes, the others stored; bad requests store
// nothing.
func TestCallsWebhook(t *testing.T) {
	b := startBus(t)
	srv := dlqGateway(t, b)
	records := readFixture(t, "calls_records.json")
	path := "/v1/webhooks/calls?seller_domains=acme.example"
	tests := []struct {
		name, path, body string
		header           http.Header
		status           int
		want             string
	}{
		{"no token", path, records, http.Header{}, 401, "missing bearer token"},
		{"another tenant", path + "&tenant=acme", records, bearer(globexToken), 403, "the token does not grant this tenant"},
		{"a bad domain", "/v1/webhooks/calls?seller_domains=acme", records, bearer(acmeToken), 400, `"param":"seller_domains"`},
		{"an unknown parameter", path + "&sellers=x.com", records, bearer(acmeToken), 400, "unknown parameter"},
		{"not JSON", path, "{\"id\":\n", bearer(acmeToken), 400, "calls: line 2: not valid JSON"},
		{"no records", path, "[]", bearer(acmeToken), 400, "no call records"},
		{"valid", path, records, bearer(acmeToken), 200, `"accepted":3,"refused":[]`},
		{"valid, again", path, records, bearer(acmeToken), 200, `"accepted":3,"refused":[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw json.RawMessage
			code, _ := post(t, srv, tt.path, tt.body, tt.header, &raw)
			if code != tt.status || !strings.Contains(string(raw), tt.want) {
				t.Fatalf("status %d %s, want %d with %s", code, raw, tt.status, tt.want)
			}
			if code != 200 && b.msgs(t) != 0 {
				t.Fatal("a refused request published events")
			}
		})
	}
	if n := b.msgs(t); n != 3 {
		t.Fatalf("CF_EVENTS holds %d messages, want 3 (the body sent twice)", n)
	}

	// NDJSON, a record refused by the mapping and one by validation.
	bad := `{"id":"x1","started_at":"2024-06-01T10:00:00Z","participants":[{"email":"a@initech.example"}]}`
	invalid := `{"id":"x2","started_at":"0001-01-01T00:00:00Z","participants":[{"name":"A","side":"seller"}]}`
	good := `{"id":"x3","started_at":"2024-06-01T10:00:00Z","participants":[{"email":"a@initech.example","side":"buyer"}]}`
	var res WebhookResult
	if code, _ := post(t, srv, "/v1/webhooks/calls", bad+"\n"+invalid+"\n"+good+"\n", bearer(acmeToken), &res); code != 200 || res.Accepted != 1 || len(res.Refused) != 2 {
		t.Fatalf("NDJSON: %d %+v", code, res)
	}
	if r := res.Refused[0]; r.Index != 0 || !strings.HasPrefix(r.Reason, "call x1 participants[0].side: missing, and no seller domains") {
		t.Errorf("refused %+v", r)
	}
	if r := res.Refused[1]; r.Index != 1 || !strings.HasPrefix(r.Reason, "call-x2: occurred_at: missing") {
		t.Errorf("refused %+v", r)
	}
	got := letters(t, b)
	if len(got) != 2 || !strings.HasPrefix(got[0], "cf.events.acme.calls.unmapped.0 | call x1 ") || !strings.HasSuffix(got[0], " | "+bad) ||
		!strings.HasPrefix(got[1], "cf.events.acme.calls.call_completed.0 | call-x2: ") || !strings.HasSuffix(got[1], " | "+invalid) {
		t.Fatalf("dead letters:\n%s", strings.Join(got, "\n"))
	}
	if n := b.msgs(t); n != 4 {
		t.Fatalf("CF_EVENTS holds %d messages, want 4", n)
	}
}

// TestCallsEndToEnd posts call records through the running server, with
// an ingest worker moving them from embedded NATS into ClickHouse: each
// record is one row of the events table, under its recorder's source,
// with the sides decided by e-mail domain.
func TestCallsEndToEnd(t *testing.T) {
	b := startBus(t)
	st := storetest.Open(t, store.Options{})
	ingesttest.Run(t, b.js, st, ingest.Config{})
	srv := gatewayServer(t, b.pub, nil)

	records := readFixture(t, "calls_records.json")
	var res WebhookResult
	for range 2 { // sent, then sent again
		if code, _ := post(t, srv, "/v1/webhooks/calls?seller_domains=acme.example", records, bearer(acmeToken), &res); code != 200 || res.Accepted != 3 {
			t.Fatalf("calls webhook: %d %+v", code, res)
		}
	}
	want := "calls:call-991234-4711 twilio:call-CA5f2a9c3e1b7d4f6a8c0e2b4d6f8a1c3e zoom:call-4444AAAiAAAAAiAiAiiAii==-0065g00000AbCdEAAV"
	var got string
	deadline := time.Now().Add(30 * time.Second)
	for got != want {
		if time.Now().After(deadline) {
			t.Fatalf("events rows %q, want %q", got, want)
		}
		time.Sleep(50 * time.Millisecond)
		err := st.Conn().QueryRow(t.Context(),
			`SELECT arrayStringConcat(arraySort(groupArray(concat(source, ':', event_id))), ' ') FROM events WHERE tenant = ? AND type = 'call.completed'`,
			"acme").Scan(&got)
		if err != nil {
			t.Fatal(err)
		}
	}
	var payload string
	if err := st.Conn().QueryRow(t.Context(), `SELECT payload FROM events WHERE tenant = ? AND source = 'zoom'`, "acme").Scan(&payload); err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{`"email":"sam@eu.acme.example","name":"Sam Engineer","side":"seller"`, `"text":"Share the current ticket volumes","owner_side":"buyer"`} {
		if !strings.Contains(payload, part) {
			t.Errorf("the zoom call's payload %s lacks %s", payload, part)
		}
	}
	if n := b.msgs(t); n != 3 {
		t.Fatalf("CF_EVENTS holds %d messages, want 3", n)
	}
}
