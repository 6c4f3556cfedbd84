package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
)

// TestSyncGong runs sync gong --once against a local server answering as
// Gong does (the saved /v2/calls/extensive response for the window of its
// calls, else Gong's 404 "No calls found"): the calls are published once,
// and a second run, caught up, asks for nothing before the settle time.
func TestSyncGong(t *testing.T) {
	ctx := t.Context()
	url, js := embeddedBus(t, 4)
	page, err := os.ReadFile("../../internal/webhook/testdata/gong_calls_extensive.json")
	if err != nil {
		t.Fatal(err)
	}
	calls := time.Date(2024, 6, 3, 14, 2, 11, 0, time.UTC) // the first call's start
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		if user, pass, ok := r.BasicAuth(); !ok || user != "key1" || pass != "secret1" || r.URL.Path != "/v2/calls/extensive" {
			http.Error(w, `{"errors":["Unauthorized"]}`, http.StatusUnauthorized)
			return
		}
		var req struct {
			Filter struct{ FromDateTime, ToDateTime time.Time }
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if calls.Before(req.Filter.FromDateTime) || !calls.Before(req.Filter.ToDateTime) {
			http.Error(w, `{"requestId":"r1","errors":["No calls found corresponding to the provided filters"]}`, http.StatusNotFound)
			return
		}
		w.Write(page)
	}))
	defer srv.Close()

	args := []string{"gong", "--nats", url, "--base-url", srv.URL + "/v2", "--access-key", "key1", "--access-key-secret", "secret1",
		"--tenant", "acme", "--from", "2024-05-01", "--once"}
	var out bytes.Buffer
	if err := cmdSync(ctx, args, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "gong acme: ") || !strings.Contains(out.String(), " 2 calls, 2 events published, 0 calls refused (CF_DLQ); done through ") {
		t.Errorf("output %q", out.String())
	}
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("%d messages in %s, want 2", n, bus.EventsStream)
	}
	before := requests
	out.Reset()
	if err := cmdSync(ctx, args, &out); err != nil {
		t.Fatal(err)
	}
	if requests != before || !strings.Contains(out.String(), ": 0 pages, 0 calls") {
		t.Errorf("caught up: %d more requests, output %q", requests-before, out.String())
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"gong", "--nats", url, "--access-key", "k"}, "--access-key and --access-key-secret are required"},
		{[]string{"gong", "--nats", url, "--access-key", "k", "--access-key-secret", "s", "--from", "May 1"}, `--from: "May 1": want YYYY-MM-DD or RFC 3339`},
		{[]string{"gong", "--nats", url, "--access-key", "k", "--access-key-secret", "s", "--base-url", "api.gong.io"}, "--base-url: want https://host"},
		{[]string{"gong", "--nats", url, "--access-key", "k", "--access-key-secret", "wrong", "--base-url", srv.URL, "--tenant", "other", "--once"}, "gong refused the credentials (401"},
		{[]string{"zoom"}, "sync: which source? (gong)"},
	} {
		if err := cmdSync(ctx, c.args, &out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want %q", c.args, err, c.want)
		}
	}
}
