// Package apitest asks every endpoint of the API for tests that compare
// two databases' answers (the upgrade tests of internal/store and
// internal/clustertest).
package apitest

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/api"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
)

// Answers asks every API endpoint (and the breakdowns by the free
// attribute region) for tenant with the period [from, to) and asOf,
// through api.Query as the API and the CLI do, with the default ladder,
// and returns the answers as JSON by query. A forecast's model.fitted_at,
// a clock reading, is left out. An error fails t.
func Answers(t testing.TB, ctx context.Context, conn driver.Conn, tenant string, from, to, asOf time.Time) map[string]string {
	t.Helper()
	q, f, l := metrics.New(conn), forecast.New(conn), ladder.Default()
	out := map[string]string{}
	ask := func(name string, v url.Values) {
		key := name + "?" + v.Encode()
		res, err := api.Query(ctx, q, f, l, name, tenant, v)
		if err != nil {
			t.Errorf("%s: %v", key, err)
			return
		}
		if r, ok := res.(*forecast.Result); ok && r.Model != nil {
			r.Model.FittedAt = time.Time{}
		}
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		out[key] = string(b)
	}
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
		ask(e.Name, v)
		if slices.ContainsFunc(e.Params, func(p api.Param) bool { return p.Name == "by" && strings.Contains(p.Doc, "attr.KEY") }) {
			v.Set("by", "attr.region")
			ask(e.Name, v)
		}
	}
	return out
}
