package pipeline

import (
	"testing"

	"github.com/commitflow/commitflow/internal/derive"
)

func TestOnlyFresh(t *testing.T) {
	fresh := []derive.Copy{{Seq: 7}, {Seq: 9}, {Seq: 0}}
	tests := []struct {
		name  string
		seqs  []uint64
		fresh []derive.Copy
		want  bool
	}{
		{"nothing stored", nil, fresh, true},
		{"nothing stored, nothing fresh (sweep)", nil, nil, true},
		{"the fresh copies", []uint64{9, 7}, fresh, true},
		{"a fresh copy stored twice (redelivered to ingest)", []uint64{7, 7, 9}, fresh, true},
		{"one fresh copy not stored yet", []uint64{7}, fresh, true},
		{"an earlier event", []uint64{3, 7, 9}, fresh, false},
		{"an earlier copy of a fresh event", []uint64{6}, fresh, false},
		{"a copy without a sequence is not a fresh one", []uint64{0}, fresh, false},
		{"stored history, nothing fresh (sweep)", []uint64{5}, nil, false},
	}
	for _, tt := range tests {
		if got := onlyFresh(tt.seqs, tt.fresh); got != tt.want {
			t.Errorf("%s: onlyFresh(%v) = %v, want %v", tt.name, tt.seqs, got, tt.want)
		}
	}
}
