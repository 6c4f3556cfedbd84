package node_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/config"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/node"
)

func TestMain(m *testing.M) { chtest.Main(m) }

const (
	tenant = "acme"
	token  = "acme-token"
)

// stages are the default ladder's Salesforce stages in order: stages[j]
// gains step j+1 of the ladder (Prospecting none), so a deal moved through
// stages[:h+1] has reached step h at most.
var stages = []string{"Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers"}

// deal is an opportunity the tests send: created at Prospecting, moved
// through the stages up to stages[top], and closed lost when lost.
type deal struct {
	id     string
	top    int
	lost   bool
	amount float64
}

// deals are n opportunities of every top stage, a quarter of them lost.
func deals(n int) []deal {
	ds := make([]deal, n)
	for i := range ds {
		ds[i] = deal{id: fmt.Sprintf("o%04d", i), top: i % len(stages), lost: i%4 == 3, amount: float64(1000 * (1 + i%7))}
	}
	return ds
}

// events are the NDJSON lines of d's events, base the day it is created.
func (d deal) events(base time.Time) []string {
	at := func(day int) string { return base.Add(time.Duration(day) * 24 * time.Hour).Format(time.RFC3339) }
	line := func(id, typ string, day int, payload string) string {
		return fmt.Sprintf(`{"v":1,"id":%q,"source":"api","type":%q,"occurred_at":%q,"opportunity_id":%q,"payload":%s}`, d.id+"-"+id, typ, at(day), d.id, payload)
	}
	ls := []string{line("created", "opportunity.created", 0, fmt.Sprintf(`{"name":%q,"stage":%q,"amount":%g,"currency":"USD"}`, d.id, stages[0], d.amount))}
	for j := 1; j <= d.top; j++ {
		ls = append(ls, line(fmt.Sprint("stage-", j), "opportunity.stage_changed", j, fmt.Sprintf(`{"from":%q,"to":%q}`, stages[j-1], stages[j])))
	}
	if d.lost {
		ls = append(ls, line("lost", "opportunity.closed_lost", len(stages)+1, `{"reason":"budget"}`))
	}
	return ls
}

// step is the part of a step of GET /v1/funnel the tests check.
type step struct {
	FromStep  string  `json:"from_step"`
	FromIndex int     `json:"from_index"`
	Reached   int64   `json:"reached"`
	Converted int64   `json:"converted"`
	StillOpen int64   `json:"still_open"`
	Dropped   int64   `json:"dropped"`
	Amount    float64 `json:"reached_amount"`
}

// funnel is the oracle: the funnel of ds under the default ladder, worked
// out from the events alone. A deal whose highest stage gains step h has
// reached every step up to h; of those reaching step K, the ones reaching
// K+1 converted, the others are dropped when lost and still open when not
// (no window).
func funnel(ds []deal) []step {
	l := ladder.Default()
	var out []step
	for k := 1; k < l.Len(); k++ {
		s := step{FromStep: l.Key(k), FromIndex: k}
		for _, d := range ds {
			h, _ := l.StageStep("", stages[d.top])
			switch {
			case h < k:
				continue
			case h > k:
				s.Converted++
			case d.lost:
				s.Dropped++
			default:
				s.StillOpen++
			}
			s.Reached++
			s.Amount += d.amount
		}
		out = append(out, s)
	}
	return out
}

// testConfig is the configuration of a node on data and the ClickHouse
// at dsn, as run makes it (4 partitions instead of 16), with an embedded
// NATS on a free port and the API on one. The member name is fixed, as
// run's is for its data directory, so that a node started again takes
// the leases back at once.
func testConfig(t *testing.T, data, dsn string) node.Config {
	return node.Config{
		Common: config.Common{
			ClickHouse: dsn, Data: data, NATSListen: "127.0.0.1:-1", HTTP: "127.0.0.1:0",
			Partitions: 4, DuplicateWindow: 2 * time.Minute, Replicas: 1, Retention: 24 * time.Hour,
		},
		Member:           "node-test",
		Tokens:           map[string]string{token: tenant},
		Sweep:            10 * time.Minute,
		AnswerCacheBytes: 1 << 20,
		ForecastModels:   16,
		Logger:           slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// testWriter writes logs to t.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// client talks to a node's API with its tenant's token.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func newClient(t *testing.T, n *node.Node) *client {
	c := &client{t: t, base: n.URL(), http: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(c.http.CloseIdleConnections)
	return c
}

func (c *client) do(method, path string, body io.Reader, v any) int {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.base+strings.TrimPrefix(path, "/"), body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if res.StatusCode < 300 && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			c.t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return res.StatusCode
}

// post sends ds's events in bodies of about batch events each, and checks
// that every one is accepted.
func (c *client) post(ds []deal, base time.Time, batch int) int {
	c.t.Helper()
	var lines []string
	for _, d := range ds {
		lines = append(lines, d.events(base)...)
	}
	for chunk := range slices.Chunk(lines, batch) {
		var res struct{ Accepted, Rejected int }
		if code := c.do("POST", "/v1/events", strings.NewReader(strings.Join(chunk, "\n")), &res); code != http.StatusAccepted || res.Accepted != len(chunk) {
			c.t.Fatalf("POST /v1/events of %d events: %d, %+v", len(chunk), code, res)
		}
	}
	return len(lines)
}

// funnel asks GET /v1/funnel over [from, to).
func (c *client) funnel(from, to time.Time) ([]step, int) {
	c.t.Helper()
	q := url.Values{"from": {from.Format(time.DateOnly)}, "to": {to.Format(time.DateOnly)}}
	var res struct{ Steps []step }
	code := c.do("GET", "/v1/funnel?"+q.Encode(), nil, &res)
	return res.Steps, code
}

// awaitFunnel asks the funnel until it is want, failing after within.
func (c *client) awaitFunnel(from, to time.Time, want []step, within time.Duration) {
	c.t.Helper()
	var got []step
	var code int
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got, code = c.funnel(from, to); code == http.StatusOK && slices.Equal(got, want) {
			return
		}
	}
	c.t.Fatalf("GET /v1/funnel: %d\n got %+v\nwant %+v", code, got, want)
}

// closeNode closes n, which must take less than a few seconds and leave
// no goroutine of commitflow, NATS or ClickHouse's client behind.
func closeNode(t *testing.T, n *node.Node, before map[string]bool) {
	t.Helper()
	start := time.Now()
	if err := n.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v, want a few seconds at most", d)
	}
	var left []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if left = leftGoroutines(before); len(left) == 0 {
			return
		}
	}
	t.Errorf("%d goroutines left after Close:\n\n%s", len(left), strings.Join(left, "\n\n"))
}

