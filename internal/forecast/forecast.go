// Package forecast computes the commitment-weighted pipeline: for each open
// opportunity, amount × P(win within the horizon | highest step reached,
// days since the last commitment, segment), with P learned from past
// reference dates as a cumulative incidence that treats still-open deals as
// censored, smoothed by a hierarchical Beta prior, beside the CRM's own
// stage-probability weighting; and the back-test of both. Amounts of
// different currencies are never added (see currency.go). See README.md.
//
// ClickHouse turns the opportunity_state table (one row per opportunity)
// into per-(opportunity, reference date) states and outcomes and aggregates
// them; Go fits the estimator, smooths, and runs the Monte Carlo spread.
package forecast

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/commitflow/commitflow/internal/event"
	"github.com/commitflow/commitflow/internal/fx"
	"github.com/commitflow/commitflow/internal/metrics"
	"github.com/commitflow/commitflow/internal/param"
	"github.com/commitflow/commitflow/internal/snapshot"
)

// Defaults and bounds of the query parameters.
const (
	DefaultHorizonDays     = 180
	MaxHorizonDays         = 730
	DefaultReferenceMonths = 12
	MaxReferenceMonths     = 36
	DefaultPriorStrength   = 20
	DefaultDraws           = 2000
	MaxDraws               = 20000
	DefaultSeed            = 1
)

// Breakdowns accepted in Query.By.
const (
	ByClosePeriod = "close_period"
	ByOwner       = "owner"
	ByTeam        = "team"
	// ByForecastCategory breaks the pipeline down by the CRM's forecast
	// category (Commit, Best Case, Pipeline, ...) as of the forecast date.
	ByForecastCategory = "forecast_category"
	// ByAttributePrefix starts a breakdown by a free attribute:
	// attr.region.
	ByAttributePrefix = "attr."
)

// Close periods accepted in Query.ClosePeriod.
const (
	PeriodMonth   = "month"
	PeriodQuarter = "quarter"
)

// Query asks for the commitment-weighted pipeline of a tenant as of a date.
type Query struct {
	// Tenant scopes every row read. Required.
	Tenant string
	// AsOf is the date the answer is as of: only events that happened at or
	// before it are read. Zero means now, as in the metrics queries.
	AsOf time.Time
	// HorizonDays is the window within which a win counts; 0 means 180.
	HorizonDays int
	// Backtest, when set, asks what the model trained on events up to that
	// date forecast for the deals then open, against what was won by
	// Backtest + horizon (capped at AsOf). It must be before AsOf.
	Backtest *time.Time
	// By lists the breakdowns (close_period, owner, team,
	// forecast_category, attr.KEY);
	// empty means close_period, owner and team.
	By []string
	// ClosePeriod groups close dates by month (default) or quarter.
	ClosePeriod string
	// ReferenceMonths is how many month starts before the forecast date are
	// training reference dates; 0 means 12.
	ReferenceMonths int
	// PriorStrength is the Beta prior's weight in effective samples; 0 means
	// 20.
	PriorStrength float64
	// Draws is the number of Monte Carlo draws; 0 means 2000.
	Draws int
	// Seed seeds the Monte Carlo draws; 0 means 1.
	Seed uint64
	// LadderVersion is echoed in the definitions.
	LadderVersion string
	// Currency is the currency to convert the scalar amounts to with the
	// Forecaster's rate table; "" means its base currency.
	Currency string
}

// Result is the answer to a Query.
type Result struct {
	Definitions Definitions `json:"definitions"`
	Samples     Samples     `json:"samples"`
	Model       *Model      `json:"model"`
	Pipeline    Pipeline    `json:"pipeline"`
	// Backtest is set when the query asked for one; Pipeline and Model are
	// then those of the back-test date.
	Backtest *Backtest `json:"backtest,omitempty"`
}

