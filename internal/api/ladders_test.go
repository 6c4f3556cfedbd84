package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/store"
)

// With a ladder per tenant, every answer names its tenant's steps and
// carries its version; a tenant whose ladder changed and whose states are
// not replayed yet is refused alone.
func TestPerTenantLadders(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t) // acme and globex derived with the default ladder
	two, err := ladder.Parse("initech.yaml", []byte("version: two-steps\nsteps:\n  - key: meet\n  - key: buy\nwon_step: buy\n"))
	if err != nil {
		t.Fatal(err)
	}
	const tokenInitech = "initech-token-0123456789"
	var rows []store.DerivedRow
	for _, o := range []opp{
		{"initech", "i-1", "ann", "east", 1000, "2024-01-05", []string{"2024-01-10", "2024-01-20"}, "2024-04-01", "won", "", ""},
		{"initech", "i-2", "bob", "west", 2000, "2024-01-08", []string{"2024-01-15"}, "", "", "", ""},
	} {
		rows = append(rows, o.rows(two)...)
	}
	if err := f.st.InsertDerivedWithStates(ctx, rows, two.Len()); err != nil {
		t.Fatal(err)
	}
	serve := func(ls *ladder.Set) *httptest.Server {
		cfg := Config{Ladder: ls, Tokens: map[string]string{tokenAcme: "acme", tokenGlobex: "globex", tokenInitech: "initech"}}
		srv := httptest.NewServer(New(cfg, metrics.New(f.st.Conn()), forecast.New(f.st.Conn()), slog.New(slog.DiscardHandler)))
		t.Cleanup(srv.Close)
		return srv
	}
	def := ladder.Default()
	var defKeys []string
	for _, s := range def.Steps {
		defKeys = append(defKeys, s.Key)
	}
	funnel := func(srv *httptest.Server, token string) (int, string, []string, string) {
		t.Helper()
		code, _, body, raw := get(t, srv, "/v1/funnel?"+period, token)
		defs, _ := body["definitions"].(map[string]any)
		version, _ := defs["ladder_version"].(string)
		ladder, _ := defs["ladder"].([]any)
		var keys []string
		for _, k := range ladder {
			keys = append(keys, k.(string))
		}
		// The steps answered are the ladder's: from its first to its last.
		steps, _ := body["steps"].([]any)
		if len(keys) > 0 && len(steps) != len(keys)-1 {
			t.Errorf("%d steps answered for a ladder of %d", len(steps), len(keys))
		}
		if len(steps) > 0 {
			first, _ := steps[0].(map[string]any)
			last, _ := steps[len(steps)-1].(map[string]any)
			if first["from_step"] != keys[0] || last["to_step"] != keys[len(keys)-1] {
				t.Errorf("steps from %v to %v, ladder %v", first["from_step"], last["to_step"], keys)
			}
		}
		return code, version, keys, raw
	}

	srv := serve(ladder.NewSet(nil, map[string]*ladder.Ladder{"initech": two}))
	for _, tt := range []struct {
		token, version string
		keys           []string
	}{
		{tokenInitech, "two-steps", []string{"meet", "buy"}},
		{tokenAcme, def.Version, defKeys},
		{tokenGlobex, def.Version, defKeys},
	} {
		code, version, keys, raw := funnel(srv, tt.token)
		if code != http.StatusOK || version != tt.version || !slices.Equal(keys, tt.keys) {
			t.Errorf("funnel of %s: %d, ladder %s, steps %v; want ladder %s, steps %v\n%s", tt.token, code, version, keys, tt.version, tt.keys, raw)
		}
		code, _, body, raw := get(t, srv, "/v1/ladder", tt.token)
		if code != http.StatusOK || body["version"] != tt.version {
			t.Errorf("ladder of %s: %d %s, want version %s", tt.token, code, raw, tt.version)
		}
	}

	// acme's ladder changed, its states not replayed yet: acme alone is
	// refused.
	srv = serve(ladder.NewSet(nil, map[string]*ladder.Ladder{"initech": two, "acme": two}))
	code, _, body, raw := get(t, srv, "/v1/funnel?"+period, tokenAcme)
	if msg, _ := body["error"].(string); code != http.StatusConflict || !strings.Contains(msg, "derived with ladder "+def.Version+" (3), not with ladder two-steps") {
		t.Errorf("acme with a changed ladder: %d %s", code, raw)
	}
	for _, token := range []string{tokenGlobex, tokenInitech} {
		if code, _, _, raw := funnel(srv, token); code != http.StatusOK {
			t.Errorf("%s beside acme's change: %d %s", token, code, raw)
		}
	}
}
