package store

import (
	"cmp"
	"context"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestLatestCopyWins: of two copies of one key, every reader returns the one
// with the highest stream sequence, as FINAL does, whichever was inserted
// first, and also when the copies' occurred_at fall in different months
// (different partitions of the table, never merged together).
func TestLatestCopyWins(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	withPayload := func(e RawEvent, p string) RawEvent {
		e.Payload = []byte(p)
		return e
	}
	for _, tc := range []struct {
		name          string
		first, second RawEvent
	}{
		{"later copy inserted last",
			withPayload(ev("t", "o1", "e1", 5, at), `{"amount":1000}`), withPayload(ev("t", "o1", "e1", 9, at), `{"amount":999999}`)},
		{"later copy inserted first",
			withPayload(ev("t", "o1", "e1", 9, at), `{"amount":999999}`), withPayload(ev("t", "o1", "e1", 5, at), `{"amount":1000}`)},
		{"occurred_at moved a month",
			withPayload(ev("t", "o1", "e1", 5, at), `{"amount":1000}`), withPayload(ev("t", "o1", "e1", 9, at.AddDate(0, 1, 0)), `{"amount":999999}`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openMigrated(t)
			other := ev("t", "o1", "e2", 7, at)
			if err := s.InsertEvents(ctx, []RawEvent{tc.first, other}); err != nil {
				t.Fatal(err)
			}
			// The second copy in its own part, and one message inserted twice.
			if err := s.InsertEvents(ctx, []RawEvent{tc.second, other}); err != nil {
				t.Fatal(err)
			}
			win, lose := tc.first, tc.second
			if lose.StreamSeq > win.StreamSeq {
				win, lose = lose, win
			}
			want := []RawEvent{win, other}

			got, err := s.LoadEvents(ctx, "t", []string{"o1"})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LoadEvents =\n%+v\nwant\n%+v", got, want)
			}
			latest, superseded, err := s.LoadEventCopies(ctx, "t", []string{"o1"})
			if err != nil {
				t.Fatal(err)
			}
			// The copies share a partition unless occurred_at moved:
			// merged, the superseded one is gone.
			if !reflect.DeepEqual(latest, want) || len(superseded) > 1 || (len(superseded) == 1 && !reflect.DeepEqual(superseded[0], lose)) {
				t.Errorf("LoadEventCopies =\n%+v\n%+v\nwant\n%+v\n[%+v] or none", latest, superseded, want, lose)
			}
			var scanned []RawEvent
			err = s.ScanEvents(ctx, "t", func(_ string, evs []RawEvent) error {
				scanned = append(scanned, evs...)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(scanned, want) {
				t.Errorf("ScanEvents =\n%+v\nwant\n%+v", scanned, want)
			}
			if n, err := s.CountEvents(ctx, "t"); err != nil || n != 2 {
				t.Errorf("CountEvents = %d, %v; want 2", n, err)
			}
		})
	}
}

// TestSupersededCopiesUntilMerged: before a merge, LoadEventCopies returns
// the superseded copy; one message inserted twice is no superseded copy.
func TestSupersededCopiesUntilMerged(t *testing.T) {
	ctx := context.Background()
	s := openMigrated(t)
	at := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
	if err := s.Conn().Exec(ctx, "SYSTEM STOP MERGES events"); err != nil {
		t.Fatal(err)
	}
	old, fixed := ev("t", "o1", "e1", 5, at), ev("t", "o1", "e1", 9, at)
	old.Payload, fixed.Payload = []byte(`{"amount":1000}`), []byte(`{"amount":999999}`)
	for _, batch := range [][]RawEvent{{old}, {fixed}, {fixed}} {
		if err := s.InsertEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	latest, superseded, err := s.LoadEventCopies(ctx, "t", []string{"o1"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(latest, []RawEvent{fixed}) || !reflect.DeepEqual(superseded, []RawEvent{old}) {
		t.Fatalf("LoadEventCopies = %+v, %+v; want [%+v], [%+v]", latest, superseded, fixed, old)
	}
	var final []string
	rows, err := s.Conn().Query(ctx, "SELECT payload FROM events FINAL WHERE tenant = 't'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		final = append(final, p)
	}
	if !reflect.DeepEqual(final, []string{`{"amount":999999}`}) {
		t.Fatalf("events FINAL holds %q, want the copy with the highest stream sequence", final)
	}

	// StoredCopies: every stored copy's sequence and month, the
	// twice-inserted one twice; nothing for an opportunity without events
	// or of another tenant.
	other := ev("u", "o2", "e1", 11, at)
	moved := ev("t", "o1", "e2", 12, at.AddDate(0, 2, 0))
	if err := s.InsertEvents(ctx, []RawEvent{other, moved}); err != nil {
		t.Fatal(err)
	}
	copies, err := s.StoredCopies(ctx, "t", []string{"o1", "o2", "o1"})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(copies["o1"], func(a, b StoredCopy) int { return cmp.Compare(a.Seq, b.Seq) })
	// The months as the server's time zone has them, as it partitions.
	var mar, may uint32
	if err := s.Conn().QueryRow(ctx, "SELECT toYYYYMM(toDateTime(?)), toYYYYMM(toDateTime(?))", at.Unix(), moved.OccurredAt.Unix()).Scan(&mar, &may); err != nil {
		t.Fatal(err)
	}
	if want := map[string][]StoredCopy{"o1": {{5, mar}, {9, mar}, {9, mar}, {12, may}}}; !reflect.DeepEqual(copies, want) {
		t.Fatalf("StoredCopies = %v, want %v", copies, want)
	}

	// LoadEventCopiesIn reads the months asked for alone.
	for _, tc := range []struct {
		months             []uint32
		latest, superseded []RawEvent
	}{
		{[]uint32{mar, may}, []RawEvent{fixed, moved}, []RawEvent{old}},
		{[]uint32{may}, []RawEvent{moved}, nil},
		{[]uint32{may - 1}, nil, nil},
		{nil, nil, nil},
	} {
		latest, superseded, err := s.LoadEventCopiesIn(ctx, "t", []string{"o1"}, tc.months)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(latest, tc.latest) || !reflect.DeepEqual(superseded, tc.superseded) {
			t.Errorf("LoadEventCopiesIn(%v) = %+v, %+v; want %+v, %+v", tc.months, latest, superseded, tc.latest, tc.superseded)
		}
	}
}