// Definitions states what the numbers mean.
type Definitions struct {
	Tenant string    `json:"tenant"`
	AsOf   time.Time `json:"as_of"`
	// ForecastAt is the date the model is trained and the open deals are
	// taken at: AsOf, or the back-test date.
	ForecastAt     time.Time `json:"forecast_at"`
	HorizonDays    int       `json:"horizon_days"`
	ReferenceDates []string  `json:"reference_dates"`
	PriorStrength  float64   `json:"prior_strength"`
	LadderVersion  string    `json:"ladder_version"`
	ClosePeriod    string    `json:"close_period"`
	DaysBuckets    []string  `json:"days_buckets"`
	Draws          int       `json:"draws"`
	Seed           uint64    `json:"seed"`
	Estimator      string    `json:"estimator"`
	Smoothing      string    `json:"smoothing"`
	Interval       string    `json:"interval"`
	Spread         string    `json:"spread"`
	CRMWeighting   string    `json:"crm_weighting"`
	// Currency is the currency of the scalar amounts: the one currency of
	// all the answer's amounts, or the one they were converted to; ""
	// when they are in several currencies (the scalars are then null) or
	// the CRM never gave one.
	Currency *string `json:"currency"`
	// Converted, when the scalar amounts were converted, says to what and
	// at which rates.
	Converted *metrics.Conversion `json:"converted,omitempty"`
	// Currencies is the rule of the amounts in words.
	Currencies string `json:"currencies"`
}

// Samples are the sample sizes behind the answer.
type Samples struct {
	// TrainingSamples counts (opportunity, reference date) pairs with the
	// opportunity open at the reference date.
	TrainingSamples       int64   `json:"training_samples"`
	TrainingOpportunities int64   `json:"training_opportunities"`
	Won                   int64   `json:"won"`
	Lost                  int64   `json:"lost"`
	Censored              int64   `json:"censored"`
	EffectiveN            float64 `json:"effective_n"`
	OpenDeals             int     `json:"open_deals"`
}

// Pipeline is the weighted open pipeline, in total and by breakdown.
type Pipeline struct {
	Total         Group   `json:"total"`
	ByClosePeriod []Group `json:"by_close_period,omitempty"`
	ByOwner       []Group `json:"by_owner,omitempty"`
	ByTeam        []Group `json:"by_team,omitempty"`
	// ByForecastCategory holds the pipeline per CRM forecast category as
	// of the forecast date ("" = deals without one), largest first.
	ByForecastCategory []Group `json:"by_forecast_category,omitempty"`
	// ByAttribute holds, per attribute key asked for (by=attr.KEY), the
	// pipeline per value of that attribute as of the forecast date ("" =
	// deals without it), largest first.
	ByAttribute map[string][]Group `json:"by_attribute,omitempty"`
}

// Group is the weighted pipeline of a set of open deals. Its amounts are
// the sums per currency (AmountsByCurrency) and, beside them, scalars that
// follow the answer's rule (Definitions.Currencies): the plain sums when
// all the answer's amounts are in one currency, converted with the rate
// table, or nil when they would add currencies.
type Group struct {
	Key    string   `json:"key"`
	Deals  int      `json:"deals"`
	Amount *float64 `json:"amount"`
	// Expected is Σ amount × P (commitment weighting).
	Expected *float64 `json:"expected"`
	// P10 and P90 bound the simulated won amount (total and close
	// periods; nil when the scalars are).
	P10 *float64 `json:"p10,omitempty"`
	P90 *float64 `json:"p90,omitempty"`
	// CRMWeighted is Σ amount × CRM stage probability.
	CRMWeighted *float64 `json:"crm_weighted"`
	// AmountsByCurrency holds the group's figures per currency code ("" =
	// none given), unconverted; currencies whose amounts are all 0 are
	// left out.
	AmountsByCurrency map[string]GroupAmounts `json:"amounts_by_currency,omitempty"`
}

// GroupAmounts are the figures of a group's deals in one currency.
type GroupAmounts struct {
	Deals    int     `json:"deals"`
	Amount   float64 `json:"amount"`
	Expected float64 `json:"expected"`
	// P10 and P90 bound the simulated won amount of the currency's deals
	// (total and close periods).
	P10         *float64 `json:"p10,omitempty"`
	P90         *float64 `json:"p90,omitempty"`
	CRMWeighted float64  `json:"crm_weighted"`
}

