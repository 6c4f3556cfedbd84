package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/store"
)

// A tenant whose states were derived with another ladder than the API's
// gets 409 naming both versions on every report, not steps named by the
// wrong ladder; once replayed with the API's ladder it is answered again.
// Checked on snapshot Views (the versions taken from each part's Summary)
// and with FINAL (counted on the table), as on a cluster.
func TestLadderMismatch(t *testing.T) {
	for _, final := range []bool{false, true} {
		t.Run(map[bool]string{false: "view", true: "final"}[final], func(t *testing.T) { testLadderMismatch(t, final) })
	}
}

func testLadderMismatch(t *testing.T, final bool) {
	ctx := context.Background()
	f := newFixture(t) // derived with the default ladder
	f.final = final
	two, err := ladder.Parse("two.yaml", []byte("version: two-steps\nsteps:\n  - key: meet\n  - key: buy\nwon_step: buy\n"))
	if err != nil {
		t.Fatal(err)
	}
	def := f.l
	f.l = two
	srv := httptest.NewServer(f.handler(Config{}))
	defer srv.Close()
	paths := []string{"/v1/funnel?" + period, "/v1/stalls?as_of=2024-07-01", "/v1/missed?" + period,
		"/v1/movement?" + period, "/v1/forecast?as_of=2024-07-01&draws=50"}
	for _, p := range paths {
		code, _, body, raw := get(t, srv, p, tokenAcme)
		msg, _ := body["error"].(string)
		if code != http.StatusConflict || !strings.Contains(msg, "tenant acme: 3 of 3 opportunity states were derived with ladder "+def.Version+" (3), not with ladder two-steps") ||
			!strings.Contains(msg, "commitflow replay --tenant acme") {
			t.Errorf("GET %s with states of another ladder: %d %s", p, code, raw)
		}
	}
	// Bad parameters are still 400, before the ladder is looked at.
	if code, _, _, raw := get(t, srv, "/v1/funnel?from=2024-03-01&to=2024-02-01", tokenAcme); code != http.StatusBadRequest {
		t.Errorf("bad range: %d %s", code, raw)
	}

	// replay writes newer states of opps derived with the API's ladder,
	// as a replay does; the old rows stay until merges drop them.
	replay := func(opps ...opp) {
		t.Helper()
		var states []store.StateRow
		for _, o := range opps {
			var ds []derive.Derived
			for _, r := range o.rows(two) {
				ds = append(ds, r.Derived)
			}
			states = append(states, store.StateRow{State: derive.Summarize(ds, two.Len()), Version: uint64(time.Now().UnixNano())})
		}
		if err := f.st.InsertStates(ctx, states); err != nil {
			t.Fatal(err)
		}
	}
	replay(opp{"acme", "a-1", "ann", "east", 1000, "2024-01-05", []string{"2024-01-10", "2024-01-20"}, "2024-04-01", "won", "", ""})
	code, _, body, raw := get(t, srv, "/v1/stalls?as_of=2024-07-01", tokenAcme)
	if msg, _ := body["error"].(string); code != http.StatusConflict || !strings.Contains(msg, "2 of 3 opportunity states were derived with ladder "+def.Version+" (2)") {
		t.Errorf("half replayed: %d %s", code, raw)
	}
	replay(opp{"acme", "a-2", "bob", "west", 2000, "2024-01-08", []string{"2024-01-15"}, "", "", "", ""},
		opp{"acme", "a-3", "ann", "east", 500, "2024-02-01", []string{"2024-02-05", "2024-02-10"}, "2024-03-15", "lost", "", ""})
	// Every current state is of the API's ladder now, although the
	// superseded rows of the old one are still stored.
	for _, p := range paths {
		code, _, body, raw := get(t, srv, p, tokenAcme)
		defs, _ := body["definitions"].(map[string]any)
		if code != http.StatusOK || defs["ladder_version"] != "two-steps" {
			t.Errorf("GET %s once replayed: %d %s", p, code, raw)
		}
	}
	// globex's states are still of the default ladder.
	if code, _, _, raw := get(t, srv, "/v1/funnel?"+period, tokenGlobex); code != http.StatusConflict {
		t.Errorf("globex: %d %s", code, raw)
	}
}
