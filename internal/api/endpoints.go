package api

import (
	"context"
	"fmt"
	"net/url"

	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/ladder"
	"github.com/commitflow/commitflow/internal/metrics"
)

// Endpoint describes one metrics endpoint: its name (as in `commitflow
// report NAME`), its path and its query parameters.
type Endpoint struct {
	Name   string
	Path   string
	Doc    string
	Params []Param
	binding
}

// binding ties an endpoint to its parser and its answer's type.
type binding struct {
	// prepare parses the endpoint's parameters for a scope and returns
	// what answers them.
	prepare func(v url.Values, s Scope) (computation, error)
	// newAnswer returns a new answer to decode into.
	newAnswer func() any
}

// Scope is the tenant and ladder a query is for. The zero Scope parses
// parameters without them (see Check).
type Scope struct {
	Tenant string
	Ladder *ladder.Ladder
}

// steps are the keys of the scope's ladder steps; nil without a ladder.
func (s Scope) steps() []string {
	if s.Ladder == nil {
		return nil
	}
	steps := make([]string, len(s.Ladder.Steps))
	for i, st := range s.Ladder.Steps {
		steps[i] = st.Key
	}
	return steps
}

// version is the version of the scope's ladder; "" without one.
func (s Scope) version() string {
	if s.Ladder == nil {
		return ""
	}
	return s.Ladder.Version
}

// computation computes the answer of a parsed query.
type computation func(ctx context.Context, q Metrics, f Forecasts) (any, error)

// metric binds a metrics endpoint's parser to the Querier method that
// answers it.
func metric[Q, R any](parse func(url.Values, Scope) (Q, error), query func(Metrics, context.Context, Q) (*R, error)) binding {
	prepare := func(v url.Values, s Scope) (computation, error) {
		mq, err := parse(v, s)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, q Metrics, _ Forecasts) (any, error) {
			res, err := query(q, ctx, mq)
			if err != nil {
				return nil, err
			}
			return res, nil
		}, nil
	}
	return binding{prepare, func() any { return new(R) }}
}

// Endpoints lists the metrics endpoints in a fixed order.
func Endpoints() []Endpoint {
	paramFrom := Param{"from", "start of the period, inclusive (YYYY-MM-DD or RFC 3339)"}
	paramTo := Param{"to", "end of the period, exclusive (YYYY-MM-DD or RFC 3339)"}
	paramAsOf := Param{"as_of", "answer as it would have been at this time (YYYY-MM-DD or RFC 3339); default now"}
	paramPage := Param{"page", "1-based page of the deal list; default 1"}
	paramPerPage := Param{"page_size", fmt.Sprintf("deals per page, 1..%d; default %d", metrics.MaxPageSize, metrics.DefaultPageSize)}
	paramTop := Param{"top", fmt.Sprintf("with by: keep the N values with the most deals in groups of their own and merge the others into one group marked other; 1..%d or all; default %d", maxTop, DefaultTop)}
	paramCurrency := Param{"currency", "convert the amounts to this ISO 4217 currency with the operator's rate table (--fx-rates); default its base currency; refused without one"}
	return []Endpoint{
		{"funnel", "/v1/funnel", "stage conversion K→K+1 of the cohorts that reached each step in [from, to)", []Param{
			paramFrom, paramTo, paramAsOf,
			{"window_days", fmt.Sprintf("count a conversion only within this many days, 0..%d; default none", metrics.MaxWindowDays)},
			{"by", "break down by owner, team, segment, source, product, or attr.KEY (a free attribute)"},
			paramTop,
			{"interval", "trend: group cohorts by week, month or quarter"},
			paramCurrency,
		}, metric(ParseFunnel, Metrics.Funnel)},
		{"stalls", "/v1/stalls", "open deals by highest step and days since the last commitment; stalled deals", []Param{
			paramAsOf, paramPage, paramPerPage, paramCurrency,
		}, metric(ParseStalls, Metrics.Stalls)},
		{"missed", "/v1/missed", "missed commitments by expected step, reason and owner; miss rates", []Param{
			paramFrom, paramTo, paramAsOf, paramCurrency,
		}, metric(ParseMissed, Metrics.Missed)},
		{"movement", "/v1/movement", "how the pipeline moved between from and to: new, advanced, regressed, stalled, pulled in, pushed out, won, lost", []Param{
			paramFrom, paramTo, paramAsOf, paramCurrency,
		}, metric(ParseMovement, Metrics.Movement)},
		{"forecast", "/v1/forecast", "commitment-weighted pipeline beside the CRM weighting; back-test", forecastParams(paramAsOf, paramCurrency), binding{prepareForecast, func() any { return new(forecast.Result) }}},
		{"cycle-time", "/v1/cycle-time", "days from creation (or from reaching a step) to close of the deals won, lost and closed in [from, to)", []Param{
			paramFrom, paramTo, paramAsOf,
			{"from_step", "start at reaching this ladder step (its key); default the deal's creation"},
			{"by", "break down by owner, team, segment, source, product, or attr.KEY (a free attribute)"},
			paramTop,
			{"interval", "group the deals by the week, month or quarter they closed in"},
		}, metric(ParseCycleTime, Metrics.CycleTime)},
		{"stage-history", "/v1/stage-history", "CRM stage history: entries into each CRM stage, re-entries, backward moves, the stage-to-stage transition matrix, time in stage", []Param{
			paramAsOf,
			{"by", "break down by owner, team, segment, source, product, or attr.KEY (a free attribute), as of as_of"},
			paramTop,
		}, metric(ParseStageHistory, Metrics.StageHistory)},
	}
}