// Backtest compares what each weighting forecast at Date with what was won.
// Its amounts follow the rule of Group's.
type Backtest struct {
	Date time.Time `json:"date"`
	// PeriodEnd is Date + horizon, capped at as_of; Complete is false when
	// capped.
	PeriodEnd time.Time `json:"period_end"`
	Complete  bool      `json:"complete"`
	Deals     int       `json:"deals"`
	Amount    *float64  `json:"amount"`
	// WonDeals and WonAmount are the deals open at Date won by PeriodEnd
	// and the amounts they closed at (each in the currency it closed in).
	WonDeals  int      `json:"won_deals"`
	WonAmount *float64 `json:"won_amount"`
	// AmountsByCurrency holds Amount and WonAmount per currency,
	// unconverted; currencies whose amounts are all 0 are left out.
	AmountsByCurrency map[string]BacktestAmounts `json:"amounts_by_currency,omitempty"`
	Commitment        Accuracy                   `json:"commitment"`
	CRM               Accuracy                   `json:"crm"`
}

// BacktestAmounts are the back-test's amounts in one currency.
type BacktestAmounts struct {
	Amount    float64 `json:"amount"`
	WonAmount float64 `json:"won_amount"`
}

// Accuracy is how one weighting fared: its amounts, per currency and as
// scalars by the rule of Group's, and the scores of its probabilities,
// which need no currency.
type Accuracy struct {
	Forecast *float64 `json:"forecast"`
	Actual   *float64 `json:"actual"`
	// Error is Forecast − Actual; PctError is it as a percentage of Actual
	// (null when nothing was won).
	Error    *float64 `json:"error"`
	AbsError *float64 `json:"abs_error"`
	PctError *float64 `json:"pct_error"`
	// AmountsByCurrency holds the figures per currency, unconverted;
	// currencies whose amounts are all 0 are left out.
	AmountsByCurrency map[string]AccuracyAmounts `json:"amounts_by_currency,omitempty"`
	// Brier is the mean squared difference between predicted probability
	// and outcome (1 won, 0 not) over the deals.
	Brier       float64 `json:"brier"`
	Calibration []Band  `json:"calibration"`
}

// AccuracyAmounts are a weighting's forecast, actual and errors in one
// currency.
type AccuracyAmounts struct {
	Forecast float64  `json:"forecast"`
	Actual   float64  `json:"actual"`
	Error    float64  `json:"error"`
	AbsError float64  `json:"abs_error"`
	PctError *float64 `json:"pct_error"`
}

// Band is one probability band of a calibration table.
type Band struct {
	Lo            float64  `json:"lo"`
	Hi            float64  `json:"hi"`
	Deals         int      `json:"deals"`
	Won           int      `json:"won"`
	MeanPredicted *float64 `json:"mean_predicted"`
	ActualWinRate *float64 `json:"actual_win_rate"`
}

// Forecaster answers forecast queries from ClickHouse.
type Forecaster struct {
	conn   driver.Conn
	pin    *snapshot.Pinner
	rates  *fx.Table
	models *ModelCache
	// parts tells, per part read, when the tenant's deals last changed
	// (latestBy).
	parts snapshot.Summaries
}

// Options tunes a Forecaster.
type Options struct {
	// Pinner hands out the snapshots of opportunity_state the queries
	// read; nil means a Pinner of the Forecaster's own. Share one with
	// the metrics to share its cache.
	Pinner *snapshot.Pinner
	// Rates, when set, is the operator's rate table: the answers' scalar
	// amounts are then converted to the currency asked for (by default
	// its base) at the rates in force on forecast_at; without it they are
	// the plain sums when an answer's amounts are all in one currency,
	// else null. Amounts per currency are always given as well.
	Rates *fx.Table
	// Models, when set, keeps the fitted models until the tenant's
	// closed-deal history changes (see ModelCache): a forecast then runs
	// only the open-deals query. Without it every forecast fits its model.
	Models *ModelCache
}

// New returns a Forecaster reading conn's opportunity_state table.
func New(conn driver.Conn) *Forecaster {
	return NewWithOptions(conn, Options{})
}

// NewWithPinner returns a Forecaster reading conn's opportunity_state table
// through the snapshots of pin, which it may share with the metrics.
func NewWithPinner(conn driver.Conn, pin *snapshot.Pinner) *Forecaster {
	return NewWithOptions(conn, Options{Pinner: pin})
}

