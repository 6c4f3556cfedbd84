package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
)

// start returns JetStream on an embedded server with commitflow's streams
// declared (4 partitions).
func start(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := bustest.Start(t, bus.Options{Partitions: 4})
	return js
}

// deadLetter publishes a dead letter the way the ingest worker does.
func deadLetter(t *testing.T, js jetstream.JetStream, subject, reason, body string, seq uint64) {
	t.Helper()
	m := nats.NewMsg(bus.DLQSubject(subject))
	m.Data = []byte(body)
	m.Header.Set(bus.ErrorHeader, reason)
	if subject != "" {
		m.Header.Set(bus.SubjectHeader, subject)
	}
	m.Header.Set(bus.StreamSeqHeader, strconv.FormatUint(seq, 10))
	if _, err := js.PublishMsg(t.Context(), m); err != nil {
		t.Fatal(err)
	}
}

func scan(t *testing.T, js jetstream.JetStream, f Filter, limit int) []Letter {
	t.Helper()
	var ls []Letter
	if err := Scan(t.Context(), js, f, limit, func(l Letter) error { ls = append(ls, l); return nil }); err != nil {
		t.Fatal(err)
	}
	return ls
}

func bodies(ls []Letter) []string {
	var bs []string
	for _, l := range ls {
		bs = append(bs, string(l.Data))
	}
	return bs
}

func TestScanAndReplay(t *testing.T) {
	js := start(t)
	ctx := t.Context()
	if got := scan(t, js, Filter{}, 0); len(got) != 0 {
		t.Fatalf("empty CF_DLQ: %d letters", len(got))
	}
	deadLetter(t, js, "cf.events.acme.crm.opportunity_created.1", "payload.amount: must not be negative", `{"id":"a1"}`, 11)
	deadLetter(t, js, "cf.events.beta.crm.opportunity_created.2", "payload.amount: must not be negative", `{"id":"b1"}`, 12)
	deadLetter(t, js, "cf.events.acme.calls.call_completed.3", "type: unknown event type \"call.done\"", `{"id":"a2"}`, 13)
	deadLetter(t, js, "", "body: invalid JSON at byte 1", `not json`, 14)
	deadLetter(t, js, "cf.events.acme.crm.opportunity_created.1", "payload.amount: must not be negative", `{"id":"a3"}`, 15)

	all := scan(t, js, Filter{}, 0)
	if want := []string{`{"id":"a1"}`, `{"id":"b1"}`, `{"id":"a2"}`, `not json`, `{"id":"a3"}`}; !slices.Equal(bodies(all), want) {
		t.Fatalf("Scan: %v, want %v", bodies(all), want)
	}
	if l := all[0]; l.Seq != 1 || l.Subject != "cf.events.acme.crm.opportunity_created.1" || l.EventsSeq != 11 ||
		l.Reason != "payload.amount: must not be negative" || l.At.IsZero() {
		t.Errorf("first letter: %+v", l)
	}
	if got := bodies(scan(t, js, Filter{}, 2)); !slices.Equal(got, []string{`{"id":"a1"}`, `{"id":"b1"}`}) {
		t.Errorf("Scan limit 2: %v", got)
	}
	if got := bodies(scan(t, js, Filter{Reason: "unknown event type"}, 0)); !slices.Equal(got, []string{`{"id":"a2"}`}) {
		t.Errorf("Scan by reason: %v", got)
	}
	if got := bodies(scan(t, js, Filter{Subject: "cf.events.acme.crm.>"}, 0)); !slices.Equal(got, []string{`{"id":"a1"}`, `{"id":"a3"}`}) {
		t.Errorf("Scan by subject: %v", got)
	}
	if got := bodies(scan(t, js, Filter{Subject: "cf.events.acme.>", Reason: "amount"}, 1)); !slices.Equal(got, []string{`{"id":"a1"}`}) {
		t.Errorf("Scan by subject and reason, limit 1: %v", got)
	}

	// Replay tenant acme's amount errors: they go back to CF_EVENTS on
	// their subjects with their bytes, and leave CF_DLQ.
	var replayed []string
	n, err := Replay(ctx, js, Filter{Subject: "cf.events.acme.>", Reason: "amount"}, func(l Letter) { replayed = append(replayed, string(l.Data)) })
	if err != nil || n != 2 || !slices.Equal(replayed, []string{`{"id":"a1"}`, `{"id":"a3"}`}) {
		t.Fatalf("Replay = %d, %v; progress %v", n, err, replayed)
	}
	events := readEvents(t, js)
	if want := []string{
		`cf.events.acme.crm.opportunity_created.1 dlq-replay:1 {"id":"a1"}`,
		`cf.events.acme.crm.opportunity_created.1 dlq-replay:5 {"id":"a3"}`,
	}; !slices.Equal(events, want) {
		t.Errorf("CF_EVENTS after replay: %v, want %v", events, want)
	}
	if got := bodies(scan(t, js, Filter{}, 0)); !slices.Equal(got, []string{`{"id":"b1"}`, `{"id":"a2"}`, `not json`}) {
		t.Errorf("CF_DLQ after replay: %v", got)
	}

	// Replay the rest: the letter without an original subject stays, and
	// the error says so. A letter dead-lettered again during the replay
	// (as the ingest worker would) is not replayed in the same run.
	n, err = Replay(ctx, js, Filter{}, func(l Letter) {
		deadLetter(t, js, l.Subject, "again", string(l.Data), 99)
	})
	if n != 2 || err == nil || !strings.Contains(err.Error(), "1 letters have no original subject") {
		t.Fatalf("Replay all = %d, %v", n, err)
	}
	left := scan(t, js, Filter{}, 0)
	if got := bodies(left); !slices.Equal(got, []string{`not json`, `{"id":"b1"}`, `{"id":"a2"}`}) {
		t.Errorf("CF_DLQ after the second replay: %v", got)
	}
	if len(readEvents(t, js)) != 4 {
		t.Errorf("CF_EVENTS after the second replay: %v", readEvents(t, js))
	}
}

