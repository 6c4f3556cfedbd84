package forecast

import "testing"

func TestChunksRows(t *testing.T) {
	for _, n := range []int{0, 1, 4095, 4096, 4097, 10000} {
		c := &chunks[int]{}
		for i := range n {
			c.add(i)
		}
		if c.len() != n {
			t.Fatalf("n=%d: len %d", n, c.len())
		}
		seen := 0
		for i, r := range c.rows() {
			if i != seen || *r != i {
				t.Fatalf("n=%d: row %d at index %d holds %d", n, seen, i, *r)
			}
			seen++
		}
		if seen != n || len(c.all()) != n {
			t.Fatalf("n=%d: rows yielded %d, all %d", n, seen, len(c.all()))
		}
		for i := range c.rows() {
			if i == 2 {
				break // an early stop must not panic
			}
		}
	}
}

func TestChunksSortFunc(t *testing.T) {
	for _, n := range []int{0, 1, 4096, 10000} {
		c := &chunks[int]{}
		for i := range n {
			c.add((i * 7919) % n) // a permutation of 0..n-1
		}
		c.sortFunc(func(a, b *int) int { return *a - *b })
		for i, r := range c.rows() {
			if *r != i {
				t.Fatalf("n=%d: row %d holds %d after sorting", n, i, *r)
			}
		}
		for i, r := range c.all() {
			if r != i {
				t.Fatalf("n=%d: all()[%d] = %d after sorting", n, i, r)
			}
		}
	}
}
