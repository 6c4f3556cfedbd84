package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/gen"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/logtest"
	"github.com/commitflow/commitflow/internal/store"
)

// acmeLadder is acme's own four-step ladder, a format taking its version
// and the key of its first step.
const acmeLadder = `
version: %s
steps:
  - {key: %s, title: First meeting, stall_after_days: 21}
  - {key: qualify, title: Qualified, stall_after_days: 30}
  - {key: propose, title: Proposal reviewed, stall_after_days: 30}
  - {key: decide, title: Decided}
pipelines:
  - pipeline: "*"
    stages:
      Prospecting: %[2]s
      Qualification: qualify
      Needs Analysis: qualify
      Proposal/Price Quote: propose
      Negotiation/Review: propose
      Closed Won: decide
won_stages: [Closed Won, closedwon]
lost_stages: [Closed Lost, closedlost]
activities:
  - {step: %[2]s, kinds: [meeting, call]}
won_step: decide
`

// Two tenants with ladders of different step counts in one run (acme its
// own from --ladders, globex the shipped default): each tenant's derived
// events, states and answers are in its own steps. Restarted after acme's
// ladder file changed, run replays acme alone (globex's stored rows keep
// their versions) and acme's answers follow the new ladder.
func TestRunPerTenantLadders(t *testing.T) {
	for _, env := range []string{"COMMITFLOW_CLICKHOUSE", "COMMITFLOW_NATS", "COMMITFLOW_LADDER", "COMMITFLOW_LADDERS", "COMMITFLOW_TOKENS"} {
		t.Setenv(env, "")
	}
	ctx := t.Context()
	dsn := chtest.DSN(t)
	data, dir := t.TempDir(), t.TempDir()
	writeAcme := func(version, first string) *ladder.Ladder {
		t.Helper()
		path := filepath.Join(dir, "acme.yaml")
		if err := os.WriteFile(path, []byte(fmt.Sprintf(acmeLadder, version, first)), 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := ladder.Load(path)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	acme1 := writeAcme("acme-1", "meet")
	def := ladder.Default()
	tokens := map[string]string{"acme": "acme-token-0123456789", "globex": "globex-token-0123456789"}

	// start runs commitflow run and returns its API URL and a function
	// that stops it.
	start := func() (string, func()) {
		t.Helper()
		rctx, cancel := context.WithCancel(ctx)
		out := &logtest.Buffer{}
		done := make(chan error, 1)
		go func() {
			done <- cmdRun(rctx, []string{"--data", data, "--clickhouse", dsn, "--nats-listen", "127.0.0.1:-1", "--http", "127.0.0.1:0",
				"--partitions", "2", "--ladders", dir, "--tokens", "acme-token-0123456789=acme,globex-token-0123456789=globex",
				"--sweep", "1h", "--compact-every", "0", "--log-level", "error"}, out)
		}()
		stopped := false
		stop := func() {
			if !stopped {
				stopped = true
				cancel()
				if err := <-done; err != nil {
					t.Errorf("run: %v", err)
				}
			}
		}
		t.Cleanup(stop)
		re := regexp.MustCompile(`API at (http://\S+/)v1/`)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			if m := re.FindStringSubmatch(out.String()); m != nil {
				return m[1], stop
			}
			select {
			case err := <-done:
				stopped = true
				t.Fatalf("run stopped: %v", err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatal("run did not start")
			}
		}
	}
	funnel := func(url, tenant string) (int, string, []string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"v1/funnel?from=2025-01-01&to=2027-01-01", nil)
		req.Header.Set("Authorization", "Bearer "+tokens[tenant])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			Definitions struct {
				LadderVersion string   `json:"ladder_version"`
				Ladder        []string `json:"ladder"`
			}
			Steps []struct {
				FromStep string `json:"from_step"`
			}
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatalf("funnel of %s: %v\n%s", tenant, err, b)
			}
			if len(body.Steps) != len(body.Definitions.Ladder)-1 || len(body.Steps) > 0 && body.Steps[0].FromStep != body.Definitions.Ladder[0] {
				t.Errorf("funnel of %s answers %d steps from %+v for ladder %v", tenant, len(body.Steps), body.Steps, body.Definitions.Ladder)
			}
		}
		return resp.StatusCode, body.Definitions.LadderVersion, body.Definitions.Ladder
	}
	st, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// derivedWith waits until every opportunity of tenant has a state
	// derived with l and every current derived event of tenant names l's
	// steps (a replay writes a chunk's states before its derived events).
	opps := map[string]int{}
	derivedWith := func(tenant string, l *ladder.Ladder) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
			var n uint64
			if err := st.Conn().QueryRow(ctx, `SELECT count() FROM opportunity_state FINAL WHERE tenant = ? AND ladder_version = ?`, tenant, l.Version).Scan(&n); err != nil {
				t.Fatal(err)
			}
			ds, err := st.CurrentDerived(ctx, tenant)
			if err != nil {
				t.Fatal(err)
			}
			bad := ""
			for _, d := range ds {
				if d.LadderVersion != l.Version || d.StepIndex > 0 && l.Key(d.StepIndex) != d.Step {
					bad = fmt.Sprintf("derived event %s %s: step %d %q of ladder %s", d.OpportunityID, d.Type, d.StepIndex, d.Step, d.LadderVersion)
				}
			}
			if int(n) == opps[tenant] && len(ds) > 0 && bad == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %s's %d opportunities derived with ladder %s, %d derived events; %s", n, tenant, opps[tenant], l.Version, len(ds), bad)
			}
		}
	}

	url, stop := start()
	info, err := readRunInfo(data)
	if err != nil || info.Ladders != dir {
		t.Fatalf("run info: %+v, %v", info, err)
	}
	nc, js, err := bus.Connect(ctx, info.NATS, nil)
	if err != nil {
		t.Fatal(err)
	}
	pub := bus.NewPublisher(js, 2)
	for i, tenant := range []string{"acme", "globex"} {
		var evs []event.Event
		ids := map[string]bool{}
		cfg := gen.Config{Seed: int64(21 + i), Opportunities: 20, Tenant: tenant, End: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
		if err := gen.Generate(ctx, cfg, func(ev event.Event) error {
			evs = append(evs, ev)
			if ev.OpportunityID != "" {
				ids[ev.OpportunityID] = true
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		opps[tenant] = len(ids)
		if err := pub.PublishBatch(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	nc.Close()
	derivedWith("acme", acme1)
	derivedWith("globex", def)
	if acme1.Len() == def.Len() {
		t.Fatal("the ladders have as many steps")
	}
	for tenant, l := range map[string]*ladder.Ladder{"acme": acme1, "globex": def} {
		code, version, steps := funnel(url, tenant)
		if code != http.StatusOK || version != l.Version || len(steps) != l.Len() || steps[0] != l.Key(1) {
			t.Errorf("funnel of %s: %d, ladder %s %v; want ladder %s", tenant, code, version, steps, l.Version)
		}
	}
	// report, given only --data, answers each tenant in its ladder of run.
	for tenant, l := range map[string]*ladder.Ladder{"acme": acme1, "globex": def} {
		out, err := runReport("funnel", "--tenant", tenant, "--data", data, "--clickhouse", dsn, "--from", "2025-01-01", "--to", "2027-01-01", "--format", "json", "--log-level", "error")
		var got struct {
			Definitions struct {
				LadderVersion string `json:"ladder_version"`
			}
		}
		if err == nil {
			err = json.Unmarshal([]byte(out), &got)
		}
		if err != nil || got.Definitions.LadderVersion != l.Version {
			t.Errorf("report funnel of %s: ladder %q, %v; want %s", tenant, got.Definitions.LadderVersion, err, l.Version)
		}
	}
	stop()

	// acme's ladder changes while run is stopped.
	globexBefore := storedRows(t, st, "globex")
	acme2 := writeAcme("acme-2", "intro")
	url, _ = start()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		code, version, steps := funnel(url, "acme")
		if code == http.StatusOK {
			if version != "acme-2" || !slices.Equal(steps, []string{"intro", "qualify", "propose", "decide"}) {
				t.Errorf("acme after its ladder changed: ladder %s %v", version, steps)
			}
			break
		}
		if code != http.StatusConflict || time.Now().After(deadline) {
			t.Fatalf("acme while replayed: %d", code)
		}
	}
	derivedWith("acme", acme2)
	if code, version, _ := funnel(url, "globex"); code != http.StatusOK || version != def.Version {
		t.Errorf("globex after acme's change: %d, ladder %s", code, version)
	}
	if after := storedRows(t, st, "globex"); !maps.Equal(after, globexBefore) {
		t.Errorf("globex's stored rows changed when acme's ladder did: %d rows before, %d after", len(globexBefore), len(after))
	}
}

// storedRows returns every stored derived event and opportunity state row
// of a tenant, superseded ones included, with its version.
func storedRows(t *testing.T, st *store.Store, tenant string) map[string]uint64 {
	t.Helper()
	rows, err := st.Conn().Query(context.Background(), `SELECT concat('derived ', id, ' ', toString(version)), version FROM derived_events WHERE tenant = ?
UNION ALL SELECT concat('state ', opportunity_id, ' ', toString(version)), version FROM opportunity_state WHERE tenant = ?`, tenant, tenant)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var k string
		var v uint64
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
