package api

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// RateLimit is a request rate with its burst: PerSecond requests a second
// on average, up to Burst at once. A PerSecond of 0 means no limit.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

// RateLimits are the request rate limits of the gateway's doors (POST
// /v1/events and the webhooks), each kept per key in a token bucket.
type RateLimits struct {
	// Tenant limits each tenant's requests, counted once the request has
	// proved its tenant (bearer token, webhook signature, basic
	// authentication or key), so that nobody else can spend a tenant's
	// allowance.
	Tenant RateLimit
	// IP limits each source address's requests (an IPv6 address by its
	// /64), counted before anything else is read, failed authentications
	// included. Behind a proxy every request has the proxy's address.
	IP RateLimit
}

// ParseRateLimit parses --rate-limit and --rate-burst: a rate "N/s", "N/m"
// or "N/h" (N a positive number; "" or "0" for no limit) and a burst, 0
// meaning N rounded up (a second's, a minute's or an hour's worth at
// once).
func ParseRateLimit(s string, burst int) (RateLimit, error) {
	s = strings.TrimSpace(s)
	switch {
	case burst < 0:
		return RateLimit{}, fmt.Errorf("burst %d: want 0 (the rate's N) or more", burst)
	case s == "" || s == "0":
		if burst > 0 {
			return RateLimit{}, fmt.Errorf("a burst of %d without a rate: give the rate too, e.g. 100/s", burst)
		}
		return RateLimit{}, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	per := map[string]float64{"s": 1, "m": 60, "h": 3600}[strings.TrimSpace(unit)]
	if !ok || err != nil || per == 0 || !(n > 0) || math.IsInf(n, 0) {
		return RateLimit{}, fmt.Errorf("%q: want requests per second, minute or hour, e.g. 100/s, 600/m or 1000/h", s)
	}
	if burst == 0 {
		burst = int(min(math.Ceil(n), math.MaxInt32))
	}
	return RateLimit{PerSecond: n / per, Burst: burst}, nil
}

// String is the rate as requests per second and its burst.
func (r RateLimit) String() string {
	if r.PerSecond <= 0 {
		return "none"
	}
	return fmt.Sprintf("%g/s burst %d", r.PerSecond, r.Burst)
}

// maxRateKeys bounds the keys a rate limiter holds between two sweeps:
// past it, a request of a new key is refused until the sweep drops the
// keys idle long enough to have their whole burst again.
const maxRateKeys = 100_000

// rateSweepEvery is how often a rate limiter drops its idle keys.
const rateSweepEvery = time.Minute

// rateLimiter keeps a token bucket per key. It is safe for concurrent use.
type rateLimiter struct {
	limit rate.Limit
	burst int
	now   func() time.Time

	mu    sync.Mutex
	keys  map[string]*rate.Limiter
	swept time.Time
}

// newRateLimiter returns the limiter of rl, nil (no limit) when it has no
// rate. now is its clock.
func newRateLimiter(rl RateLimit, now func() time.Time) *rateLimiter {
	if rl.PerSecond <= 0 {
		return nil
	}
	return &rateLimiter{limit: rate.Limit(rl.PerSecond), burst: max(rl.Burst, 1), now: now, keys: map[string]*rate.Limiter{}, swept: now()}
}

// take spends one request of key's allowance and returns 0, or, when it
// has none left, spends nothing and returns how long until it has.
func (l *rateLimiter) take(key string) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.swept) >= rateSweepEvery {
		l.sweep(now)
	}
	lim := l.keys[key]
	if lim == nil {
		if len(l.keys) >= maxRateKeys {
			return rateSweepEvery - now.Sub(l.swept)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.keys[key] = lim
	}
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d
	}
	return 0
}

// sweep drops the keys whose bucket is full again: a new one would be
// the same.
func (l *rateLimiter) sweep(now time.Time) {
	l.swept = now
	for k, lim := range l.keys {
		if lim.TokensAt(now) >= float64(l.burst) {
			delete(l.keys, k)
		}
	}
}

// rateLimits are the limiters of the gateway and the counter of the
// requests they refuse.
type rateLimits struct {
	tenant, ip *rateLimiter
	limited    *prometheus.CounterVec
}

// newRateLimits builds the limiters of rl, registering their counter on
// reg.
func newRateLimits(rl RateLimits, reg prometheus.Registerer, logger *slog.Logger) *rateLimits {
	return &rateLimits{
		tenant: newRateLimiter(rl.Tenant, time.Now),
		ip:     newRateLimiter(rl.IP, time.Now),
		limited: register(reg, logger, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "commitflow_gateway_rate_limited_total",
			Help: "Requests to POST /v1/events and the webhooks answered 429 by door (events, hubspot, pipedrive, salesforce, gong) and by the limit they were over (tenant, ip).",
		}, []string{"door", "by"})),
	}
}

// limitTenant spends a request of tenant's allowance, or returns the 429
// to answer.
func (g *gateway) limitTenant(door, tenant string) error {
	d := g.limits.tenant.take(tenant)
	if d == 0 {
		return nil
	}
	g.limits.limited.WithLabelValues(door, "tenant").Inc()
	return rateLimited(d, "this tenant's")
}

// limitIP serves h to the requests within their source address's
// allowance, and answers 429 to the others.
func (g *gateway) limitIP(door string, h http.Handler) http.Handler {
	if g.limits.ip == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := g.limits.ip.take(sourceKey(r.RemoteAddr)); d > 0 {
			g.limits.limited.WithLabelValues(door, "ip").Inc()
			g.fail(w, r, rateLimited(d, "this address's"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// rateLimited is the 429 of a request over whose limit, to retry after d.
func rateLimited(d time.Duration, whose string) *gatewayError {
	return &gatewayError{status: http.StatusTooManyRequests, retryAfter: d,
		msg: "over " + whose + " request rate limit: retry after the Retry-After seconds (events are de-duplicated by id)"}
}

// retryAfterSeconds is d as a Retry-After value: whole seconds, rounded
// up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// sourceKey is the rate-limit key of a request's remote address: the IP,
// an IPv6 address cut to its /64 (what one host is usually given).
func sourceKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return host
	}
	if ip.To4() == nil {
		return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return ip.String()
}
