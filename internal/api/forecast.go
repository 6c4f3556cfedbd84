package api

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/forecast"
	"github.com/commitflow/commitflow/internal/param"
)

// forecastParams are the parameters of GET /v1/forecast, with the shared
// as_of and currency.
func forecastParams(asOf, currency Param) []Param {
	return []Param{
		asOf,
		{"backtest", "back-test: what each weighting forecast at this date (before as_of) against what was won by the period end"},
		{"horizon_days", fmt.Sprintf("a win counts within this many days, 1..%d; default %d", forecast.MaxHorizonDays, forecast.DefaultHorizonDays)},
		{"by", "comma-separated breakdowns: close_period, owner, team, forecast_category (the CRM's, as of the forecast date), attr.KEY (a free attribute); default close_period, owner and team"},
		{"close_period", "group close dates by month (default) or quarter"},
		{"reference_months", fmt.Sprintf("months of past reference dates to learn from, 1..%d; default %d", forecast.MaxReferenceMonths, forecast.DefaultReferenceMonths)},
		{"prior_strength", fmt.Sprintf("weight of the Beta prior toward the coarser rate, in samples; default %d", forecast.DefaultPriorStrength)},
		{"draws", fmt.Sprintf("Monte Carlo draws for P10/P90, 1..%d; default %d", forecast.MaxDraws, forecast.DefaultDraws)},
		{"seed", "seed of the Monte Carlo draws; default 1"},
		currency,
	}
}

// ParseForecast parses the parameters of GET /v1/forecast for the scope
// s. An absent as_of is now.
func ParseForecast(v url.Values, s Scope) (forecast.Query, error) {
	p := newParser(v, endpointParams("forecast"))
	q := forecast.Query{
		Tenant:          s.Tenant,
		LadderVersion:   s.version(),
		AsOf:            p.asOf(),
		HorizonDays:     p.integer("horizon_days", forecast.DefaultHorizonDays, 1, forecast.MaxHorizonDays),
		ClosePeriod:     p.enum("close_period", forecast.PeriodMonth, forecast.PeriodMonth, forecast.PeriodQuarter),
		ReferenceMonths: p.integer("reference_months", forecast.DefaultReferenceMonths, 1, forecast.MaxReferenceMonths),
		Draws:           p.integer("draws", forecast.DefaultDraws, 1, forecast.MaxDraws),
		Seed:            uint64(p.integer("seed", forecast.DefaultSeed, 1, 1<<31-1)),
		PriorStrength:   forecast.DefaultPriorStrength,
		Currency:        p.currency("currency"),
	}
	if s := p.str("backtest"); s != "" {
		b := p.date("backtest", time.Time{})
		if !b.IsZero() {
			q.Backtest = &b
			p.before(b, q.AsOf, "backtest", "as_of")
		}
	}
	if s := p.str("prior_strength"); s != "" {
		k, err := strconv.ParseFloat(s, 64)
		switch {
		case err != nil:
			p.fail("prior_strength", param.Invalid, "want a number in (0, 1000000], got %q", truncate(s))
		case !(k > 0 && k <= 1e6):
			p.fail("prior_strength", param.OutOfRange, "want a number in (0, 1000000], got %q", truncate(s))
		default:
			q.PriorStrength = k
		}
	}
	if s := p.str("by"); s != "" {
		seen := map[string]bool{}
		for _, b := range strings.Split(s, ",") {
			b = strings.TrimSpace(b)
			switch {
			case b == forecast.ByClosePeriod, b == forecast.ByOwner, b == forecast.ByTeam, b == forecast.ByForecastCategory:
			case strings.HasPrefix(b, forecast.ByAttributePrefix) && event.ValidAttributeKey(strings.TrimPrefix(b, forecast.ByAttributePrefix)):
			default:
				p.fail("by", param.Invalid, "want a comma-separated list of close_period, owner, team, forecast_category, attr.KEY (KEY in lower case letters, digits and _), got %q", truncate(b))
				continue
			}
			if !seen[b] {
				seen[b] = true
				q.By = append(q.By, b)
			}
		}
	}
	return q, p.err
}

// prepareForecast parses the parameters of GET /v1/forecast for the
// scope s and returns what answers them.
func prepareForecast(v url.Values, s Scope) (computation, error) {
	fq, err := ParseForecast(v, s)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, _ Metrics, f Forecasts) (any, error) {
		res, err := f.Forecast(ctx, fq)
		if err != nil {
			return nil, err
		}
		return res, nil
	}, nil
}