// NewWithOptions returns a Forecaster reading conn's opportunity_state
// table.
func NewWithOptions(conn driver.Conn, opt Options) *Forecaster {
	pin := opt.Pinner
	if pin == nil {
		pin = snapshot.New(conn)
	}
	return &Forecaster{conn: conn, pin: pin, rates: opt.Rates, models: opt.Models}
}

// params is a validated Query with defaults filled in.
type params struct {
	Query
	rates    *fx.Table // the rate table, nil if none
	at       time.Time // forecast date: AsOf or Backtest
	bound    time.Time // closes observed up to here
	refs     []time.Time
	byPeriod bool
	byOwner  bool
	byTeam   bool
	byCat    bool
	attrs    []string // attribute keys broken down by, in By's order
}

// validate checks q and fills in its defaults, with the rate table rates
// (nil: none) to convert amounts with.
func validate(q Query, rates *fx.Table) (params, error) {
	p := params{Query: q, rates: rates}
	if strings.TrimSpace(q.Tenant) == "" {
		return p, param.Errorf("tenant", param.Required, "required")
	}
	cur, err := fx.Check(rates, q.Currency)
	if err != nil {
		return p, err
	}
	p.Currency = cur
	if q.AsOf.IsZero() {
		q.AsOf = time.Now()
	}
	if q.AsOf.Unix() <= 0 || q.AsOf.Unix() > math.MaxUint32 {
		return p, param.Errorf("as_of", param.OutOfRange, "out of range")
	}
	p.AsOf = q.AsOf.UTC().Truncate(time.Second)
	switch {
	case q.HorizonDays == 0:
		p.HorizonDays = DefaultHorizonDays
	case q.HorizonDays < 0 || q.HorizonDays > MaxHorizonDays:
		return p, param.Errorf("horizon_days", param.OutOfRange, "must be 1..%d", MaxHorizonDays)
	}
	switch {
	case q.ReferenceMonths == 0:
		p.ReferenceMonths = DefaultReferenceMonths
	case q.ReferenceMonths < 0 || q.ReferenceMonths > MaxReferenceMonths:
		return p, param.Errorf("reference_months", param.OutOfRange, "must be 1..%d", MaxReferenceMonths)
	}
	switch {
	case q.PriorStrength == 0:
		p.PriorStrength = DefaultPriorStrength
	case q.PriorStrength < 0 || math.IsNaN(q.PriorStrength) || math.IsInf(q.PriorStrength, 0):
		return p, param.Errorf("prior_strength", param.OutOfRange, "must be a positive number")
	}
	switch {
	case q.Draws == 0:
		p.Draws = DefaultDraws
	case q.Draws < 0 || q.Draws > MaxDraws:
		return p, param.Errorf("draws", param.OutOfRange, "must be 1..%d", MaxDraws)
	}
	if q.Seed == 0 {
		p.Seed = DefaultSeed
	}
	switch q.ClosePeriod {
	case "":
		p.ClosePeriod = PeriodMonth
	case PeriodMonth, PeriodQuarter:
	default:
		return p, param.Errorf("close_period", param.Invalid, "must be month or quarter")
	}
	if len(q.By) == 0 {
		p.byPeriod, p.byOwner, p.byTeam = true, true, true
	}
	for _, b := range q.By {
		switch b {
		case ByClosePeriod:
			p.byPeriod = true
		case ByOwner:
			p.byOwner = true
		case ByTeam:
			p.byTeam = true
		case ByForecastCategory:
			p.byCat = true
		default:
			k, ok := strings.CutPrefix(b, ByAttributePrefix)
			if !ok || !event.ValidAttributeKey(k) {
				return p, param.Errorf("by", param.Invalid, "unknown breakdown %q (close_period, owner, team, forecast_category, or attr.KEY with KEY in lower case letters, digits and _)", b)
			}
			if !slices.Contains(p.attrs, k) {
				p.attrs = append(p.attrs, k)
			}
		}
	}
	p.at, p.bound = p.AsOf, p.AsOf
	if q.Backtest != nil {
		b := q.Backtest.UTC().Truncate(time.Second)
		if b.Unix() <= 0 || !b.Before(p.AsOf) {
			return p, param.Errorf("backtest", param.Conflict, "must be a date before as_of")
		}
		p.Backtest = &b
		p.at = b
		p.bound = b.AddDate(0, 0, p.HorizonDays)
		if p.bound.After(p.AsOf) {
			p.bound = p.AsOf
		}
	}
	p.refs = referenceDates(p.at, p.ReferenceMonths)
	return p, nil
}

