package jsonpart

import (
	"fmt"
	"slices"
	"testing"
)

// TestReadArray: the elements of an array, each with the line it starts
// on and its bytes.
func TestReadArray(t *testing.T) {
	tests := []struct {
		name, body string
		want       []Part
	}{
		{"empty", `[]`, nil},
		{"one line", `[{"a":1}, 2]`, []Part{{1, []byte(`{"a":1}`)}, {1, []byte(`2`)}}},
		{"lines", "[\n  {\"a\":\n1},\n\n  \"x\"\n]", []Part{{2, []byte("{\"a\":\n1}")}, {5, []byte(`"x"`)}}},
		{"duplicate names", `[{"a":1,"a":2}]`, []Part{{1, []byte(`{"a":1,"a":2}`)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewDecoder([]byte(tt.body)).ReadArray()
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got, tt.want, func(a, b Part) bool { return a.Line == b.Line && string(a.Data) == string(b.Data) }) {
				t.Errorf("got %s, want %s", show(got), show(tt.want))
			}
		})
	}
	if _, err := NewDecoder([]byte(`[1, }`)).ReadArray(); err == nil {
		t.Error("a broken array: no error")
	}
}

// TestRewind: a rewound decoder reads the body from its start again.
func TestRewind(t *testing.T) {
	d := NewDecoder([]byte("{\"a\": 1}\n{\"b\": 2}"))
	for range 2 {
		p, err := d.ReadPart()
		if err != nil || p.Line != 1 || string(p.Data) != `{"a": 1}` {
			t.Fatalf("got %d %q %v, want line 1 {\"a\": 1}", p.Line, p.Data, err)
		}
		d.Rewind()
	}
}

// TestLine: an offset's line, offsets out of the body on its first or
// last line.
func TestLine(t *testing.T) {
	d := NewDecoder([]byte("a\nb\nc"))
	for off, want := range map[int64]int{-3: 1, 0: 1, 1: 1, 2: 2, 4: 3, 99: 3} {
		if got := d.Line(off); got != want {
			t.Errorf("Line(%d) = %d, want %d", off, got, want)
		}
	}
}

func show(ps []Part) string {
	s := ""
	for _, p := range ps {
		s += fmt.Sprintf("%d:%q ", p.Line, p.Data)
	}
	return s
}
