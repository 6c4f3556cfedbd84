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
		}},
		{"stalls", "/v1/stalls", "open deals by highest step and days since the last commitment; stalled deals", []Param{
			paramAsOf, paramPage, paramPerPage, paramCurrency,
		}},
		{"missed", "/v1/missed", "missed commitments by expected step, reason and owner; miss rates", []Param{
			paramFrom, paramTo, paramAsOf, paramCurrency,
		}},
		{"movement", "/v1/movement", "how the pipeline moved between from and to: new, advanced, regressed, stalled, pulled in, pushed out, won, lost", []Param{
			paramFrom, paramTo, paramAsOf, paramCurrency,
		}},
		{"forecast", "/v1/forecast", "commitment-weighted pipeline beside the CRM weighting; back-test", forecastParams(paramAsOf, paramCurrency)},
		{"cycle-time", "/v1/cycle-time", "days from creation (or from reaching a step) to close of the deals won, lost and closed in [from, to)", []Param{
			paramFrom, paramTo, paramAsOf,
			{"from_step", "start at reaching this ladder step (its key); default the deal's creation"},
			{"by", "break down by owner, team, segment, source, product, or attr.KEY (a free attribute)"},
			paramTop,
			{"interval", "group the deals by the week, month or quarter they closed in"},
		}},
		{"stage-history", "/v1/stage-history", "CRM stage history: entries into each CRM stage, re-entries, backward moves, the stage-to-stage transition matrix, time in stage", []Param{
			paramAsOf,
			{"by", "break down by owner, team, segment, source, product, or attr.KEY (a free attribute), as of as_of"},
			paramTop,
		}},
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

// ParseFunnel parses the parameters of GET /v1/funnel. Tenant and ladder
// are left for the caller (see Query).
func ParseFunnel(v url.Values) (metrics.FunnelQuery, error) {
	p := newParser(v, endpointParams("funnel"))
	q := metrics.FunnelQuery{
		AsOf:     p.asOf(),
		From:     p.requiredDate("from"),
		To:       p.requiredDate("to"),
		By:       p.by("by"),
		Top:      p.top("top"),
		Interval: p.enum("interval", "", "week", "month", "quarter"),
		Currency: p.currency("currency"),
	}
	if p.str("window_days") != "" {
		w := p.integer("window_days", 0, 0, metrics.MaxWindowDays)
		q.WindowDays = &w
	}
	p.before(q.From, q.To, "from", "to")
	return q, p.err
}

// ParseStalls parses the parameters of GET /v1/stalls.
func ParseStalls(v url.Values) (metrics.StallsQuery, error) {
	p := newParser(v, endpointParams("stalls"))
	q := metrics.StallsQuery{
		AsOf:     p.asOf(),
		Page:     p.integer("page", 1, 1, maxPage),
		PageSize: p.integer("page_size", metrics.DefaultPageSize, 1, metrics.MaxPageSize),
		Currency: p.currency("currency"),
	}
	return q, p.err
}

// ParseMissed parses the parameters of GET /v1/missed.
func ParseMissed(v url.Values) (metrics.MissedQuery, error) {
	p := newParser(v, endpointParams("missed"))
	q := metrics.MissedQuery{
		AsOf:     p.asOf(),
		From:     p.requiredDate("from"),
		To:       p.requiredDate("to"),
		Currency: p.currency("currency"),
	}
	p.before(q.From, q.To, "from", "to")
	return q, p.err
}

// ParseMovement parses the parameters of GET /v1/movement.
func ParseMovement(v url.Values) (metrics.MovementQuery, error) {
	p := newParser(v, endpointParams("movement"))
	q := metrics.MovementQuery{
		AsOf:     p.asOf(),
		From:     p.requiredDate("from"),
		To:       p.requiredDate("to"),
		Currency: p.currency("currency"),
	}
	p.before(q.From, q.To, "from", "to")
	return q, p.err
}

// ParseCycleTime parses the parameters of GET /v1/cycle-time; from_step is
// checked against the ladder by the query.
func ParseCycleTime(v url.Values) (metrics.CycleQuery, error) {
	p := newParser(v, endpointParams("cycle-time"))
	q := metrics.CycleQuery{
		AsOf:     p.asOf(),
		From:     p.requiredDate("from"),
		To:       p.requiredDate("to"),
		FromStep: p.str("from_step"),
		By:       p.by("by"),
		Top:      p.top("top"),
		Interval: p.enum("interval", "", "week", "month", "quarter"),
	}
	p.before(q.From, q.To, "from", "to")
	return q, p.err
}