// referenceDates returns the first days (00:00 UTC) of the n calendar months
// before at's month, oldest first.
func referenceDates(at time.Time, n int) []time.Time {
	m := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	out := make([]time.Time, n)
	for i := 0; i < n; i++ {
		out[i] = m.AddDate(0, i-n, 0)
	}
	return out
}

// Forecast answers q, as of now when q.AsOf is zero. A bad parameter is a
// *param.Error naming it.
func (f *Forecaster) Forecast(ctx context.Context, q Query) (*Result, error) {
	p, err := validate(q, f.rates)
	if err != nil {
		return nil, err
	}
	if f.models != nil {
		return f.forecastWithModels(ctx, p)
	}
	fittedAt := time.Now().UTC()
	type answer struct {
		rows  []trainRow
		stats trainingStats
		deals *chunks[dealRow]
	}
	// Both queries read one View: the training set and the open deals
	// come from the same rows.
	ans, err := snapshot.Read(ctx, f.pin, p.Tenant, func(ctx context.Context, v *snapshot.View) (answer, error) {
		var (
			ans              answer
			wg               sync.WaitGroup
			trainErr, dealsE error
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			ans.rows, ans.stats, trainErr = f.training(ctx, v, p.Tenant, p.refs, p.at, p.HorizonDays)
		}()
		go func() {
			defer wg.Done()
			ans.deals, dealsE = f.deals(ctx, v, p.Tenant, p.at, p.bound, p.byCat, p.attrs)
		}()
		wg.Wait()
		if trainErr != nil {
			return answer{}, trainErr
		}
		if dealsE != nil {
			return answer{}, dealsE
		}
		return ans, nil
	})
	if err != nil {
		return nil, err
	}
	model := fitModel(ans.rows, p.HorizonDays, p.PriorStrength)
	model.FittedAt, model.HistoryTo = fittedAt, p.at
	return assemble(p, model, ans.stats, ans.deals)
}

// forecastWithModels answers p with the model f.models keeps or fits,
// reading the open deals meanwhile.
func (f *Forecaster) forecastWithModels(ctx context.Context, p params) (*Result, error) {
	var (
		fit  fitted
		fitE error
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		fit, fitE = f.models.model(ctx, p, func(ctx context.Context) (fitted, error) { return f.fit(ctx, p) })
	}()
	deals, err := snapshot.Read(ctx, f.pin, p.Tenant, func(ctx context.Context, v *snapshot.View) (*chunks[dealRow], error) {
		return f.deals(ctx, v, p.Tenant, p.at, p.bound, p.byCat, p.attrs)
	})
	wg.Wait()
	if fitE != nil {
		return nil, fitE
	}
	if err != nil {
		return nil, err
	}
	return assemble(p, fit.model, fit.stats, deals)
}

// fit runs the training query of p and fits its model.
func (f *Forecaster) fit(ctx context.Context, p params) (fitted, error) {
	fittedAt := time.Now().UTC()
	type trained struct {
		rows  []trainRow
		stats trainingStats
	}
	t, err := snapshot.Read(ctx, f.pin, p.Tenant, func(ctx context.Context, v *snapshot.View) (trained, error) {
		rows, stats, err := f.training(ctx, v, p.Tenant, p.refs, p.at, p.HorizonDays)
		return trained{rows, stats}, err
	})
	if err != nil {
		return fitted{}, err
	}
	model := fitModel(t.rows, p.HorizonDays, p.PriorStrength)
	model.FittedAt, model.HistoryTo = fittedAt, p.at
	return fitted{model: model, stats: t.stats}, nil
}

// scored is an open deal with both predicted probabilities.
type scored struct {
	*dealRow
	cell int // index into the distinct cells of the open deals
	// cur is the index of the deal's currency among the answer's codes;
	// closeCur that of its close amount's (set for back-tested wins).
	cur, closeCur int
	p, crm        float64
	period        string
}