// endpointParams returns the parameters of the named endpoint.
func endpointParams(name string) []Param {
	for _, e := range Endpoints() {
		if e.Name == name {
			return e.Params
		}
	}
	return nil
}

// endpoint returns the named metrics endpoint.
func endpoint(name string) (Endpoint, error) {
	for _, e := range Endpoints() {
		if e.Name == name {
			return e, nil
		}
	}
	return Endpoint{}, fmt.Errorf("api: unknown endpoint %q", name)
}

// ParseFunnel parses the parameters of GET /v1/funnel for the scope s.
func ParseFunnel(v url.Values, s Scope) (metrics.FunnelQuery, error) {
	p := newParser(v, endpointParams("funnel"))
	asOf := p.asOf()
	from, to := p.period()
	var window *int
	if p.str("window_days") != "" {
		w := p.integer("window_days", 0, 0, metrics.MaxWindowDays)
		window = &w
	}
	by, top, interval := p.breakdown()
	q := metrics.FunnelQuery{
		Tenant: s.Tenant, Ladder: s.steps(), LadderVersion: s.version(), AsOf: asOf, From: from, To: to,
		WindowDays: window, By: by, Top: top, Interval: interval, Currency: p.currency("currency"),
	}
	return q, p.err
}

// ParseStalls parses the parameters of GET /v1/stalls for the scope s.
func ParseStalls(v url.Values, s Scope) (metrics.StallsQuery, error) {
	p := newParser(v, endpointParams("stalls"))
	q := metrics.StallsQuery{
		Tenant: s.Tenant, Ladder: s.steps(), LadderVersion: s.version(), AsOf: p.asOf(),
		Page:     p.integer("page", 1, 1, maxPage),
		PageSize: p.integer("page_size", metrics.DefaultPageSize, 1, metrics.MaxPageSize),
		Currency: p.currency("currency"),
	}
	return q, p.err
}

// ParseMissed parses the parameters of GET /v1/missed for the scope s.
func ParseMissed(v url.Values, s Scope) (metrics.MissedQuery, error) {
	p := newParser(v, endpointParams("missed"))
	from, to := p.period()
	q := metrics.MissedQuery{Tenant: s.Tenant, Ladder: s.steps(), LadderVersion: s.version(), AsOf: p.asOf(), From: from, To: to, Currency: p.currency("currency")}
	return q, p.err
}

