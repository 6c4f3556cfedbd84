package gongsync

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
)

const (
	accessKey = "AK7QX2"
	secret    = "c2VjcmV0LXNlY3JldA"
)

// now is the tests' clock: with the default Settle of 2h, windows end at
// 2024-06-05T10:00:00Z.
var now = time.Date(2024, 6, 5, 12, 0, 0, 0, time.UTC)

// fakeCall is a call the fake server holds.
type fakeCall struct {
	started time.Time
	data    json.RawMessage
}

// seen is a request the fake server received.
type seen struct {
	at             time.Time
	from, to, curs string
	body           string
}

// fakeGong serves POST /v2/calls/extensive as testdata/SOURCES.md says.
type fakeGong struct {
	calls    []fakeCall // by start
	pageSize int
	mu       sync.Mutex
	seen     []seen
	// answer, when it returns a status, answers request n (from 1)
	// instead.
	answer func(n int, s seen) (status int, header http.Header, body string)
}

// gongCalls makes n calls from the first call of the webhook fixture,
// one a day from 2024-05-28T10:00:00Z, with ids 7000+i linked to
// opportunities 006OPPi; bad lists the calls left without parties.
func gongCalls(t *testing.T, n int, bad ...int) []fakeCall {
	t.Helper()
	raw, err := os.ReadFile("../webhook/testdata/gong_calls_extensive.json")
	if err != nil {
		t.Fatal(err)
	}
	var resp struct{ Calls []json.RawMessage }
	if err := json.Unmarshal(raw, &resp); err != nil {
		t.Fatal(err)
	}
	var out []fakeCall
	for i := range n {
		var c map[string]any
		if err := json.Unmarshal(resp.Calls[0], &c); err != nil {
			t.Fatal(err)
		}
		started := time.Date(2024, 5, 28, 10, 0, 0, 0, time.UTC).Add(time.Duration(i) * 24 * time.Hour)
		meta := c["metaData"].(map[string]any)
		meta["id"] = strconv.Itoa(7000 + i)
		meta["started"] = started.Format(time.RFC3339)
		c["context"].([]any)[0].(map[string]any)["objects"].([]any)[0].(map[string]any)["objectId"] = fmt.Sprintf("006OPP%d", i)
		if slices.Contains(bad, i) {
			c["parties"] = []any{}
		}
		data, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fakeCall{started, data})
	}
	return out
}