// ours are the packages whose goroutines a closed node must not leave.
var ours = regexp.MustCompile(`github\.com/(commitflow/commitflow/internal/|nats-io/|ClickHouse/clickhouse-go)`)

// goroutines returns the stacks of the running goroutines by header
// ("goroutine 7").
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		head, _, _ := strings.Cut(string(g), " [")
		out[head] = string(g)
	}
	return out
}

// running returns the headers of the running goroutines.
func running() map[string]bool {
	out := map[string]bool{}
	for h := range goroutines() {
		out[h] = true
	}
	return out
}

// leftGoroutines returns the stacks of the goroutines of ours that were
// not running before.
func leftGoroutines(before map[string]bool) []string {
	var left []string
	for h, stack := range goroutines() {
		if !before[h] && ours.MatchString(stack) && !strings.Contains(stack, "node_test.") {
			left = append(left, stack)
		}
	}
	return left
}

// TestNodeEndToEnd starts a node as run does, on a throwaway data
// directory with an embedded NATS and a real ClickHouse, posts raw events
// to POST /v1/events and waits until GET /v1/funnel counts them as the
// events say; then Close stops everything within seconds.
func TestNodeEndToEnd(t *testing.T) {
	dsn := chtest.DSN(t)
	before := running()
	n, err := node.New(t.Context(), testConfig(t, t.TempDir(), dsn))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			n.Close()
		}
	})
	c := newClient(t, n)
	if code := c.do("GET", "/readyz", nil, nil); code != http.StatusOK {
		t.Errorf("GET /readyz: %d", code)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	base := today.AddDate(0, 0, -30)
	ds := deals(40)
	c.post(ds, base, 25)
	want := funnel(ds)
	if want[1].Dropped == 0 || want[1].StillOpen == 0 || want[1].Converted == 0 {
		t.Fatalf("the oracle's funnel does not cover every outcome: %+v", want)
	}
	c.awaitFunnel(base.AddDate(0, 0, -1), today.AddDate(0, 0, 1), want, time.Minute)
	// The same events again are duplicates: nothing changes.
	c.post(ds, base, 25)
	c.awaitFunnel(base.AddDate(0, 0, -1), today.AddDate(0, 0, 1), want, time.Minute)

	c.http.CloseIdleConnections()
	closed = true
	closeNode(t, n, before)
}

// TestNodeCloseWhileIngesting closes a node right after its API accepted
// a few thousand events, while ingest and derivation are still at them: a
// node started again on the same data directory stores every event once,
// and the funnel counts every deal.
//
// The batches the derive workers held at Close are negatively
// acknowledged, yet after the restart JetStream delivers them again only
// when the consumers' AckWait (60 s) has passed: nothing is lost, but the
// funnel is complete a minute late, which is what the test waits for.
func TestNodeCloseWhileIngesting(t *testing.T) {
	dsn := chtest.DSN(t)
	data := t.TempDir()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	base := today.AddDate(0, 0, -30)
	ds := deals(1200)
	want := funnel(ds)

	before := running()
	n, err := node.New(t.Context(), testConfig(t, data, dsn))
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, n)
	sent := c.post(ds, base, 500)
	stored, err := n.Store().CountEvents(t.Context(), tenant)
	if err != nil {
		t.Fatal(err)
	}
	c.http.CloseIdleConnections()
	closeNode(t, n, before)
	if stored < uint64(sent) {
		t.Logf("%d of %d events stored when Close began", stored, sent)
	} else {
		t.Logf("ingest had stored all %d events when Close began: this run did not close a busy ingest", sent)
	}

	n, err = node.New(t.Context(), testConfig(t, data, dsn))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got, err := n.Store().CountEvents(t.Context(), tenant)
		if err != nil {
			t.Fatal(err)
		}
		if got == uint64(sent) {
			break
		}
		if got > uint64(sent) || time.Now().After(deadline) {
			t.Fatalf("%d events stored after the restart, want the %d sent", got, sent)
		}
	}
	c = newClient(t, n)
	c.awaitFunnel(base.AddDate(0, 0, -1), today.AddDate(0, 0, 1), want, 2*time.Minute)
}