// assemble builds the Result from the fitted model and the open deals.
func assemble(p params, model *Model, stats trainingStats, deals *chunks[dealRow]) (*Result, error) {
	res := &Result{
		Definitions: definitions(p),
		Model:       model,
		Samples: Samples{
			TrainingSamples:       stats.samples,
			TrainingOpportunities: stats.opportunities,
			Won:                   model.Pooled.Won,
			Lost:                  model.Pooled.Lost,
			Censored:              model.Pooled.Censored,
			EffectiveN:            model.Pooled.EffectiveN,
			OpenDeals:             deals.len(),
		},
	}

	cellIndex := map[Cell]int{}
	var cells []mcCell
	// codes are the currencies of the answer's amounts, by index.
	var codes []string
	curIndex := map[string]int{}
	curOf := func(code string) int {
		c, ok := curIndex[code]
		if !ok {
			c = len(codes)
			curIndex[code] = c
			codes = append(codes, code)
		}
		return c
	}
	ds := make([]scored, deals.len())
	periodNames := map[int]string{} // closePeriod by year*12 + month
	for i, d := range deals.rows() {
		days := int(p.at.Sub(d.LastAt) / (24 * time.Hour))
		c := Cell{Step: d.Step, Bucket: DaysBucket(days), Segment: d.Segment}
		pc, a, b := model.posterior(c)
		ci, ok := cellIndex[c]
		if !ok {
			ci = len(cells)
			cellIndex[c] = ci
			cells = append(cells, mcCell{alpha: a, beta: b})
		}
		month := d.CloseDate.Year()*12 + int(d.CloseDate.Month())
		period, ok := periodNames[month]
		if !ok {
			period = closePeriod(d.CloseDate, p.ClosePeriod)
			periodNames[month] = period
		}
		ds[i] = scored{dealRow: d, cell: ci, cur: curOf(d.Currency), p: pc, crm: clamp01(d.Probability), period: period}
		if p.Backtest != nil && wonBy(d, p.bound) {
			ds[i].closeCur = curOf(d.CloseCurrency)
		}
	}

	n := len(codes)
	total := newSums("total", n)
	periods := map[string]*sums{}
	owners := map[string]*sums{}
	teams := map[string]*sums{}
	cats := map[string]*sums{}
	attrs := make([]map[string]*sums, len(p.attrs))
	for i := range attrs {
		attrs[i] = map[string]*sums{}
	}
	for i := range ds {
		d := &ds[i]
		total.add(d)
		addTo(periods, d.period, d, n)
		if p.byOwner {
			addTo(owners, d.Owner, d, n)
		}
		if p.byTeam {
			addTo(teams, d.Team, d, n)
		}
		if p.byCat {
			addTo(cats, d.ForecastCategory, d, n)
		}
		for j := range attrs {
			addTo(attrs[j], d.Attrs[j], d, n)
		}
	}
	var (
		bt  *Backtest
		btS btSums
	)
	if p.Backtest != nil {
		bt, btS = backtest(p, ds, n)
	}

	// The answer's currencies: those of some amount other than 0.
	present := map[string]bool{}
	for c, a := range total.by {
		if !a.zero() || p.Backtest != nil && btS.won[c] != 0 {
			present[codes[c]] = true
		}
	}
	m, err := decideMoney(p.rates, p.Currency, p.at, present, &res.Definitions)
	if err != nil {
		return nil, err
	}

	periodKeys := sortedKeys(periods)
	periodIdx := make(map[string]int, len(periodKeys))
	for i, k := range periodKeys {
		periodIdx[k] = i
	}
	sp := spread(p, m, codes, cells, ds, periodIdx, total)
	res.Pipeline.Total = total.group(codes, m, sp, totalSpread)
	if p.byPeriod {
		for i, k := range periodKeys {
			res.Pipeline.ByClosePeriod = append(res.Pipeline.ByClosePeriod, periods[k].group(codes, m, sp, i))
		}
	}
	if p.byOwner {
		res.Pipeline.ByOwner = largestFirst(owners, codes, m)
	}
	if p.byTeam {
		res.Pipeline.ByTeam = largestFirst(teams, codes, m)
	}
	if p.byCat {
		res.Pipeline.ByForecastCategory = largestFirst(cats, codes, m)
	}
	for j, k := range p.attrs {
		if res.Pipeline.ByAttribute == nil {
			res.Pipeline.ByAttribute = map[string][]Group{}
		}
		res.Pipeline.ByAttribute[k] = largestFirst(attrs[j], codes, m)
	}
	if bt != nil {
		bt.setAmounts(btS, codes, m)
		res.Backtest = bt
	}
	return res, nil
}