// ParseStageHistory parses the parameters of GET /v1/stage-history.
func ParseStageHistory(v url.Values) (metrics.StageHistoryQuery, error) {
	p := newParser(v, endpointParams("stage-history"))
	q := metrics.StageHistoryQuery{
		AsOf: p.asOf(),
		By:   p.by("by"),
		Top:  p.top("top"),
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
	var err error
	switch name {
	case "funnel":
		_, err = ParseFunnel(v)
	case "stalls":
		_, err = ParseStalls(v)
	case "missed":
		_, err = ParseMissed(v)
	case "movement":
		_, err = ParseMovement(v)
	case "forecast":
		_, err = ParseForecast(v)
	case "cycle-time":
		_, err = ParseCycleTime(v)
	case "stage-history":
		_, err = ParseStageHistory(v)
	default:
		err = fmt.Errorf("api: unknown endpoint %q", name)
	}
	return err
}

// Query parses v for the named endpoint and runs it for tenant with the
// ladder l. The API and the CLI both answer through it. It refuses, with a
// *metrics.LadderError, a tenant whose opportunity states were not all
// derived with l: their step indexes would be read as l's steps. The
// check runs beside the answer's queries, so that it adds no latency; a
// failed check cancels them.
func Query(ctx context.Context, q *metrics.Querier, f *forecast.Forecaster, l *ladder.Ladder, name, tenant string, v url.Values) (any, error) {
	if err := Check(name, v); err != nil {
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
	res, err := runQuery(ctx, q, f, l, name, tenant, v)
	if cerr := <-checked; cerr != nil {
		return nil, cerr
	}
	return res, err
}

// runQuery is Query without the ladder check.
func runQuery(ctx context.Context, q *metrics.Querier, f *forecast.Forecaster, l *ladder.Ladder, name, tenant string, v url.Values) (any, error) {
	steps := make([]string, len(l.Steps))
	for i, st := range l.Steps {
		steps[i] = st.Key
	}
	switch name {
	case "funnel":
		fq, err := ParseFunnel(v)
		if err != nil {
			return nil, err
		}
		fq.Tenant, fq.Ladder, fq.LadderVersion = tenant, steps, l.Version
		return q.Funnel(ctx, fq)
	case "stalls":
		sq, err := ParseStalls(v)
		if err != nil {
			return nil, err
		}
		sq.Tenant, sq.Ladder, sq.LadderVersion = tenant, steps, l.Version
		return q.Stalls(ctx, sq)
	case "missed":
		mq, err := ParseMissed(v)
		if err != nil {
			return nil, err
		}
		mq.Tenant, mq.Ladder, mq.LadderVersion = tenant, steps, l.Version
		return q.Missed(ctx, mq)
	case "movement":
		mq, err := ParseMovement(v)
		if err != nil {
			return nil, err
		}
		mq.Tenant, mq.Ladder, mq.LadderVersion = tenant, steps, l.Version
		return q.Movement(ctx, mq)
	case "forecast":
		return queryForecast(ctx, f, l, tenant, v)
	case "cycle-time":
		cq, err := ParseCycleTime(v)
		if err != nil {
			return nil, err
		}
		cq.Tenant, cq.Ladder, cq.LadderVersion = tenant, steps, l.Version
		return q.CycleTime(ctx, cq)
	case "stage-history":
		hq, err := ParseStageHistory(v)
		if err != nil {
			return nil, err
		}
		hq.Tenant, hq.Ladder, hq.LadderVersion = tenant, steps, l.Version
		// CRM stages are ordered by the step the ladder maps them to in
		// any pipeline ("*"): states do not record the pipeline.
		hq.StageStep = func(stage string) int { step, _ := l.StageStep("*", stage); return step }
		return q.StageHistory(ctx, hq)
	}
	return nil, fmt.Errorf("api: unknown endpoint %q", name)
}

// run answers one endpoint for the server.
func (s *server) run(ctx context.Context, name, tenant string, v url.Values) (any, error) {
	return Query(ctx, s.q, s.f, s.cfg.Ladder.For(tenant), name, tenant, v)
}
