package pipeline

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// recorder is a coalescer's insert: it records each insert's rows, fails
// those holding a negative row, and holds the first insert until release
// is closed.
type recorder struct {
	mu      sync.Mutex
	calls   [][]int
	release chan struct{}
	first   sync.Once
}

func (r *recorder) insert(ctx context.Context, rows []int) error {
	r.first.Do(func() { <-r.release })
	r.mu.Lock()
	r.calls = append(r.calls, slices.Clone(rows))
	r.mu.Unlock()
	for _, v := range rows {
		if v < 0 {
			return errors.New("bad row")
		}
	}
	return nil
}

// queued waits until c holds n writes waiting for an insert.
func queued(t *testing.T, c *coalescer[int], n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := len(c.queue)
		c.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCoalescer checks that writes arriving while an insert runs go into
// the next insert together, that a failed joint insert is tried again
// per caller so that only the caller with a bad row fails, and that a
// caller whose context ends stops waiting without stopping the others.
func TestCoalescer(t *testing.T) {
	for _, tc := range []struct {
		name    string
		writes  [][]int // written while the first insert ({0}) is held
		cancel  int     // index of a write whose context is cancelled while queued; -1 none
		wantErr []bool
		calls   [][]int // the inserts after the first, in order
	}{
		{"joined", [][]int{{1, 2}, {3}, {4, 5, 6}}, -1, []bool{false, false, false},
			[][]int{{1, 2, 3, 4, 5, 6}}},
		{"one alone", [][]int{{1}}, -1, []bool{false}, [][]int{{1}}},
		{"bad row fails its caller only", [][]int{{1}, {-2, 3}, {4}}, -1, []bool{false, true, false},
			[][]int{{1, -2, 3, 4}, {1}, {-2, 3}, {4}}},
		{"cancelled caller", [][]int{{1}, {2}}, 0, []bool{true, false}, [][]int{{1, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{release: make(chan struct{})}
			c := &coalescer[int]{insert: r.insert}
			first := make(chan error, 1)
			go func() { first <- c.write(context.Background(), []int{0}) }()
			queued(t, c, 0) // the first write is taken by the insert
			for {
				c.mu.Lock()
				running := c.running && len(c.queue) == 0
				c.mu.Unlock()
				if running {
					break
				}
				time.Sleep(time.Millisecond)
			}
			errs := make([]chan error, len(tc.writes))
			cancels := make([]context.CancelFunc, len(tc.writes))
			for i, rows := range tc.writes {
				ctx, cancel := context.WithCancel(context.Background())
				cancels[i] = cancel
				errs[i] = make(chan error, 1)
				go func() { errs[i] <- c.write(ctx, rows) }()
				queued(t, c, i+1)
			}
			if tc.cancel >= 0 {
				cancels[tc.cancel]()
				if err := <-errs[tc.cancel]; !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled write: %v, want context.Canceled", err)
				}
			}
			close(r.release)
			if err := <-first; err != nil {
				t.Fatalf("first write: %v", err)
			}
			for i := range tc.writes {
				if i == tc.cancel {
					continue
				}
				if err := <-errs[i]; (err != nil) != tc.wantErr[i] {
					t.Errorf("write %d %v: error %v, want one: %v", i, tc.writes[i], err, tc.wantErr[i])
				}
			}
			// Every insert returns before its callers hear of it, so the
			// calls are all recorded by now.
			r.mu.Lock()
			calls := r.calls
			r.mu.Unlock()
			if len(calls) == 0 || !slices.Equal(calls[0], []int{0}) {
				t.Fatalf("first insert %v, want [0]", calls)
			}
			if !slices.EqualFunc(calls[1:], tc.calls, slices.Equal) {
				t.Errorf("inserts after the first %v, want %v", calls[1:], tc.calls)
			}
			for _, cancel := range cancels {
				cancel()
			}
			// The coalescer goes on: a later write is inserted alone.
			if err := c.write(context.Background(), []int{7}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