// spreads are the Monte Carlo spreads of an answer: one per currency
// index (nil for a currency without amounts), and that of the scalar
// amounts (nil when they are null).
type spreads struct {
	byCur  []*spreadResult
	scalar *spreadResult
}

// Groups of spreadResult.at besides the close periods' indexes.
const (
	totalSpread = -1 // the total
	noSpread    = -2 // a breakdown without a spread (owner, team)
)

// spread runs the Monte Carlo of the open deals ds, grouped by close
// period (periodIdx): per currency with amounts (in total), of that
// currency's deals; for the scalars, with a rate table, of every deal's
// amount converted at m's rates, else the spread of the answer's one
// currency. The simulations are independent and run concurrently.
func spread(p params, m fx.Money, codes []string, cells []mcCell, ds []scored,
	periodIdx map[string]int, total *sums) spreads {
	groups := len(periodIdx)
	sp := spreads{byCur: make([]*spreadResult, len(codes))}
	byCur := make([][]mcDeal, len(codes))
	withAmounts := 0
	for c, a := range total.by {
		if !a.zero() {
			byCur[c] = make([]mcDeal, 0, a.Deals)
			withAmounts++
		}
	}
	// With one currency, the converted amounts' spread is that
	// currency's times its rate (the simulation is linear in the amounts:
	// the same draws, sums and quantiles scaled); with several, it needs
	// a simulation of its own.
	var conv []mcDeal
	if m.Rates != nil && withAmounts > 1 {
		conv = make([]mcDeal, 0, len(ds))
	}
	for i := range ds {
		d := &ds[i]
		if byCur[d.cur] == nil {
			continue // all its amounts are 0
		}
		md := mcDeal{cell: d.cell, group: periodIdx[d.period], amount: d.Amount}
		byCur[d.cur] = append(byCur[d.cur], md)
		if conv != nil {
			md.amount *= m.Rates[codes[d.cur]]
			conv = append(conv, md)
		}
	}
	var wg sync.WaitGroup
	run := func(deals []mcDeal, out **spreadResult) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := simulate(cells, deals, groups, p.Draws, p.Seed)
			*out = &r
		}()
	}
	for c, mds := range byCur {
		if mds != nil {
			run(mds, &sp.byCur[c])
		}
	}
	if conv != nil {
		run(conv, &sp.scalar)
	}
	wg.Wait()
	switch {
	case m.Mixed || conv != nil:
	case m.Rates != nil:
		for c, r := range sp.byCur {
			if r != nil {
				sp.scalar = r.scaled(m.Rates[codes[c]])
			}
		}
	default:
		for c, code := range codes {
			if code == m.To && sp.byCur[c] != nil {
				sp.scalar = sp.byCur[c]
			}
		}
	}
	if sp.scalar == nil && !m.Mixed { // no amounts: nothing can be won
		sp.scalar = &spreadResult{groupP10: make([]float64, groups), groupP90: make([]float64, groups)}
	}
	return sp
}

// at returns the P10 and P90 of group gi (or totalSpread).
func (r *spreadResult) at(gi int) (p10, p90 *float64) {
	if gi == totalSpread {
		return floatPtr(r.totalP10), floatPtr(r.totalP90)
	}
	return floatPtr(r.groupP10[gi]), floatPtr(r.groupP90[gi])
}

