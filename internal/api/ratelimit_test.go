package api

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestParseRateLimit(t *testing.T) {
	tests := []struct {
		rate  string
		burst int
		want  RateLimit
		err   string
	}{
		{"", 0, RateLimit{}, ""},
		{"0", 0, RateLimit{}, ""},
		{"100/s", 0, RateLimit{PerSecond: 100, Burst: 100}, ""},
		{"100/s", 200, RateLimit{PerSecond: 100, Burst: 200}, ""},
		{"600/m", 0, RateLimit{PerSecond: 10, Burst: 600}, ""},
		{"1800/h", 5, RateLimit{PerSecond: 0.5, Burst: 5}, ""},
		{"0.5/s", 0, RateLimit{PerSecond: 0.5, Burst: 1}, ""},
		{" 10 / s ", 0, RateLimit{PerSecond: 10, Burst: 10}, ""},
		{"100", 0, RateLimit{}, `"100": want requests per second`},
		{"100/d", 0, RateLimit{}, `"100/d": want requests per second`},
		{"-1/s", 0, RateLimit{}, `"-1/s": want requests per second`},
		{"0/s", 0, RateLimit{}, `"0/s": want requests per second`},
		{"NaN/s", 0, RateLimit{}, `"NaN/s": want requests per second`},
		{"fast/s", 0, RateLimit{}, `"fast/s": want requests per second`},
		{"", 200, RateLimit{}, "a burst of 200 without a rate"},
		{"100/s", -1, RateLimit{}, "burst -1: want 0"},
	}
	for _, tt := range tests {
		got, err := ParseRateLimit(tt.rate, tt.burst)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q %d: err %v, want %s", tt.rate, tt.burst, err, tt.err)
			}
		case err != nil:
			t.Errorf("%q %d: %v", tt.rate, tt.burst, err)
		case got != tt.want:
			t.Errorf("%q %d: %+v, want %+v", tt.rate, tt.burst, got, tt.want)
		}
	}
}

// TestRateLimiter takes requests of keys at given times from a limiter of
// 2 a second, burst 3: each key has its own bucket; a refused request
// spends nothing and is told how long until it would pass.
func TestRateLimiter(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	type take struct {
		after time.Duration // since start
		key   string
		wait  time.Duration // 0: allowed
	}
	tests := []struct {
		name  string
		takes []take
	}{
		{"burst then refused", []take{
			{0, "a", 0}, {0, "a", 0}, {0, "a", 0},
			{0, "a", 500 * time.Millisecond},
			{0, "a", 500 * time.Millisecond}, // the refused one spent nothing
		}},
		{"keys apart", []take{
			{0, "a", 0}, {0, "a", 0}, {0, "a", 0}, {0, "a", 500 * time.Millisecond},
			{0, "b", 0}, {0, "b", 0}, {0, "b", 0},
		}},
		{"refills at the rate", []take{
			{0, "a", 0}, {0, "a", 0}, {0, "a", 0},
			{250 * time.Millisecond, "a", 250 * time.Millisecond},
			{500 * time.Millisecond, "a", 0},
			{500 * time.Millisecond, "a", 500 * time.Millisecond},
			{10 * time.Second, "a", 0}, {10 * time.Second, "a", 0}, {10 * time.Second, "a", 0}, // full again, not more
			{10 * time.Second, "a", 500 * time.Millisecond},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := start
			l := newRateLimiter(RateLimit{PerSecond: 2, Burst: 3}, func() time.Time { return now })
			for i, tk := range tt.takes {
				now = start.Add(tk.after)
				if got := l.take(tk.key); (got - tk.wait).Abs() > time.Millisecond {
					t.Errorf("take %d (%s at +%v): wait %v, want %v", i, tk.key, tk.after, got, tk.wait)
				}
			}
		})
	}
	if l := newRateLimiter(RateLimit{}, time.Now); l != nil || l.take("a") != 0 {
		t.Error("no rate: want no limiter, every request allowed")
	}
}

// TestRateLimiterSweep: idle keys whose bucket is full again are dropped
// once a minute, and past maxRateKeys a new key waits for the sweep.
func TestRateLimiterSweep(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newRateLimiter(RateLimit{PerSecond: 1.0 / 60, Burst: 1}, func() time.Time { return now })
	l.take("idle")
	now = now.Add(30 * time.Second)
	l.take("busy")
	now = now.Add(30*time.Second + 500*time.Millisecond)
	l.take("busy") // sweeps: idle is full again, busy is half full
	if _, ok := l.keys["idle"]; ok || len(l.keys) != 1 {
		t.Fatalf("after the sweep: keys %v, want busy alone", l.keys)
	}
	for i := len(l.keys); i < maxRateKeys; i++ {
		l.keys[strconv.Itoa(i)] = nil
	}
	if got := l.take("new"); got != rateSweepEvery {
		t.Errorf("a new key past maxRateKeys: wait %v, want %v (until the next sweep)", got, rateSweepEvery)
	}
}

