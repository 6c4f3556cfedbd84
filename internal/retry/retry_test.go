package retry

import (
	"context"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	ms := time.Millisecond
	for _, c := range []struct {
		name string
		p    Policy
		want []time.Duration // Delay(1), Delay(2), ...
	}{
		{"zero value", Policy{}, []time.Duration{0, 0, 0}},
		{"doubling to max", Policy{Initial: 250 * ms, Max: 5 * time.Second},
			[]time.Duration{250 * ms, 500 * ms, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}},
		{"multiplier", Policy{Initial: 10 * ms, Max: time.Second, Multiplier: 3}, []time.Duration{10 * ms, 30 * ms, 90 * ms, 270 * ms, 810 * ms, time.Second}},
		{"constant", Policy{Initial: time.Second, Max: time.Second}, []time.Duration{time.Second, time.Second, time.Second}},
		{"no max", Policy{Initial: ms}, []time.Duration{ms, 2 * ms, 4 * ms, 8 * ms}},
	} {
		for i, want := range c.want {
			if got := c.p.Delay(i + 1); got != want {
				t.Errorf("%s: Delay(%d) = %v, want %v", c.name, i+1, got, want)
			}
		}
	}
	// Far past any sane retry the wait stays at Max, or at the largest
	// duration without one: no overflow.
	if got := (Policy{Initial: time.Second, Max: time.Minute}).Delay(5000); got != time.Minute {
		t.Errorf("Delay(5000) = %v, want the max", got)
	}
	if got := (Policy{Initial: time.Second}).Delay(5000); got <= 0 {
		t.Errorf("Delay(5000) without max = %v, want positive", got)
	}
}

func TestJitter(t *testing.T) {
	for _, c := range []struct {
		jitter float64
		lo, hi time.Duration
		varies bool
	}{
		{0, 100, 100, false},
		{0.5, 50, 100, true},
		{1, 0, 100, true},
		{7, 0, 100, true}, // clamped to 1
	} {
		p := Policy{Initial: 100, Max: 100, Jitter: c.jitter}
		seen := map[time.Duration]bool{}
		for range 1000 {
			d := p.Delay(3)
			if d < c.lo || d > c.hi {
				t.Fatalf("jitter %g: wait %v outside [%v, %v]", c.jitter, d, c.lo, c.hi)
			}
			seen[d] = true
		}
		if c.varies != (len(seen) > 1) {
			t.Errorf("jitter %g: %d distinct waits", c.jitter, len(seen))
		}
	}
}

func TestRetrierBounds(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		name string
		p    Policy
		// steps are how long passes before each call of Next; want its
		// wait, or -1 for "give up".
		steps, want []time.Duration
	}{
		{"unbounded", Policy{Initial: s, Max: 4 * s}, []time.Duration{0, 0, 0, 0, 0}, []time.Duration{s, 2 * s, 4 * s, 4 * s, 4 * s}},
		{"retries", Policy{Initial: s, Max: 4 * s, Retries: 3}, []time.Duration{0, 0, 0, 0}, []time.Duration{s, 2 * s, 4 * s, -1}},
		{"for: last wait clipped", Policy{Initial: s, Max: 4 * s, For: 5 * s}, []time.Duration{0, s, 2 * s, 2 * s}, []time.Duration{s, 2 * s, 2 * s, -1}},
		{"for: clipped to what is left", Policy{Initial: 2 * s, Max: 4 * s, For: 5 * s}, []time.Duration{0, 3 * s}, []time.Duration{2 * s, 2 * s}},
		{"for: at the end", Policy{Initial: s, For: 5 * s}, []time.Duration{5 * s}, []time.Duration{-1}},
		{"both, retries first", Policy{Initial: s, For: time.Hour, Retries: 1}, []time.Duration{0, 0}, []time.Duration{s, -1}},
	} {
		now := time.Unix(1000, 0)
		r := &Retrier{p: c.p, start: now, now: func() time.Time { return now }}
		for i, step := range c.steps {
			now = now.Add(step)
			d, ok := r.Next()
			if !ok {
				d = -1
			}
			if d != c.want[i] {
				t.Errorf("%s: Next %d = %v, want %v", c.name, i+1, d, c.want[i])
			}
		}
	}
}

func TestRetrierReset(t *testing.T) {
	now := time.Unix(1000, 0)
	r := &Retrier{p: Policy{Initial: time.Second, Max: 8 * time.Second, Retries: 2, For: 10 * time.Second}, start: now, now: func() time.Time { return now }}
	r.Next()
	r.Next()
	if _, ok := r.Next(); ok || r.Retries() != 2 {
		t.Fatalf("after 2 retries: ok %v, retries %d", ok, r.Retries())
	}
	now = now.Add(20 * time.Second)
	r.Reset()
	if d, ok := r.Next(); !ok || d != time.Second {
		t.Errorf("after Reset: Next = %v, %v; want 1s, true", d, ok)
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Errorf("Sleep on a cancelled context: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Error("Sleep on a cancelled context waited")
	}
}

func TestStart(t *testing.T) {
	r := Policy{Initial: time.Millisecond, For: time.Hour}.Start()
	if d, ok := r.Next(); !ok || d != time.Millisecond {
		t.Errorf("Next = %v, %v", d, ok)
	}
}
