package event_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/event"
)

// sameAsFull checks that the fast decoder's event, when it takes data, is
// the one the full decoder gives.
func sameAsFull(t *testing.T, data []byte) (took bool) {
	t.Helper()
	fast, ok := event.DecodeFast(data)
	if !ok {
		return false
	}
	full, err := event.DecodeFull(data)
	if err != nil {
		t.Fatalf("the fast decoder took what the full one refuses (%v): %s", err, data)
	}
	if !reflect.DeepEqual(fast, full) {
		t.Fatalf("the decoders differ on %s:\nfast %#v\nfull %#v", data, fast, full)
	}
	return true
}

// TestDecodeFastTakesWhatSendersWrite: every event Marshal writes, of every
// type and of a generated history, takes the fast path and decodes to what
// the full decoder gives; so do the shapes senders write by hand (white
// space, escapes, other key orders).
func TestDecodeFastTakesWhatSendersWrite(t *testing.T) {
	var bodies [][]byte
	for _, typ := range event.Types {
		b, err := event.Marshal(sample(typ))
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, b)
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, b, "", "\t"); err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, pretty.Bytes())
	}
	generated, _ := messages(t, 7)
	bodies = append(bodies, generated...)
	const env = `"id":"e","tenant":"t","source":"s","occurred_at":"2026-01-01T00:00:00Z"`
	for _, s := range []string{
		`{` + env + `,"type":"opportunity.closed_lost","opportunity_id":"o","payload":{"reason":"\u003c\u0026\u003e \"quoted\" \\ \/ \b\f\n\r\t \u00e9 \u2028 \u0000"}}`,
		`{` + env + `,"type":"opportunity.closed_lost","opportunity_id":"o","payload":{"reason":"Café – naïve 日本"}}`,
		` {"type":"activity.logged",` + env + `,"payload":{"kind":"note","participants":[]}} ` + "\n",
		`{` + env + `,"type":"opportunity.created","opportunity_id":"o","payload":{"attributes":{},"amount":-0,"probability":1E-1}}`,
		`{` + env + `,"type":"opportunity.updated","opportunity_id":"o","payload":{"attributes":{"region":"","x":"y"},"created_at":"2026-01-01T00:00:00.5Z"}}`,
		`{` + env + `,"type":"call.completed","received_at":"2026-01-01T00:00:00.123456789Z","payload":{"call_id":"c","started_at":"2026-01-01T00:00:00Z","duration_seconds":-0,"participants":[{"side":"buyer","name":"n"}],"action_items":[],"next_meeting_booked":false}}`,
		`{"v":1,` + env + `,"type":"opportunity.amount_changed","opportunity_id":"o","payload":{"from":1.5e3,"to":0,"cleared":true}}`,
	} {
		bodies = append(bodies, []byte(s))
	}
	for _, b := range bodies {
		if !sameAsFull(t, b) {
			t.Errorf("the fast decoder did not take %s", b)
		}
	}
}

// rest are bodies the fast decoder leaves to the full decoder, and
// whether that one accepts them.
func rest() []struct {
	name, body string
	valid      bool
} {
	const env = `"id":"e","tenant":"t","source":"s","occurred_at":"2026-01-01T00:00:00Z"`
	lost := func(payload string) string {
		return `{` + env + `,"type":"opportunity.closed_lost","opportunity_id":"o","payload":` + payload + `}`
	}
	return []struct {
		name, body string
		valid      bool // the full decoder accepts it
	}{
		{"offset time", `{"id":"e","tenant":"t","source":"s","occurred_at":"2026-01-01T00:00:00+05:30","type":"opportunity.closed_lost","opportunity_id":"o","payload":{}}`, true},
		{"lower-case z", `{"id":"e","tenant":"t","source":"s","occurred_at":"2026-01-01T00:00:00z","type":"opportunity.closed_lost","opportunity_id":"o","payload":{}}`, false},
		{"payload before type", `{` + env + `,"opportunity_id":"o","payload":{"reason":"r"},"type":"opportunity.closed_lost"}`, true},
		{"null", lost(`{"reason":null}`), true},
		{"null payload", lost(`null`), false},
		{"surrogate pair", lost(`{"reason":"\ud83d\ude00"}`), true},
		{"lone surrogate", lost(`{"reason":"\ud83d"}`), false},
		{"escaped name", lost(`{"re\u0061son":"r"}`), true},
		{"duplicate name", lost(`{"reason":"a","reason":"b"}`), false},
		{"duplicate envelope name", `{"id":"x",` + env + `,"type":"opportunity.closed_lost","opportunity_id":"o","payload":{}}`, false},
		{"duplicate attribute", `{` + env + `,"type":"opportunity.created","opportunity_id":"o","payload":{"attributes":{"a":"1","a":"2"}}}`, false},
		{"unknown field", lost(`{"why":"r"}`), false},
		{"upper-case name", `{"ID":"e","tenant":"t","source":"s","occurred_at":"2026-01-01T00:00:00Z","type":"opportunity.closed_lost","opportunity_id":"o","payload":{}}`, false},
		{"unknown type", `{` + env + `,"type":"opportunity.x","payload":{}}`, false},
		{"no payload", `{` + env + `,"type":"opportunity.closed_lost","opportunity_id":"o"}`, false},
		{"trailing data", lost(`{}`) + `{}`, false},
		{"trailing comma", lost(`{"reason":"r",}`), false},
		{"invalid UTF-8", lost("{\"reason\":\"\xff\"}"), false},
		{"control character", lost("{\"reason\":\"a\tb\"}"), false},
		{"bad escape", lost(`{"reason":"\x"}`), false},
		{"fractional int", `{` + env + `,"type":"call.completed","payload":{"call_id":"c","started_at":"2026-01-01T00:00:00Z","duration_seconds":1.0,"participants":[{"side":"buyer","name":"n"}]}}`, false},
		{"huge int", `{` + env + `,"type":"call.completed","payload":{"call_id":"c","started_at":"2026-01-01T00:00:00Z","duration_seconds":12345678901234567890,"participants":[{"side":"buyer","name":"n"}]}}`, false},
		{"number as string", lost(`{"amount":"5"}`), false},
		{"overflowing float", lost(`{"amount":1e400}`), false},
		{"leading zero", lost(`{"amount":01}`), false},
		{"time out of calendar", `{"id":"e","tenant":"t","source":"s","occurred_at":"2026-02-30T00:00:00Z","type":"opportunity.closed_lost","opportunity_id":"o","payload":{}}`, false},
		{"time with comma", `{"id":"e","tenant":"t","source":"s","occurred_at":"2026-01-01T00:00:00,5Z","type":"opportunity.closed_lost","opportunity_id":"o","payload":{}}`, false},
		{"array", `[]`, false},
		{"empty", ``, false},
	}
}

