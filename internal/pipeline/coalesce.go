package pipeline

import (
	"context"
	"sync"
)

// coalescer joins the inserts of concurrent callers: rows written while an
// insert runs wait and go into the next insert together, so that the
// partitions of a Deriver writing at once make one ClickHouse part, not one
// each. On ClickHouse 18.16 a part costs a file per column and a later
// merge whatever its size: at a 100k-row import, 112 inserts of ~320 states
// took ClickHouse longer than the states' rows themselves.
//
// An insert that fails is tried again for each caller's rows alone, so that
// one caller's bad rows (or a batch too large) fail that caller only.
type coalescer[T any] struct {
	insert func(ctx context.Context, rows []T) error

	mu      sync.Mutex
	running bool         // a flush goroutine is running
	queue   []pending[T] // the writes waiting for the next insert
}

// pending is one caller's write.
type pending[T any] struct {
	rows []T
	done chan error
}

// write inserts rows, together with those of the callers writing at the
// same time, and returns once they are inserted or ctx ends. Rows a
// caller stopped waiting for may still be inserted.
func (c *coalescer[T]) write(ctx context.Context, rows []T) error {
	if len(rows) == 0 {
		return nil
	}
	done := make(chan error, 1)
	c.mu.Lock()
	c.queue = append(c.queue, pending[T]{rows, done})
	if !c.running {
		c.running = true
		// The insert is no single caller's: it carries the first caller's
		// values but not its cancellation.
		go c.flush(context.WithoutCancel(ctx))
	}
	c.mu.Unlock()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush inserts what is queued, once per round, until a round finds the
// queue empty.
func (c *coalescer[T]) flush(ctx context.Context) {
	for {
		c.mu.Lock()
		q := c.queue
		c.queue = nil
		if len(q) == 0 {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		if len(q) == 1 {
			q[0].done <- c.insert(ctx, q[0].rows)
			continue
		}
		n := 0
		for _, p := range q {
			n += len(p.rows)
		}
		rows := make([]T, 0, n)
		for _, p := range q {
			rows = append(rows, p.rows...)
		}
		if err := c.insert(ctx, rows); err == nil {
			for _, p := range q {
				p.done <- nil
			}
			continue
		}
		for _, p := range q {
			p.done <- c.insert(ctx, p.rows)
		}
	}
}