func TestSourceKey(t *testing.T) {
	tests := map[string]string{
		"192.0.2.7:51234":                  "192.0.2.7",
		"[2001:db8:1:2:aaaa::1]:443":       "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:443":       "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:80":            "192.0.2.7",
		"pipe":                             "pipe",
		"[2001:db8:1:3:aaaa::1%eth0]:1234": "2001:db8:1:3:aaaa::1%eth0",
	}
	for in, want := range tests {
		if got := sourceKey(in); got != want {
			t.Errorf("sourceKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestGatewayRateLimits posts over HTTP to a gateway that allows each
// tenant 2 requests and each address 4 (per hour, so that nothing refills
// during the test): past a tenant's 2 its requests are 429 with
// Retry-After, while another tenant's pass; a webhook counts for its
// tenant once verified; past the address's 4, every request is 429 before
// authentication. The refusals are counted by door and limit.
func TestGatewayRateLimits(t *testing.T) {
	b := startBus(t)
	reg := prometheus.NewRegistry()
	gw := GatewayConfig{
		Publisher:  b.pub,
		GongKeys:   map[string]string{"acme": gongKey},
		RateLimits: RateLimits{Tenant: RateLimit{PerSecond: 2.0 / 3600, Burst: 2}, IP: RateLimit{PerSecond: 4.0 / 3600, Burst: 4}},
	}
	srv := httptest.NewServer(New(Config{Tokens: map[string]string{acmeToken: "acme", globexToken: "globex"}, Gateway: gw, Registry: reg}, nil, nil, nil))
	t.Cleanup(srv.Close)
	gong := readFixture(t, "gong_webhook.json")

	tests := []struct {
		name, path, body string
		header           http.Header
		status           int
		retryAfter       string // of a 429: a request's time at the limit's rate
	}{
		{"acme 1", "/v1/events", ev("r1", "", "o1"), bearer(acmeToken), http.StatusAccepted, ""},
		{"acme's Gong webhook: acme 2", "/v1/webhooks/gong?key=" + gongKey, gong, http.Header{}, http.StatusOK, ""},
		{"acme 3", "/v1/events", ev("r2", "", "o1"), bearer(acmeToken), http.StatusTooManyRequests, "1800"},
		{"acme's Gong webhook 3", "/v1/webhooks/gong?key=" + gongKey, gong, http.Header{}, http.StatusTooManyRequests, "1800"},
		// The address has made 4 requests: from now on it is refused first.
		{"globex 1 from the same address", "/v1/events", ev("r3", "", "o1"), bearer(globexToken), http.StatusTooManyRequests, "900"},
		{"unauthenticated", "/v1/events", ev("r4", "", "o1"), http.Header{}, http.StatusTooManyRequests, "900"},
	}
	for _, tt := range tests {
		var raw map[string]any
		code, h := post(t, srv, tt.path, tt.body, tt.header, &raw)
		if code != tt.status {
			t.Fatalf("%s: %d %v, want %d", tt.name, code, raw, tt.status)
		}
		if code == http.StatusTooManyRequests {
			if ra := h.Get("Retry-After"); ra != tt.retryAfter {
				t.Errorf("%s: Retry-After %q, want %s", tt.name, ra, tt.retryAfter)
			}
			if msg, _ := raw["error"].(string); !strings.Contains(msg, "rate limit") {
				t.Errorf("%s: error %q", tt.name, msg)
			}
		}
	}
	if n := b.msgs(t); n != 2 {
		t.Errorf("CF_EVENTS holds %d messages, want 2 (the requests allowed)", n)
	}
	m := gatewayLimited(t, reg)
	want := map[string]float64{"events/tenant": 1, "gong/tenant": 1, "events/ip": 2}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("commitflow_gateway_rate_limited_total %s = %v, want %v (all: %v)", k, m[k], v, m)
		}
	}
}

// gatewayLimited returns commitflow_gateway_rate_limited_total by
// "door/by".
func gatewayLimited(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "commitflow_gateway_rate_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var door, by string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "door":
					door = lp.GetValue()
				case "by":
					by = lp.GetValue()
				}
			}
			out[door+"/"+by] = m.GetCounter().GetValue()
		}
	}
	return out
}
