package pipeline

import (
	"testing"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/store"
)

func TestOnlyFresh(t *testing.T) {
	fresh := []derive.Copy{{Seq: 7}, {Seq: 9}, {Seq: 0}}
	tests := []struct {
		name   string
		stored []store.StoredCopy
		fresh  []derive.Copy
		want   bool
	}{
		{"nothing stored", nil, fresh, true},
		{"nothing stored, nothing fresh (sweep)", nil, nil, true},
		{"the fresh copies", []store.StoredCopy{{Seq: 9}, {Seq: 7}}, fresh, true},
		{"a fresh copy stored twice (redelivered to ingest)", []store.StoredCopy{{Seq: 7}, {Seq: 7}, {Seq: 9}}, fresh, true},
		{"one fresh copy not stored yet", []store.StoredCopy{{Seq: 7}}, fresh, true},
		{"an earlier event", []store.StoredCopy{{Seq: 3}, {Seq: 7}, {Seq: 9}}, fresh, false},
		{"an earlier copy of a fresh event", []store.StoredCopy{{Seq: 6}}, fresh, false},
		{"a copy without a sequence is not a fresh one", []store.StoredCopy{{Seq: 0}}, fresh, false},
		{"stored history, nothing fresh (sweep)", []store.StoredCopy{{Seq: 5}}, nil, false},
	}
	for _, tt := range tests {
		if got := onlyFresh(tt.stored, tt.fresh); got != tt.want {
			t.Errorf("%s: onlyFresh(%v) = %v, want %v", tt.name, tt.stored, got, tt.want)
		}
	}
}
