// Package retry is the back-off policy of every retry loop: waits growing
// from Initial by Multiplier up to Max, with optional jitter, and an
// optional bound on the retries and on the time they may take.
package retry

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Policy is a back-off policy. The zero value retries at once, forever.
type Policy struct {
	// Initial is the wait before the first retry; each later one is
	// Multiplier times the one before (0 means 2), at most Max (0 means
	// no maximum).
	Initial, Max time.Duration
	Multiplier   float64
	// Jitter is the fraction, in [0, 1], of each wait that is drawn at
	// random: a wait d becomes one in [d - Jitter*d, d].
	Jitter float64
	// Retries bounds the retries of one Retrier (0: no bound), and For the
	// time from its start (or last Reset) to the end of its last wait (0:
	// no bound).
	Retries int
	For     time.Duration
}

// Delay is the wait before retry n (1-based), jitter included.
func (p Policy) Delay(n int) time.Duration {
	m := p.Multiplier
	if m == 0 {
		m = 2
	}
	f := float64(p.Initial) * math.Pow(m, float64(max(n-1, 0)))
	d := p.Max
	switch {
	case p.Max > 0 && f >= float64(p.Max):
	case f >= math.MaxInt64:
		d = math.MaxInt64
	default:
		d = time.Duration(f)
	}
	if j := time.Duration(float64(d) * min(max(p.Jitter, 0), 1)); j > 0 {
		d = d - j + rand.N(j+1)
	}
	return d
}

// Retrier follows one run of retries under a Policy. It is not safe for
// concurrent use.
type Retrier struct {
	p     Policy
	n     int       // retries since start
	start time.Time // when the run (or the last Reset) began
	now   func() time.Time
}

// Start begins a run of retries now.
func (p Policy) Start() *Retrier {
	return &Retrier{p: p, start: time.Now(), now: time.Now}
}

// Reset begins the run again now: after progress, the waits start from
// Initial and the bounds count from here.
func (r *Retrier) Reset() {
	r.n, r.start = 0, r.now()
}

// Retries is how many retries Next has allowed since the start or the
// last Reset.
func (r *Retrier) Retries() int { return r.n }

// Next returns the wait before the next retry and true, or false when
// the Policy's bound is reached: Retries retries allowed already, or For
// passed since the start. A wait never runs past the end of For.
func (r *Retrier) Next() (time.Duration, bool) {
	if r.p.Retries > 0 && r.n >= r.p.Retries {
		return 0, false
	}
	var left time.Duration
	if r.p.For > 0 {
		if left = r.start.Add(r.p.For).Sub(r.now()); left <= 0 {
			return 0, false
		}
	}
	r.n++
	d := r.p.Delay(r.n)
	if r.p.For > 0 {
		d = min(d, left)
	}
	return d, true
}

// Sleep waits d, or until ctx ends: it returns ctx.Err() then, else nil.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
