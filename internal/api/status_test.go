package api

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// TestStatus checks GET /v1/status against an embedded JetStream: events
// published and not yet consumed count as behind for ingest and derive.
func TestStatus(t *testing.T) {
	b := startBus(t)
	h := New(Config{Tokens: map[string]string{acmeToken: "acme"}, Bus: b.js}, nil, nil, nil)
	lag := func() pipelineLag {
		t.Helper()
		rec := serve(h, "GET", "/v1/status", acmeToken)
		if rec.Code != 200 {
			t.Fatalf("GET /v1/status: %d %s", rec.Code, rec.Body)
		}
		var l pipelineLag
		if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	if got := lag(); got != (pipelineLag{}) {
		t.Fatalf("empty stream: %+v, want all 0", got)
	}
	const n = 7
	for i := range n {
		subject := fmt.Sprintf("cf.events.acme.crm.opportunity_created.%d", i%2)
		if err := b.pub.PublishRaw(t.Context(), subject, fmt.Sprint("m", i), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	// The consumers' pending counts can trail the publishes'
	// acknowledgements by a moment: on a loaded machine (a CI run beside
	// other tests) the first look once saw 0 for all three.
	want := pipelineLag{IngestPending: n, DerivePending: n, Behind: n}
	got := lag()
	for deadline := time.Now().Add(10 * time.Second); got != want && time.Now().Before(deadline); got = lag() {
		time.Sleep(20 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("after %d events: %+v, want %+v", n, got, want)
	}

	tests := []struct {
		name   string
		cfg    Config
		target string
		token  string
		code   int
	}{
		{"no token", Config{Tokens: map[string]string{acmeToken: "acme"}, Bus: b.js}, "/v1/status", "", 401},
		{"unknown parameter", Config{Tokens: map[string]string{acmeToken: "acme"}, Bus: b.js}, "/v1/status?x=1", acmeToken, 400},
		{"no event stream", Config{Tokens: map[string]string{acmeToken: "acme"}}, "/v1/status", acmeToken, 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(New(tt.cfg, nil, nil, nil), "GET", tt.target, tt.token)
			if rec.Code != tt.code {
				t.Fatalf("%s: %d %s, want %d", tt.target, rec.Code, rec.Body, tt.code)
			}
		})
	}
}