func (f *fakeGong) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"requestId":"r%d","errors":[%q]}`, status, msg)
	}
	if r.Method != http.MethodPost || r.URL.Path != callsPath {
		fail(http.StatusNotFound, "Not Found")
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != accessKey || pass != secret {
		fail(http.StatusUnauthorized, "Unauthorized: invalid credentials")
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	s := seen{at: time.Now(), from: req.Filter.FromDateTime, to: req.Filter.ToDateTime, curs: req.Cursor, body: string(body)}
	f.mu.Lock()
	f.seen = append(f.seen, s)
	n := len(f.seen)
	f.mu.Unlock()
	if f.answer != nil {
		if status, header, body := f.answer(n, s); status != 0 {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(status)
			io.WriteString(w, body)
			return
		}
	}
	from, err1 := time.Parse(time.RFC3339, s.from)
	to, err2 := time.Parse(time.RFC3339, s.to)
	if err1 != nil || err2 != nil {
		fail(http.StatusBadRequest, "bad filter")
		return
	}
	var in []json.RawMessage
	for _, c := range f.calls {
		if !c.started.Before(from) && c.started.Before(to) {
			in = append(in, c.data)
		}
	}
	if len(in) == 0 {
		fail(http.StatusNotFound, "No calls found corresponding to the provided filters")
		return
	}
	off := 0
	if s.curs != "" {
		dec, err := base64.RawURLEncoding.DecodeString(s.curs)
		window, o, _ := strings.Cut(string(dec), "#")
		if off, err1 = strconv.Atoi(o); err != nil || err1 != nil || window != s.from+"/"+s.to || off >= len(in) {
			fail(http.StatusBadRequest, "Invalid cursor")
			return
		}
	}
	end := min(off+f.pageSize, len(in))
	records := map[string]any{"totalRecords": len(in), "currentPageSize": end - off, "currentPageNumber": off / f.pageSize}
	if end < len(in) {
		records["cursor"] = base64.RawURLEncoding.EncodeToString([]byte(s.from + "/" + s.to + "#" + strconv.Itoa(end)))
	}
	out, _ := json.Marshal(map[string]any{"requestId": fmt.Sprintf("req%d", n), "records": records, "calls": in[off:end]})
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// requests returns the requests seen so far.
func (f *fakeGong) requests() []seen {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

// testBus starts embedded NATS with commitflow's streams.
func testBus(t *testing.T) (jetstream.JetStream, *bus.Publisher) {
	t.Helper()
	_, js := bustest.Start(t, bus.Options{Partitions: 4})
	return js, bus.NewPublisher(js, 4)
}

// syncer opens a Syncer for tenant acme on srv, starting 2024-05-20.
func syncer(t *testing.T, js jetstream.JetStream, pub Publisher, srv *httptest.Server, member string, tweak func(*Config)) *Syncer {
	t.Helper()
	cfg := Config{
		BaseURL: srv.URL + "/", AccessKey: accessKey, AccessKeySecret: secret, Tenant: "acme",
		From: time.Date(2024, 5, 20, 0, 0, 0, 0, time.UTC), Member: member, Publisher: pub,
		RetryBase: 5 * time.Millisecond, Now: func() time.Time { return now },
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := Open(t.Context(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// msgIDs returns the sorted Nats-Msg-Id of every message of stream.
func msgIDs(t *testing.T, js jetstream.JetStream, stream string) []string {
	t.Helper()
	ctx := t.Context()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Header.Get(jetstream.MsgIDHeader))
	}
	slices.Sort(ids)
	return ids
}

// wantIDs are the message ids of calls 0..n-1 but skip.
func wantIDs(n int, skip ...int) []string {
	var ids []string
	for i := range n {
		if !slices.Contains(skip, i) {
			ids = append(ids, fmt.Sprintf("acme:gong:call-%d-006OPP%d", 7000+i, i))
		}
	}
	slices.Sort(ids)
	return ids
}

// TestPoll polls 8 calls over three windows (the first empty: Gong's
// 404), two calls a page, through a 429 and a 500; one call without
// parties goes to CF_DLQ. Polling again finds nothing new; polling the
// same calls again from scratch publishes the same message ids.
func TestPoll(t *testing.T) {
	js, pub := testBus(t)
	f := &fakeGong{calls: gongCalls(t, 8, 3), pageSize: 2}
	f.answer = func(n int, _ seen) (int, http.Header, string) {
		switch n {
		case 1:
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}, ""
		case 4:
			return http.StatusInternalServerError, nil, `{"requestId":"r500","errors":["Internal error"]}`
		}
		return 0, nil, ""
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	s := syncer(t, js, pub, srv, "a", nil)
	sum, err := s.Poll(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	end := time.Date(2024, 6, 5, 10, 0, 0, 0, time.UTC)
	if want := (Summary{Pages: 5, Calls: 8, Events: 7, Refused: 1, Through: end}); sum != want {
		t.Errorf("summary %+v, want %+v", sum, want)
	}
	if got, want := msgIDs(t, js, bus.EventsStream), wantIDs(8, 3); !slices.Equal(got, want) {
		t.Errorf("CF_EVENTS ids\n%v\nwant\n%v", got, want)
	}
	if dlq := msgIDs(t, js, bus.DLQStream); len(dlq) != 1 || !strings.HasPrefix(dlq[0], "gong-sync:") {
		t.Errorf("CF_DLQ ids %v, want the call without parties", dlq)
	}
	reqs := f.requests()
	var windows []string
	for _, r := range reqs {
		windows = append(windows, r.from+" "+r.to+" "+strconv.FormatBool(r.curs != ""))
	}
	want := []string{
		"2024-05-20T00:00:00Z 2024-05-27T00:00:00Z false", // 429
		"2024-05-20T00:00:00Z 2024-05-27T00:00:00Z false", // 404: no calls
		"2024-05-27T00:00:00Z 2024-06-03T00:00:00Z false",
		"2024-05-27T00:00:00Z 2024-06-03T00:00:00Z true", // 500
		"2024-05-27T00:00:00Z 2024-06-03T00:00:00Z true",
		"2024-05-27T00:00:00Z 2024-06-03T00:00:00Z true",
		"2024-06-03T00:00:00Z 2024-06-05T10:00:00Z false",
	}
	if !slices.Equal(windows, want) {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(windows, "\n"), strings.Join(want, "\n"))
	}
	if wait := reqs[1].at.Sub(reqs[0].at); wait < 900*time.Millisecond {
		t.Errorf("asked again %s after a 429 with Retry-After: 1", wait)
	}
	for _, part := range []string{`"contentSelector":{"context":"Basic","exposedFields":{"parties":true,"content":{"pointsOfInterest":true}}}`, `"filter":{"fromDateTime":`} {
		if !strings.Contains(reqs[0].body, part) {
			t.Errorf("request body %s lacks %s", reqs[0].body, part)
		}
	}
	if st, _, err := s.State(t.Context()); err != nil || !st.From.Equal(end) || !st.To.IsZero() || st.Cursor != "" {
		t.Errorf("position %+v %v, want from %s and no window", st, err, end)
	}

	// Caught up: nothing asked.
	if sum, err := s.Poll(t.Context()); err != nil || sum.Pages != 0 || len(f.requests()) != len(reqs) {
		t.Errorf("second poll: %+v %v, %d requests", sum, err, len(f.requests())-len(reqs))
	}
	// The same calls polled again from scratch: the same message ids.
	if err := s.kv.Delete(t.Context(), "acme"); err != nil {
		t.Fatal(err)
	}
	f.answer = nil
	if sum, err := s.Poll(t.Context()); err != nil || sum.Events != 7 {
		t.Fatalf("poll again: %+v %v", sum, err)
	}
	if got, want := msgIDs(t, js, bus.EventsStream), wantIDs(8, 3); !slices.Equal(got, want) {
		t.Errorf("after polling again, CF_EVENTS ids\n%v\nwant\n%v", got, want)
	}
}

// TestPollErrors: wrong credentials, a server that keeps failing, and a
// refused cursor (the window polled again from its start).
func TestPollErrors(t *testing.T) {
	js, pub := testBus(t)
	f := &fakeGong{calls: gongCalls(t, 4), pageSize: 2}
	srv := httptest.NewServer(f)
	defer srv.Close()

	s := syncer(t, js, pub, srv, "a", func(c *Config) { c.AccessKeySecret = "wrong" })
	if _, err := s.Poll(t.Context()); err == nil || !strings.Contains(err.Error(), "gong refused the credentials (401") {
		t.Errorf("wrong secret: %v", err)
	}
	if st, rev, _ := s.State(t.Context()); rev != 0 {
		t.Errorf("a failed poll wrote the position %+v", st)
	}

	f.answer = func(int, seen) (int, http.Header, string) { return http.StatusBadGateway, nil, "bad gateway" }
	s = syncer(t, js, pub, srv, "a", func(c *Config) { c.ServerRetries = 3 })
	before := len(f.requests())
	if _, err := s.Poll(t.Context()); err == nil || !strings.Contains(err.Error(), "4 attempts failed: gong answered 502: bad gateway") {
		t.Errorf("failing server: %v", err)
	}
	if n := len(f.requests()) - before; n != 4 {
		t.Errorf("%d requests, want 4", n)
	}

	refused := false
	f.answer = func(_ int, s seen) (int, http.Header, string) {
		if s.curs != "" && !refused {
			refused = true
			return http.StatusBadRequest, nil, `{"requestId":"r400","errors":["cursor expired"]}`
		}
		return 0, nil, ""
	}
	if sum, err := s.Poll(t.Context()); err != nil || sum.Events != 6 { // the first page twice
		t.Fatalf("cursor refused: %+v %v", sum, err)
	}
	if got, want := msgIDs(t, js, bus.EventsStream), wantIDs(4); !slices.Equal(got, want) {
		t.Errorf("CF_EVENTS ids %v, want %v", got, want)
	}
}

// TestResume: a poller stopped in the middle of a window leaves its
// position at the page it had not finished; the next one (another
// process) resumes there, and the stream holds each call once.
func TestResume(t *testing.T) {
	js, pub := testBus(t)
	f := &fakeGong{calls: gongCalls(t, 7), pageSize: 2}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, kill := context.WithCancel(t.Context())
	f.answer = func(n int, s seen) (int, http.Header, string) {
		if n == 4 { // the third page of the second window
			kill()
			return http.StatusServiceUnavailable, nil, ""
		}
		return 0, nil, ""
	}
	a := syncer(t, js, pub, srv, "a", nil)
	if err := a.Run(ctx, true, nil); err != nil {
		t.Fatalf("run stopped: %v", err)
	}
	st, _, err := a.State(t.Context())
	if err != nil || st.Cursor == "" || !st.To.Equal(time.Date(2024, 6, 3, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("position after the stop %+v %v, want inside the second window", st, err)
	}
	if got, want := msgIDs(t, js, bus.EventsStream), wantIDs(4); !slices.Equal(got, want) {
		t.Fatalf("after the stop CF_EVENTS ids %v, want %v", got, want)
	}

	f.answer = nil
	before := len(f.requests())
	b := syncer(t, js, pub, srv, "b", nil)
	var sums []Summary
	if err := b.Run(t.Context(), true, func(s Summary) { sums = append(sums, s) }); err != nil {
		t.Fatal(err)
	}
	reqs := f.requests()[before:]
	if len(reqs) != 2 || reqs[0].curs != st.Cursor || reqs[1].curs != "" {
		t.Errorf("after the restart: %+v, want the saved cursor's page then the last window", reqs)
	}
	if len(sums) != 1 || sums[0].Events != 3 {
		t.Errorf("summaries %+v, want one of 3 events", sums)
	}
	if got, want := msgIDs(t, js, bus.EventsStream), wantIDs(7); !slices.Equal(got, want) {
		t.Errorf("CF_EVENTS ids %v, want %v", got, want)
	}
}

// TestLease: while a poller holds the tenant's lease another does not
// poll; the lease of one that died (never released) passes after its
// TTL.
func TestLease(t *testing.T) {
	js, pub := testBus(t)
	f := &fakeGong{calls: gongCalls(t, 2), pageSize: 2}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ttl := func(c *Config) { c.LeaseTTL = time.Second }

	// A running poller, waiting between polls.
	a := syncer(t, js, pub, srv, "a", func(c *Config) { ttl(c); c.Interval = time.Hour })
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx, false, nil) }()
	b := syncer(t, js, pub, srv, "b", ttl)
	deadline := time.Now().Add(10 * time.Second)
	for len(f.requests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // past a's TTL: it renews
	if err := b.Run(t.Context(), true, nil); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "held by a") {
		t.Errorf("a second poller: %v, want ErrBusy held by a", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := b.Run(t.Context(), true, nil); err != nil {
		t.Errorf("after a stopped: %v", err)
	}

	// A poller that died holding the lease.
	if holder, err := a.leases.Lease("acme").Acquire(t.Context()); err != nil || holder != "a" {
		t.Fatalf("acquire: %q %v", holder, err)
	}
	if err := b.Run(t.Context(), true, nil); !errors.Is(err, ErrBusy) {
		t.Errorf("while a dead poller's lease lasts: %v", err)
	}
	for {
		err := b.Run(t.Context(), true, nil)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrBusy) || time.Now().After(deadline.Add(10*time.Second)) {
			t.Fatalf("the dead poller's lease did not pass: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(msgIDs(t, js, bus.EventsStream)); n != 2 {
		t.Errorf("CF_EVENTS holds %d messages, want 2", n)
	}
}

func TestRetryAfter(t *testing.T) {
	at := time.Date(2024, 6, 5, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              time.Second,
		"3":                             3 * time.Second,
		"0":                             0,
		"soon":                          time.Second,
		"86400":                         time.Hour,
		"Wed, 05 Jun 2024 12:00:30 GMT": 30 * time.Second,
		"Wed, 05 Jun 2024 11:00:00 GMT": 0,
	} {
		if got := retryAfter(v, at); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
}

// TestParsePage reads a page, the last page and an empty one.
func TestParsePage(t *testing.T) {
	raw, err := os.ReadFile("../webhook/testdata/gong_calls_extensive.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePage(raw)
	if err != nil || len(p.Calls) != 2 || p.Cursor != "" {
		t.Fatalf("%+v %v", p, err)
	}
	withCursor := bytes.Replace(raw, []byte(`"currentPageNumber": 0`), []byte(`"currentPageNumber": 0, "cursor": "eyJhbGciOiJIUzI1NiJ9"`), 1)
	if p, err := parsePage(withCursor); err != nil || p.Cursor != "eyJhbGciOiJIUzI1NiJ9" || len(p.Calls) != 2 {
		t.Fatalf("%+v %v", p, err)
	}
	if p, err := parsePage([]byte(`{"requestId":"x","records":{"totalRecords":0}}`)); err != nil || len(p.Calls) != 0 {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := parsePage([]byte(`<html>`)); err == nil {
		t.Fatal("not JSON: no error")
	}
}

// TestPollMinWindow: a poll less than MinWindow after the last one's end
// asks Gong nothing (the sync command run by the minute, or a test a
// second later, spent a request on each second); once a minute has
// settled, it asks for that minute.
func TestPollMinWindow(t *testing.T) {
	js, pub := testBus(t)
	f := &fakeGong{calls: gongCalls(t, 2), pageSize: 2}
	srv := httptest.NewServer(f)
	defer srv.Close()
	clock := now
	s := syncer(t, js, pub, srv, "a", func(c *Config) { c.Now = func() time.Time { return clock } })
	if _, err := s.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	n := len(f.requests())
	clock = clock.Add(MinWindow - time.Second)
	if sum, err := s.Poll(t.Context()); err != nil || sum.Pages != 0 || len(f.requests()) != n {
		t.Errorf("poll %s later: %+v %v, %d requests", MinWindow-time.Second, sum, err, len(f.requests())-n)
	}
	clock = clock.Add(time.Second)
	if sum, err := s.Poll(t.Context()); err != nil || sum.Pages != 1 || len(f.requests()) != n+1 {
		t.Errorf("poll %s later: %+v %v, %d requests", MinWindow, sum, err, len(f.requests())-n)
	}
}
