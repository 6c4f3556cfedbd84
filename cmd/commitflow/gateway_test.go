package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/logtest"
)

// TestGatewayConfig: run's gateway flags, and the errors that name them.
func TestGatewayConfig(t *testing.T) {
	tests := []struct {
		hubspot, pipedrive, salesforce, gong, maxBody, publicURL string
		err                                                      string
	}{
		{"", "", "", "", "16MiB", "", ""},
		{"acme=s1,globex=s2", "acme=u:p", "acme=sf1", "acme=k1,globex=k2", "1GiB", "https://commitflow.example.com/", ""},
		{"acme", "", "", "", "16MiB", "", "--hubspot-secrets: entry 1: want tenant=secret"},
		{"", "acme=nopassword", "", "", "16MiB", "", "--pipedrive-auth: tenant acme: want user:password"},
		{"", "", "acme=", "", "16MiB", "", "--salesforce-secrets: entry 1: want tenant=secret"},
		{"", "", "", "Acme=k", "16MiB", "", `--gong-keys: entry 1: invalid tenant "Acme"`},
		{"", "", "", "", "16MB", "", `--max-body: "16MB": unknown unit "MB" (want B, KiB, MiB, GiB or TiB)`},
		{"", "", "", "", "16MiB", "commitflow.example.com", `--public-url: want scheme://host[:port], e.g. https://commitflow.example.com, got "commitflow.example.com"`},
		{"", "", "", "", "16MiB", "https://commitflow.example.com/api", `--public-url: want scheme://host[:port], e.g. https://commitflow.example.com, got "https://commitflow.example.com/api"`},
	}
	for _, tt := range tests {
		gw, err := gatewayConfig(tt.hubspot, tt.pipedrive, tt.salesforce, tt.gong, tt.maxBody, tt.publicURL)
		switch {
		case tt.err != "":
			if err == nil || err.Error() != tt.err {
				t.Errorf("%+v: err %v, want %s", tt, err, tt.err)
			}
		case err != nil:
			t.Errorf("%+v: %v", tt, err)
		case gw.MaxBody <= 0 || gw.PublicURL != tt.publicURL:
			t.Errorf("%+v: %+v", tt, gw)
		}
	}
}

// TestGatewayCommand starts commitflow gateway against an embedded NATS
// JetStream with commitflow's streams and posts events to it: they are in
// CF_EVENTS; the probes and /metrics answer; reports are not served; past
// --rate-limit a tenant's request is 429 with Retry-After.
func TestGatewayCommand(t *testing.T) {
	for _, env := range []string{"COMMITFLOW_NATS", "COMMITFLOW_TOKENS", "COMMITFLOW_RATE_LIMIT", "COMMITFLOW_IP_RATE_LIMIT"} {
		t.Setenv(env, "")
	}
	natsURL, js := embeddedBus(t, 2)
	ctx, cancel := context.WithCancel(t.Context())
	out := &logtest.Buffer{}
	done := make(chan error, 1)
	go func() {
		done <- cmdGateway(ctx, []string{"--nats", natsURL, "--http", "127.0.0.1:0", "--log-level", "error",
			"--tokens", "acme-token-0123456789=acme", "--gong-keys", "acme=k1", "--rate-limit", "3/h"}, out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	var base string
	re := regexp.MustCompile(`POST (http://\S+/)v1/events`)
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("gateway stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("gateway did not start")
		}
	}
	do := func(method, path, body string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer acme-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	line := func(id string) string {
		return `{"v":1,"id":"` + id + `","source":"api","type":"opportunity.stage_changed","occurred_at":"2024-06-01T10:00:00Z","opportunity_id":"o1","payload":{"to":"Qualification"}}`
	}
	if code, _, body := do("POST", "v1/events", line("e1")+"\n"+line("e2")); code != http.StatusAccepted || !strings.Contains(body, `"accepted":2`) {
		t.Fatalf("POST /v1/events: %d %s", code, body)
	}
	s, err := js.Stream(t.Context(), bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(t.Context()); err != nil || info.State.Msgs != 2 {
		t.Fatalf("CF_EVENTS: %+v %v, want 2 messages", info, err)
	}
	for _, tt := range []struct {
		path string
		code int
		want string
	}{
		{"healthz", 200, `"ok"`},
		{"readyz", 200, `"ready"`},
		{"metrics", 200, `commitflow_gateway_events_total{door="events",result="accepted"} 2`},
		{"v1/funnel?from=2024-01-01&to=2025-01-01", 404, ""},
		{"", 404, ""},
	} {
		if code, _, body := do("GET", tt.path, ""); code != tt.code || !strings.Contains(body, tt.want) {
			t.Errorf("GET /%s: %d %.200s, want %d with %s", tt.path, code, body, tt.code, tt.want)
		}
	}
	if code, _, body := do("POST", "v1/webhooks/gong?key=k1", `{"callData":{"metaData":{"id":"c1","started":"2024-06-05T14:03:37Z","duration":60},"parties":[]}}`); code != 200 {
		t.Fatalf("Gong webhook: %d %s", code, body)
	}
	do("POST", "v1/events", line("e3"))
	if code, h, body := do("POST", "v1/events", line("e4")); code != http.StatusTooManyRequests || h.Get("Retry-After") != "1200" {
		t.Fatalf("the 4th request of 3/h: %d Retry-After %q %s, want 429 and 1200 s", code, h.Get("Retry-After"), body)
	}
}

// TestGatewayCommandRefuses: the gateway does not start without --nats,
// with nothing to serve, with a bad rate, or before run has declared the
// streams.
func TestGatewayCommandRefuses(t *testing.T) {
	for _, env := range []string{"COMMITFLOW_NATS", "COMMITFLOW_TOKENS", "COMMITFLOW_RATE_LIMIT", "COMMITFLOW_IP_RATE_LIMIT"} {
		t.Setenv(env, "")
	}
	emb := bustest.Server(t) // not Start: the last case needs the streams undeclared
	tok := "acme-token-0123456789=acme"
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"--tokens", tok}, "--nats URL is required"},
		{[]string{"--nats", emb.ClientURL()}, "nothing to serve"},
		{[]string{"--nats", emb.ClientURL(), "--tokens", tok, "--rate-limit", "100"}, `--rate-limit, --rate-burst: "100": want requests per second`},
		{[]string{"--nats", emb.ClientURL(), "--tokens", tok, "--ip-rate-burst", "5"}, "--ip-rate-limit, --ip-rate-burst: a burst of 5 without a rate"},
		{[]string{"--nats", emb.ClientURL(), "--tokens", tok}, "no stream CF_EVENTS at " + emb.ClientURL() + ": start commitflow run"},
	}
	for _, tt := range tests {
		err := cmdGateway(t.Context(), append(tt.args, "--http", "127.0.0.1:0", "--log-level", "error"), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%v: err %v, want %s", tt.args, err, tt.err)
		}
	}
}
