package timetest

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	start := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	c := NewClock(start)
	c.Add(90 * time.Second)
	if got, want := c.Now(), start.Add(90*time.Second); !got.Equal(want) {
		t.Errorf("Now after Add = %v, want %v", got, want)
	}
}

func TestWaitFor(t *testing.T) {
	var n atomic.Int32
	go func() {
		time.Sleep(20 * time.Millisecond)
		n.Store(1)
	}()
	WaitFor(t, "the goroutine's store", func() bool { return n.Load() == 1 })
}
