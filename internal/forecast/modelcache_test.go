package forecast

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/commitflow/commitflow/internal/bus"
	"github.com/commitflow/commitflow/internal/bustest"
	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/promtest"
	"github.com/commitflow/commitflow/internal/store"
	"github.com/commitflow/commitflow/internal/store/storetest"
	"github.com/commitflow/commitflow/internal/tenantcache"
	"github.com/commitflow/commitflow/internal/timetest"
)

// openStore returns a fresh, migrated database holding rows, and a
// Forecaster without a model cache on it.
func openStore(t *testing.T, rows []store.DerivedRow) (*store.Store, *Forecaster) {
	t.Helper()
	st := storetest.Open(t, store.Options{})
	if err := st.InsertDerivedWithStates(context.Background(), rows, synthSteps); err != nil {
		t.Fatal(err)
	}
	return st, New(st.Conn())
}

// answerJSON is r's JSON without the time the model was fitted and the
// date up to which it saw history.
func answerJSON(t *testing.T, r *Result) string {
	t.Helper()
	c := *r
	m := *r.Model
	m.FittedAt, m.HistoryTo = time.Time{}, time.Time{}
	c.Model = &m
	b, err := json.Marshal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestModelCacheAnswersAsFreshFit: with a model cache, the first answer
// (fitted) and the second (the kept model) equal the answer of a
// Forecaster without one, for forecasts, breakdowns and back-tests; the
// queries that differ only in what is done with the model (breakdowns,
// close period, draws, currency) share one fit.
func TestModelCacheAnswersAsFreshFit(t *testing.T) {
	ctx := context.Background()
	_, plain := openStore(t, synthRows(11, 1500))
	mc := NewModelCache(ModelCacheOptions{})
	cached := NewWithOptions(plain.conn, Options{Models: mc})
	bt := synthAsOf.AddDate(0, -4, 0)
	queries := []struct {
		q    Query
		fits int // fits so far after it
	}{
		{Query{Tenant: "acme", AsOf: synthAsOf, LadderVersion: "v1"}, 1},
		{Query{Tenant: "acme", AsOf: synthAsOf, LadderVersion: "v1", By: []string{ByTeam}, ClosePeriod: PeriodQuarter, Draws: 300}, 1},
		{Query{Tenant: "acme", AsOf: synthAsOf, LadderVersion: "v1", By: []string{ByForecastCategory, "attr.region"}}, 1},
		{Query{Tenant: "acme", AsOf: synthAsOf, LadderVersion: "v2"}, 2},
		{Query{Tenant: "acme", AsOf: synthAsOf, HorizonDays: 90, PriorStrength: 5}, 3},
		{Query{Tenant: "acme", AsOf: synthAsOf, ReferenceMonths: 6}, 4},
		{Query{Tenant: "acme", AsOf: synthAsOf.Add(time.Hour)}, 5}, // a past date: its own model
		{Query{Tenant: "acme", AsOf: synthAsOf, Backtest: &bt}, 6},
		{Query{Tenant: "acme", AsOf: synthAsOf.AddDate(0, 1, 0), Backtest: &bt}, 6}, // the same model at bt
		{Query{Tenant: "other", AsOf: synthAsOf}, 7},
	}
	for _, tc := range queries {
		want, err := plain.Forecast(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			got, err := cached.Forecast(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := answerJSON(t, got), answerJSON(t, want); g != w {
				t.Errorf("query %+v, answer %d: differs from the uncached one\n got  %.400s\n want %.400s", tc.q, i, g, w)
			}
			if !got.Model.HistoryTo.Equal(want.Model.HistoryTo) {
				t.Errorf("query %+v, answer %d: history_to %v, want %v", tc.q, i, got.Model.HistoryTo, want.Model.HistoryTo)
			}
		}
		if n := mc.Fits(); n != tc.fits {
			t.Errorf("query %+v: %d fits so far, want %d", tc.q, n, tc.fits)
		}
	}
}

// TestModelCacheKeepsTodaysModelForTheDay: a model fitted for a date of
// the day of its fit holds for the later dates of that day (the same
// answer as a fresh fit, the history having nothing after it) but not for
// an earlier date, the next day, or a date whose fit followed a close
// within Settle.
func TestModelCacheKeepsTodaysModelForTheDay(t *testing.T) {
	ctx := context.Background()
	_, plain := openStore(t, synthRows(5, 600))
	mc := NewModelCache(ModelCacheOptions{})
	clock := time.Date(2025, 6, 10, 10, 0, 0, 0, time.UTC) // after all the rows
	mc.now = func() time.Time { return clock }
	cached := NewWithOptions(plain.conn, Options{Models: mc})
	for _, tc := range []struct {
		name string
		at   time.Time
		fits int
	}{
		{"now", clock, 1},
		{"later that day", clock.Add(5 * time.Hour), 1},
		{"earlier that day", clock.Add(-time.Hour), 2},
		{"the next day", clock.Add(20 * time.Hour), 3},
	} {
		q := Query{Tenant: "acme", AsOf: tc.at}
		got, err := cached.Forecast(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want, err := plain.Forecast(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := answerJSON(t, got), answerJSON(t, want); g != w {
			t.Errorf("%s: differs from the uncached answer", tc.name)
		}
		if n := mc.Fits(); n != tc.fits {
			t.Errorf("%s: %d fits so far, want %d", tc.name, n, tc.fits)
		}
		if tc.name == "later that day" && !got.Model.HistoryTo.Equal(clock) {
			t.Errorf("%s: history_to %v, want the fit's %v", tc.name, got.Model.HistoryTo, clock)
		}
	}

	// A close signalled within Settle before the forecast date: the fit
	// may not have seen it; the model is used but not kept.
	mc.Changed("acme", derive.DealClosed, time.Time{}, time.Time{})
	clock = clock.Add(2 * time.Second)
	q := Query{Tenant: "acme", AsOf: clock}
	for range 2 {
		if _, err := cached.Forecast(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if n := mc.Fits(); n != 5 {
		t.Errorf("after a close just before: %d fits, want 5 (not kept)", n)
	}
}

// TestModelCacheFollowsHistory runs the signals through embedded NATS,
// with today's model (kept for the rest of the day): a late change to the
// states at the reference dates, or a close derived after the fit (dated
// today), makes the next forecast refit, and the answer is then the
// uncached one with the new rows; a change of today to an open deal does
// not. Before a signal, the kept model has not seen the new rows.
func TestModelCacheFollowsHistory(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc, _ := bustest.Connect(t, bustest.Server(t).ClientURL())
	st, plain := openStore(t, synthRows(5, 600))
	mc := NewModelCache(ModelCacheOptions{Settle: time.Minute})
	clock := time.Date(2025, 6, 10, 10, 0, 0, 0, time.UTC) // after all the rows
	mc.now = func() time.Time { return clock }
	if err := mc.Follow(ctx, nc); err != nil {
		t.Fatal(err)
	}
	cached := NewWithOptions(plain.conn, Options{Models: mc})
	check := func(what string, at time.Time, fits int, same bool) {
		t.Helper()
		q := Query{Tenant: "acme", AsOf: at}
		got, err := cached.Forecast(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		want, err := plain.Forecast(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := answerJSON(t, got), answerJSON(t, want); (g == w) != same {
			t.Errorf("%s: answer equal to the uncached one: %v, want %v", what, g == w, same)
		}
		if n := mc.Fits(); n != fits {
			t.Errorf("%s: %d fits so far, want %d", what, n, fits)
		}
	}
	// signal publishes d as the derive worker does and waits until the
	// cache has handled it.
	signal := func(d derive.Derived) {
		t.Helper()
		body, err := json.Marshal(map[string]any{
			"id": d.ID, "type": d.Type, "tenant": d.Tenant, "opportunity_id": d.OpportunityID,
			"occurred_at": d.OccurredAt.UTC(), "seq": 0, "amount": d.Snapshot.Amount, "detail": d.Detail,
			"ladder_version": d.LadderVersion, "version": 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish(bus.DerivedPrefix+d.Tenant+"."+bus.TypeToken(event.Type(d.Type)), body); err != nil {
			t.Fatal(err)
		}
		// A close of another tenant follows it: once that is seen, the
		// first has been handled (one subscription, in order).
		marks := mc.models.Changes("mark")
		if err := nc.Publish(bus.DerivedPrefix+"mark.deal_closed", []byte("{}")); err != nil {
			t.Fatal(err)
		}
		timetest.WaitFor(t, "tenant mark's close seen", func() bool { return mc.models.Changes("mark") > marks })
	}
	insert := func(d derive.Derived) {
		t.Helper()
		if err := st.InsertDerivedWithStates(ctx, []store.DerivedRow{{Derived: d, Version: 1}}, synthSteps); err != nil {
			t.Fatal(err)
		}
	}
	check("now", clock, 1, true)
	check("later today", clock.Add(time.Hour), 1, true)

	// A deal created two years ago, derived now: a late change.
	snap := derive.Snapshot{Amount: 50000, Stage: "stage3", Probability: 0.3, Status: "open", OwnerID: "owner01", Team: "team1", Segment: "ent"}
	created := time.Date(2023, 5, 3, 9, 0, 0, 0, time.UTC)
	insert(derive.Derived{Tenant: "acme", OpportunityID: "late1", ID: "late1-1", Type: derive.DealCreated, OccurredAt: created, Snapshot: snap, LadderVersion: "v1"})
	gained := derive.Derived{Tenant: "acme", OpportunityID: "late1", ID: "late1-2", Type: derive.CommitmentGained, OccurredAt: created.AddDate(0, 1, 0), StepIndex: 3, Step: "step3", Snapshot: snap, LadderVersion: "v1"}
	insert(gained)
	check("a late deal inserted, not yet signalled", clock.Add(time.Hour), 1, false)
	signal(gained)
	check("after its signal", clock.Add(time.Hour), 2, true)

	// Today's interaction on an open deal: no refit.
	today := derive.Derived{Tenant: "acme", OpportunityID: "late1", ID: "late1-3", Type: derive.InteractionHeld, OccurredAt: clock.Add(5 * time.Minute), Snapshot: snap, LadderVersion: "v1"}
	insert(today)
	signal(today)
	check("after today's interaction", clock.Add(time.Hour), 2, true)

	// The deal is won today, after the model's history_to: a refit.
	won := snap
	won.Status, won.Probability = "won", 1
	closed := derive.Derived{Tenant: "acme", OpportunityID: "late1", ID: "late1-4", Type: derive.DealClosed, OccurredAt: clock.Add(90 * time.Minute), Snapshot: won, LadderVersion: "v1"}
	insert(closed)
	check("won, not yet signalled", clock.Add(2*time.Hour), 2, false)
	signal(closed)
	check("after its close's signal", clock.Add(2*time.Hour), 3, true)

	// A late commitment on it (a change to its state at the reference
	// dates): a refit.
	gain := derive.Derived{Tenant: "acme", OpportunityID: "late1", ID: "late1-5", Type: derive.CommitmentGained, OccurredAt: created.AddDate(1, 2, 0), StepIndex: 6, Step: "step6", Snapshot: snap, LadderVersion: "v1"}
	insert(gain)
	signal(gain)
	check("after a late commitment", clock.Add(2*time.Hour), 4, true)
}

// TestModelCacheFitsOnce: identical forecasts at once fit one model, and
// every caller gets it.
func TestModelCacheFitsOnce(t *testing.T) {
	ctx := context.Background()
	_, plain := openStore(t, synthRows(5, 600))
	mc := NewModelCache(ModelCacheOptions{})
	cached := NewWithOptions(plain.conn, Options{Models: mc})
	const n = 8
	var wg sync.WaitGroup
	models := make([]*Model, n)
	for i := range n {
		wg.Go(func() {
			by := []string{ByOwner, ByTeam, ByClosePeriod}[i%3]
			r, err := cached.Forecast(ctx, Query{Tenant: "acme", AsOf: synthAsOf, By: []string{by}})
			if err != nil {
				t.Error(err)
				return
			}
			models[i] = r.Model
		})
	}
	wg.Wait()
	if f := mc.Fits(); f != 1 {
		t.Errorf("%d fits, want 1", f)
	}
	for i, m := range models {
		if m != models[0] {
			t.Errorf("caller %d got another model", i)
		}
	}
}

// TestModelCacheChanged: which derived events change the history a kept
// model learned from.
func TestModelCacheChanged(t *testing.T) {
	now := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	today, yesterday := now.Add(-time.Hour), now.AddDate(0, 0, -1)
	for _, tc := range []struct {
		kind              derive.Kind
		occurred, created time.Time
		changes           bool
	}{
		{derive.DealClosed, today, time.Time{}, true},
		{derive.DealReopened, today, time.Time{}, true},
		{derive.DealClosed, time.Time{}, time.Time{}, true},
		{derive.CommitmentGained, today, time.Time{}, false},
		{derive.DealUpdated, now.Truncate(24 * time.Hour), time.Time{}, false},
		{derive.CommitmentGained, yesterday, time.Time{}, true},
		{derive.InteractionHeld, now.Truncate(24 * time.Hour).Add(-time.Second), time.Time{}, true},
		{derive.DealCreated, today, time.Time{}, false},
		{derive.DealCreated, today, today, false},
		{derive.DealCreated, today, yesterday, true},
		{derive.DealCreated, yesterday, time.Time{}, true},
	} {
		if got := changesHistory(tc.kind, tc.occurred, tc.created, now); got != tc.changes {
			t.Errorf("%s at %v (created %v): changed %v, want %v", tc.kind, tc.occurred, tc.created, got, tc.changes)
		}
	}
}

// TestDerivedMessage reads the kind and dates of derived events' subjects
// and bodies.
func TestDerivedMessage(t *testing.T) {
	for _, tc := range []struct {
		subject, body     string
		tenant            string
		kind              derive.Kind
		occurred, created string
		ok                bool
	}{
		{"cf.derived.acme.deal_closed", `{}`, "acme", derive.DealClosed, "", "", true},
		{"cf.derived.glo.bex.deal_reopened", `{}`, "glo.bex", derive.DealReopened, "", "", true},
		{"cf.derived.acme.commitment_gained", `{"id":"x","type":"commitment.gained","tenant":"acme","opportunity_id":"o","occurred_at":"2026-12-04T10:11:12.5Z","seq":0}`,
			"acme", "", "2026-12-04T10:11:12.5Z", "", true},
		{"cf.derived.acme.deal_created", `{"occurred_at":"2026-12-05T10:00:00Z","detail":"{\"created_at\":\"2026-11-01T00:00:00Z\"}"}`,
			"acme", derive.DealCreated, "2026-12-05T10:00:00Z", "2026-11-01T00:00:00Z", true},
		{"cf.derived.acme.deal_created", `{"occurred_at":"2026-12-05T10:00:00Z"}`, "acme", derive.DealCreated, "2026-12-05T10:00:00Z", "", true},
		{"cf.derived.acme.commitment_gained", `{"occurred_at":"soon"}`, "acme", "", "", "", false},
		{"cf.derived.acme.commitment_gained", `{}`, "acme", "", "", "", false},
	} {
		tenant, token, ok := tenantcache.DerivedSubject(tc.subject)
		kind := derivedKinds[token]
		if !ok || tenant != tc.tenant || kind != tc.kind {
			t.Errorf("%s: %q %q %v", tc.subject, tenant, kind, ok)
		}
		occurred, created, ok := derivedDates(kind, []byte(tc.body))
		if ok != tc.ok || stamp(occurred) != tc.occurred || stamp(created) != tc.created {
			t.Errorf("%s %s: %q %q %v; want %q %q %v", tc.subject, tc.body, stamp(occurred), stamp(created), ok, tc.occurred, tc.created, tc.ok)
		}
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// TestModelCacheBound: past MaxModels the least recently used model is
// dropped; the metrics count the fits and evictions.
func TestModelCacheBound(t *testing.T) {
	ctx := context.Background()
	mc := NewModelCache(ModelCacheOptions{MaxModels: 2})
	reg := prometheus.NewRegistry()
	if err := mc.Instrument(reg); err != nil {
		t.Fatal(err)
	}
	fit := func(context.Context) (fitted, error) { return fitted{model: &Model{FittedAt: time.Now()}}, nil }
	get := func(days int) {
		t.Helper()
		p, err := validate(Query{Tenant: "acme", AsOf: synthAsOf.AddDate(0, 0, -days)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mc.model(ctx, p, fit); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct{ days, fits int }{{0, 1}, {1, 2}, {0, 2}, {2, 3}, {0, 3}, {1, 4}} {
		get(tc.days)
		if n := mc.Fits(); n != tc.fits {
			t.Errorf("step %d (%d days back): %d fits, want %d", i, tc.days, n, tc.fits)
		}
	}
	if n, _ := mc.models.Len(); n != 2 {
		t.Errorf("%d models kept, want 2", n)
	}
	for _, m := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"commitflow_forecast_model_cache_requests_total", []string{"outcome", "hit"}, 2},
		{"commitflow_forecast_model_cache_requests_total", []string{"outcome", "miss"}, 4},
		{"commitflow_forecast_model_cache_requests_total", []string{"outcome", "shared"}, 0},
		{"commitflow_forecast_model_cache_evictions_total", nil, 2},
		{"commitflow_forecast_model_cache_models", nil, 2},
	} {
		if got := promtest.Sum(t, reg, m.name, m.labels...); got != m.want {
			t.Errorf("%s %q: %v, want %v", m.name, m.labels, got, m.want)
		}
	}
}