// TestDecodeFastLeavesTheRest: input the fast decoder does not take goes to
// the full decoder, whose errors and events Parse returns unchanged.
func TestDecodeFastLeavesTheRest(t *testing.T) {
	tests := rest()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if sameAsFull(t, []byte(tt.body)) {
				t.Fatalf("the fast decoder took %s", tt.body)
			}
			full, fullErr := event.DecodeFull([]byte(tt.body))
			if (fullErr == nil) != tt.valid {
				t.Fatalf("full decoder: %v, want valid %v", fullErr, tt.valid)
			}
			var got event.Event
			err := got.UnmarshalJSON([]byte(tt.body))
			if (err == nil) != (fullErr == nil) || err == nil && !reflect.DeepEqual(got, full) {
				t.Fatalf("UnmarshalJSON gave %v %#v, the full decoder %v %#v", err, got, fullErr, full)
			}
			if err != nil && !strings.Contains(err.Error(), ":") {
				t.Fatalf("error does not name a field: %v", err)
			}
		})
	}
}

// TestSpecial checks the 8-byte test of quoted strings against the byte
// table: every byte value at every position of a plain word, and random
// words.
func TestSpecial(t *testing.T) {
	anyNotPlain := func(w []byte) bool {
		for _, c := range w {
			if !event.Plain(c) {
				return true
			}
		}
		return false
	}
	for pos := range 8 {
		for c := range 256 {
			w := []byte("abcdefgh")
			w[pos] = byte(c)
			if got, want := event.Special(binary.LittleEndian.Uint64(w)), !event.Plain(byte(c)); got != want {
				t.Fatalf("byte %#x at %d: special %v, want %v", c, pos, got, want)
			}
		}
	}
	rng := rand.New(rand.NewSource(1))
	w := make([]byte, 8)
	for range 1_000_000 {
		for i := range w {
			// Mostly plain bytes, some of each kind that is not.
			switch rng.Intn(12) {
			case 0:
				w[i] = byte(rng.Intn(256))
			case 1:
				w[i] = "\"\\\x00\x1f\x7f\x80\xff"[rng.Intn(7)]
			default:
				w[i] = byte(0x20 + rng.Intn(0x5f))
			}
		}
		if got, want := event.Special(binary.LittleEndian.Uint64(w)), anyNotPlain(w); got != want {
			t.Fatalf("%q: special %v, want %v", w, got, want)
		}
	}
}

// TestDecodeFastLongStrings puts a quote, an escape, a control character
// or a non-ASCII byte at every offset of strings longer than a word, where
// the decoder skips 8 bytes at a time: the fast decoder takes the body as
// the full decoder does, or leaves it.
func TestDecodeFastLongStrings(t *testing.T) {
	for _, odd := range []string{`\"`, `\n`, `\u00e9`, "\x01", "\x7f", "é", "\xff", "\xe2\x82"} {
		for n := range 26 {
			for at := 0; at <= n; at++ {
				v := strings.Repeat("x", at) + odd + strings.Repeat("y", n-at)
				body := `{"id":"` + v + `","tenant":"t","source":"s","occurred_at":"2026-01-01T00:00:00Z","type":"opportunity.closed_lost","opportunity_id":"o","payload":{"reason":"` + v + `"}}`
				took := sameAsFull(t, []byte(body))
				_, err := event.DecodeFull([]byte(body))
				if wantTake := err == nil; took != wantTake {
					t.Fatalf("%q: fast decoder took %v, full decoder error %v", body, took, err)
				}
			}
		}
	}
}

// FuzzDecodeFast: whatever the fast decoder takes, the full decoder takes
// as the same event.
func FuzzDecodeFast(f *testing.F) {
	for _, typ := range event.Types {
		b, err := event.Marshal(sample(typ))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, tt := range rest() {
		f.Add([]byte(tt.body))
	}
	f.Add([]byte(`{"id":"e","tenant":"t","source":"s","occurred_at":"2026-01-01T00:00:00Z","type":"opportunity.closed_lost","opportunity_id":"o","payload":{"reason":"\u00e9\n\"","amount":1e3}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sameAsFull(t, data)
	})
}