func definitions(p params) Definitions {
	refs := make([]string, len(p.refs))
	for i, r := range p.refs {
		refs[i] = r.Format("2006-01-02")
	}
	buckets := make([]string, NumDaysBuckets)
	for i := range buckets {
		buckets[i] = DaysBucketLabel(i)
	}
	return Definitions{
		Tenant:         p.Tenant,
		AsOf:           p.AsOf,
		ForecastAt:     p.at,
		HorizonDays:    p.HorizonDays,
		ReferenceDates: refs,
		PriorStrength:  p.PriorStrength,
		LadderVersion:  p.LadderVersion,
		ClosePeriod:    p.ClosePeriod,
		DaysBuckets:    buckets,
		Draws:          p.Draws,
		Seed:           p.Seed,
		Estimator: "P(win within horizon_days | highest step, days since last commitment, segment): Aalen-Johansen cumulative incidence " +
			"of won (lost competing) over days from each reference date, deals still open at forecast_at censored, not lost; " +
			"a deal is open at a date when its status as of that date is open (a reopened deal is open again), " +
			"and its outcome is its first close after the date",
		Smoothing: "hierarchical Beta: cell (step, days, segment) toward (step, days) toward step toward pooled, " +
			"each with prior_strength effective samples; censored samples count by the share of the horizon observed",
		Interval:     "80% Beta credible interval (lo = 10th, hi = 90th percentile)",
		Spread:       "P10/P90 of the simulated won amount: per draw each cell's P from its Beta posterior, each deal won with that P",
		CRMWeighting: "amount × CRM stage probability as of forecast_at",
	}
}

// closePeriod names the month ("2024-06") or quarter ("2024-Q2") of a close
// date, or "none".
func closePeriod(d time.Time, period string) string {
	if d.IsZero() {
		return "none"
	}
	if period == PeriodQuarter {
		return fmt.Sprintf("%04d-Q%d", d.Year(), (int(d.Month())-1)/3+1)
	}
	return d.Format("2006-01")
}

// sums are a group's figures per currency index while its deals are
// added.
type sums struct {
	key   string
	deals int
	by    []GroupAmounts
}

func newSums(key string, currencies int) *sums {
	return &sums{key: key, by: make([]GroupAmounts, currencies)}
}

// add counts deal d into s.
func (s *sums) add(d *scored) {
	s.deals++
	a := &s.by[d.cur]
	a.Deals++
	a.Amount += d.Amount
	a.Expected += d.Amount * d.p
	a.CRMWeighted += d.Amount * d.crm
}

// zero reports whether all the amounts of a are 0.
func (a *GroupAmounts) zero() bool { return a.Amount == 0 && a.Expected == 0 && a.CRMWeighted == 0 }

// group turns s into a Group: its figures per currency code (those not
// all 0) and its scalars by m, with the spreads of sp's group gi
// (noSpread: none).
func (s *sums) group(codes []string, m fx.Money, sp spreads, gi int) Group {
	g := Group{
		Key:         s.key,
		Deals:       s.deals,
		Amount:      scalar(m, codes, s.by, func(a *GroupAmounts) float64 { return a.Amount }),
		Expected:    scalar(m, codes, s.by, func(a *GroupAmounts) float64 { return a.Expected }),
		CRMWeighted: scalar(m, codes, s.by, func(a *GroupAmounts) float64 { return a.CRMWeighted }),
	}
	for c, a := range s.by {
		if a.zero() {
			continue
		}
		if gi != noSpread && sp.byCur[c] != nil {
			a.P10, a.P90 = sp.byCur[c].at(gi)
		}
		if g.AmountsByCurrency == nil {
			g.AmountsByCurrency = map[string]GroupAmounts{}
		}
		g.AmountsByCurrency[codes[c]] = a
	}
	if gi != noSpread && sp.scalar != nil {
		g.P10, g.P90 = sp.scalar.at(gi)
	}
	return g
}

func addTo(m map[string]*sums, key string, d *scored, currencies int) {
	s := m[key]
	if s == nil {
		s = newSums(key, currencies)
		m[key] = s
	}
	s.add(d)
}

func sortedKeys(m map[string]*sums) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// largestFirst lists the groups, largest expected first (most deals first
// when the scalars are null), then by key.
func largestFirst(m map[string]*sums, codes []string, mo fx.Money) []Group {
	out := make([]Group, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, m[k].group(codes, mo, spreads{}, noSpread))
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Expected != nil && out[j].Expected != nil {
			return *out[i].Expected > *out[j].Expected
		}
		return out[i].Deals > out[j].Deals
	})
	return out
}

func floatPtr(x float64) *float64 { return &x }
