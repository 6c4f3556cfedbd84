//go:build cluster

package clustertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/chtest"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/pipeline"
	"github.com/commitflow/commitflow/internal/store"
)

// The single-server reference: the published events, one copy of each,
// stored on a private ClickHouse server of their own and derived there by
// pipeline.Replay (the batch path of `commitflow replay`). Derived events
// are a pure function of the input, so the cluster's derived_events,
// opportunity_state and API answers must equal the reference's.

// eventKey is the key of an input event.
type eventKey struct{ tenant, opportunity, source, id string }

// reference stores one copy of each of evs on a private single server and
// derives them; it returns the reference's connection.
func reference(t *testing.T, ctx context.Context, evs []event.Event) driver.Conn {
	t.Helper()
	ch := chtest.Server(t)
	st, err := store.Open(ctx, fmt.Sprintf("clickhouse://127.0.0.1:%d/reference", ch.TCPPort()), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[eventKey]bool{}
	var rows []store.RawEvent
	for i, ev := range evs {
		k := eventKey{ev.Tenant, ev.OpportunityID, ev.Source, ev.ID}
		if seen[k] {
			continue
		}
		seen[k] = true
		data, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, store.RawEvent{Tenant: ev.Tenant, OpportunityID: ev.OpportunityID, Source: ev.Source, EventID: ev.ID,
			Type: string(ev.Type), OccurredAt: ev.OccurredAt, ReceivedAt: ev.ReceivedAt, StreamSeq: uint64(i + 1), Payload: data})
	}
	if err := st.InsertEvents(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.Replay(ctx, st, ladder.Default(), pipeline.ReplayOptions{Now: time.Now()}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("reference: replay: %v", err)
	}
	return st.Conn()
}

// compareDerivation compares derived_events (current ones) and
// opportunity_state of tenant between the cluster and the reference, row
// by row and column by column except version; it reports each difference
// and returns the number of deals that differ.
func compareDerivation(t *testing.T, ctx context.Context, cluster, ref driver.Conn, tenant string) int {
	t.Helper()
	bad := map[string]bool{}
	for _, c := range []struct{ table, where, key string }{
		{"derived_events", "AND retracted = 0", "opportunity_id, id"},
		{"opportunity_state", "", "opportunity_id"},
	} {
		q := fmt.Sprintf("SELECT * FROM %s FINAL WHERE tenant = ? %s ORDER BY %s", c.table, c.where, c.key)
		a, err := tableRows(ctx, cluster, q, tenant)
		if err != nil {
			t.Fatal(err)
		}
		b, err := tableRows(ctx, ref, q, tenant)
		if err != nil {
			t.Fatal(err)
		}
		nkey := strings.Count(c.key, ",") + 1
		byKey := func(rows []map[string]string) map[string]map[string]string {
			m := map[string]map[string]string{}
			for _, r := range rows {
				k := r["opportunity_id"]
				if nkey > 1 {
					k += " " + r["id"]
				}
				m[k] = r
			}
			return m
		}
		ma, mb := byKey(a), byKey(b)
		var examples []string
		note := func(opp, format string, args ...any) {
			bad[opp] = true
			if len(examples) < 5 {
				examples = append(examples, fmt.Sprintf(format, args...))
			}
		}
		for k, ra := range ma {
			rb, ok := mb[k]
			if !ok {
				note(ra["opportunity_id"], "%s %s: only on the cluster", c.table, k)
				continue
			}
			for col, va := range ra {
				if col != "version" && va != rb[col] {
					note(ra["opportunity_id"], "%s %s: %s %.120s != %.120s (cluster != reference)", c.table, k, col, va, rb[col])
				}
			}
		}
		for k, rb := range mb {
			if _, ok := ma[k]; !ok {
				note(rb["opportunity_id"], "%s %s: only in the reference", c.table, k)
			}
		}
		t.Logf("%s: %d rows on the cluster, %d in the reference", c.table, len(a), len(b))
		if len(examples) > 0 {
			t.Errorf("%s differs from the single-server reference, e.g.:\n%s", c.table, strings.Join(examples, "\n"))
		}
	}
	return len(bad)
}

// tableRows reads the rows of q as text, by column name.
func tableRows(ctx context.Context, conn driver.Conn, q string, args ...any) ([]map[string]string, error) {
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	names := rows.Columns()
	ptrs := make([]any, len(names))
	for i, ct := range rows.ColumnTypes() {
		ptrs[i] = reflect.New(ct.ScanType()).Interface()
	}
	var out []map[string]string
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		r := make(map[string]string, len(names))
		for i, p := range ptrs {
			v := reflect.ValueOf(p).Elem().Interface()
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC()
			}
			r[names[i]] = fmt.Sprint(v)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// compareAPI asks every metrics endpoint of the API, for tenant, with the
// same period and as_of, of commitflow run at base (with token) and of an
// API over the reference, and reports the answers that differ. It returns
// how many differ.
func compareAPI(t *testing.T, ctx context.Context, base, token string, ref driver.Conn, tenant string, from, to, asOf time.Time) int {
	t.Helper()
	refAPI := httptest.NewServer(api.New(api.Config{Open: true}, metrics.New(ref), forecast.New(ref), nil))
	defer refAPI.Close()
	differ := 0
	for _, e := range api.Endpoints() {
		v := url.Values{}
		for _, p := range e.Params {
			switch p.Name {
			case "from":
				v.Set("from", from.Format(time.DateOnly))
			case "to":
				v.Set("to", to.Format(time.DateOnly))
			case "as_of":
				v.Set("as_of", asOf.Format(time.DateOnly))
			}
		}
		got, err := getJSON(ctx, base+e.Path+"?"+v.Encode(), token)
		if err != nil {
			t.Errorf("%s on the cluster: %v", e.Path, err)
			differ++
			continue
		}
		v.Set("tenant", tenant)
		want, err := getJSON(ctx, refAPI.URL+e.Path+"?"+v.Encode(), "")
		if err != nil {
			t.Errorf("%s on the reference: %v", e.Path, err)
			differ++
			continue
		}
		if !reflect.DeepEqual(got, want) {
			differ++
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			t.Errorf("%s: the cluster answers\n%.600s\nthe single-server reference\n%.600s", e.Path, g, w)
		}
	}
	t.Logf("API: %d of %d answers differ from the single-server reference", differ, len(api.Endpoints()))
	return differ
}

// getJSON GETs u with a bearer token (none if empty) and decodes the JSON
// answer; any status but 200 is an error.
func getJSON(ctx context.Context, u, token string) (any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", resp.Status, body)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, fmt.Errorf("%w: %.200s", err, body)
	}
	// A forecast's model.fitted_at is a clock reading, not a number of
	// the answer.
	if m, ok := v.(map[string]any); ok {
		if model, ok := m["model"].(map[string]any); ok {
			delete(model, "fitted_at")
		}
	}
	return v, nil
}