// ParseMovement parses the parameters of GET /v1/movement for the scope s.
func ParseMovement(v url.Values, s Scope) (metrics.MovementQuery, error) {
	p := newParser(v, endpointParams("movement"))
	from, to := p.period()
	q := metrics.MovementQuery{Tenant: s.Tenant, Ladder: s.steps(), LadderVersion: s.version(), AsOf: p.asOf(), From: from, To: to, Currency: p.currency("currency")}
	return q, p.err
}

// ParseCycleTime parses the parameters of GET /v1/cycle-time for the
// scope s; from_step is checked against the ladder by the query.
func ParseCycleTime(v url.Values, s Scope) (metrics.CycleQuery, error) {
	p := newParser(v, endpointParams("cycle-time"))
	from, to := p.period()
	by, top, interval := p.breakdown()
	q := metrics.CycleQuery{
		Tenant: s.Tenant, Ladder: s.steps(), LadderVersion: s.version(), AsOf: p.asOf(), From: from, To: to,
		FromStep: p.str("from_step"), By: by, Top: top, Interval: interval,
	}
	return q, p.err
}

// ParseStageHistory parses the parameters of GET /v1/stage-history for
// the scope s.
func ParseStageHistory(v url.Values, s Scope) (metrics.StageHistoryQuery, error) {
	p := newParser(v, endpointParams("stage-history"))
	q := metrics.StageHistoryQuery{
		Tenant: s.Tenant, Ladder: s.steps(), LadderVersion: s.version(), AsOf: p.asOf(),
		By:  p.by("by"),
		Top: p.top("top"),
	}
	if l := s.Ladder; l != nil {
		// CRM stages are ordered by the step the ladder maps them to in
		// any pipeline ("*"): states do not record the pipeline.
		q.StageStep = func(stage string) int { step, _ := l.StageStep("*", stage); return step }
	}
	return q, p.err
}

// DefaultTop is how many By values a breakdown keeps in groups of their
// own unless top says otherwise: a dashboard shows a few dozen, and an
// answer with every value of a large team for every period runs to tens
// of megabytes.
const DefaultTop = 20

// maxTop bounds top: above it, ask for all.
const maxTop = 10_000

// maxPage bounds page so that page*page_size cannot overflow.
const maxPage = 1_000_000

// Check parses v for the named endpoint without running it, so that a
// caller can refuse bad parameters before connecting anywhere.
func Check(name string, v url.Values) error {
	e, err := endpoint(name)
	if err != nil {
		return err
	}
	_, err = e.prepare(v, Scope{})
	return err
}

// Query parses v for the named endpoint and runs it for tenant with the
// ladder l. The API and the CLI both answer through it. It refuses, with a
// *metrics.LadderError, a tenant whose opportunity states were not all
// derived with l: their step indexes would be read as l's steps. The
// check runs beside the answer's queries, so that it adds no latency; a
// failed check cancels them.
func Query(ctx context.Context, q Metrics, f Forecasts, l *ladder.Ladder, name, tenant string, v url.Values) (any, error) {
	e, err := endpoint(name)
	if err != nil {
		return nil, err
	}
	run, err := e.prepare(v, Scope{Tenant: tenant, Ladder: l})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	checked := make(chan error, 1)
	go func() {
		err := q.CheckLadder(ctx, tenant, l.Version)
		if err != nil {
			cancel(err)
		}
		checked <- err
	}()
	res, err := run(ctx, q, f)
	if cerr := <-checked; cerr != nil {
		return nil, cerr
	}
	return res, err
}

// run answers one endpoint for the server.
func (s *server) run(ctx context.Context, name, tenant string, v url.Values) (any, error) {
	return Query(ctx, s.q, s.f, s.cfg.Ladder.For(tenant), name, tenant, v)
}