func TestScanContextDone(t *testing.T) {
	js := start(t)
	deadLetter(t, js, "cf.events.acme.crm.x.1", "r", "{}", 1)
	stop := errors.New("stop")
	err := Scan(t.Context(), js, Filter{}, 0, func(Letter) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("Scan returned %v, want the callback's error", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := Scan(ctx, js, Filter{}, 0, func(Letter) error { return nil }); err == nil {
		t.Error("Scan with a cancelled context: no error")
	}
}

// readEvents returns "subject msg-id body" of every message in CF_EVENTS.
func readEvents(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	ctx := t.Context()
	s, err := js.Stream(ctx, bus.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %s", m.Subject, m.Header.Get(jetstream.MsgIDHeader), m.Data))
	}
	return out
}

func TestSubjectMatches(t *testing.T) {
	tests := []struct {
		filter, subject string
		want            bool
	}{
		{"cf.events.acme.>", "cf.events.acme.crm.x.1", true},
		{"cf.events.acme.>", "cf.events.acme", false},
		{"cf.events.acme.>", "cf.events.beta.crm.x.1", false},
		{"cf.events.*.crm.>", "cf.events.beta.crm.x.1", true},
		{"cf.events.*.crm.x.1", "cf.events.beta.crm.x.1", true},
		{"cf.events.*.crm.x.1", "cf.events.beta.crm.x.2", false},
		{"cf.events.*.crm.x", "cf.events.beta.crm.x.1", false},
		{"cf.events.acme.crm.x.1.2", "cf.events.acme.crm.x.1", false},
		{"cf.events.>.x", "cf.events.acme.x", false},
	}
	for _, tt := range tests {
		if got := subjectMatches(tt.filter, tt.subject); got != tt.want {
			t.Errorf("subjectMatches(%q, %q) = %v, want %v", tt.filter, tt.subject, got, tt.want)
		}
	}
}
