// Package forecast computes the commitment-weighted pipeline: for each open
// opportunity, amount × P(win within the horizon | highest step reached,
// days since the last commitment, segment), with P learned from past
// reference dates as a cumulative incidence that treats still-open deals as
// censored, smoothed by a hierarchical Beta prior, beside the CRM's own
// stage-probability weighting; and the back-test of both. See README.md.
//
// ClickHouse turns the opportunity_state table (one row per opportunity)
// into per-(opportunity, reference date) states and outcomes and aggregates
// them; Go fits the estimator, smooths, and runs the Monte Carlo spread.
package forecast

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

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
	// before it are read. Required.
	AsOf time.Time
	// HorizonDays is the window within which a win counts; 0 means 180.
	HorizonDays int
	// Backtest, when set, asks what the model trained on events up to that
	// date forecast for the deals then open, against what was won by
	// Backtest + horizon (capped at AsOf). It must be before AsOf.
	Backtest *time.Time
	// By lists the breakdowns (close_period, owner, team); empty means all.
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
}

// InputError reports an invalid query parameter.
type InputError struct {
	Param  string
	Reason string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("forecast: invalid %s: %s", e.Param, e.Reason)
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
}

// Group is the weighted pipeline of a set of open deals.
type Group struct {
	Key    string  `json:"key"`
	Deals  int     `json:"deals"`
	Amount float64 `json:"amount"`
	// Expected is Σ amount × P (commitment weighting).
	Expected float64 `json:"expected"`
	// P10 and P90 bound the simulated won amount (total and close periods).
	P10 *float64 `json:"p10,omitempty"`
	P90 *float64 `json:"p90,omitempty"`
	// CRMWeighted is Σ amount × CRM stage probability.
	CRMWeighted float64 `json:"crm_weighted"`
}

// Backtest compares what each weighting forecast at Date with what was won.
type Backtest struct {
	Date time.Time `json:"date"`
	// PeriodEnd is Date + horizon, capped at as_of; Complete is false when
	// capped.
	PeriodEnd time.Time `json:"period_end"`
	Complete  bool      `json:"complete"`
	Deals     int       `json:"deals"`
	Amount    float64   `json:"amount"`
	// WonDeals and WonAmount are the deals open at Date won by PeriodEnd
	// and the amounts they closed at.
	WonDeals   int      `json:"won_deals"`
	WonAmount  float64  `json:"won_amount"`
	Commitment Accuracy `json:"commitment"`
	CRM        Accuracy `json:"crm"`
}

// Accuracy is how one weighting fared.
type Accuracy struct {
	Forecast float64 `json:"forecast"`
	Actual   float64 `json:"actual"`
	// Error is Forecast − Actual; PctError is it as a percentage of Actual
	// (null when nothing was won).
	Error    float64  `json:"error"`
	AbsError float64  `json:"abs_error"`
	PctError *float64 `json:"pct_error"`
	// Brier is the mean squared difference between predicted probability
	// and outcome (1 won, 0 not) over the deals.
	Brier       float64 `json:"brier"`
	Calibration []Band  `json:"calibration"`
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
	conn driver.Conn
	pin  *snapshot.Pinner
}

// New returns a Forecaster reading conn's opportunity_state table.
func New(conn driver.Conn) *Forecaster {
	return NewWithPinner(conn, snapshot.New(conn))
}

// NewWithPinner returns a Forecaster reading conn's opportunity_state table
// through the snapshots of pin, which it may share with the metrics.
func NewWithPinner(conn driver.Conn, pin *snapshot.Pinner) *Forecaster {
	return &Forecaster{conn: conn, pin: pin}
}

// params is a validated Query with defaults filled in.
type params struct {
	Query
	at       time.Time // forecast date: AsOf or Backtest
	bound    time.Time // closes observed up to here
	refs     []time.Time
	byPeriod bool
	byOwner  bool
	byTeam   bool
}

func validate(q Query) (params, error) {
	p := params{Query: q}
	if strings.TrimSpace(q.Tenant) == "" {
		return p, &InputError{Param: "tenant", Reason: "required"}
	}
	if q.AsOf.IsZero() {
		return p, &InputError{Param: "as_of", Reason: "required"}
	}
	if q.AsOf.Unix() <= 0 || q.AsOf.Unix() > math.MaxUint32 {
		return p, &InputError{Param: "as_of", Reason: "out of range"}
	}
	p.AsOf = q.AsOf.UTC().Truncate(time.Second)
	switch {
	case q.HorizonDays == 0:
		p.HorizonDays = DefaultHorizonDays
	case q.HorizonDays < 0 || q.HorizonDays > MaxHorizonDays:
		return p, &InputError{Param: "horizon_days", Reason: fmt.Sprintf("must be 1..%d", MaxHorizonDays)}
	}
	switch {
	case q.ReferenceMonths == 0:
		p.ReferenceMonths = DefaultReferenceMonths
	case q.ReferenceMonths < 0 || q.ReferenceMonths > MaxReferenceMonths:
		return p, &InputError{Param: "reference_months", Reason: fmt.Sprintf("must be 1..%d", MaxReferenceMonths)}
	}
	switch {
	case q.PriorStrength == 0:
		p.PriorStrength = DefaultPriorStrength
	case q.PriorStrength < 0 || math.IsNaN(q.PriorStrength) || math.IsInf(q.PriorStrength, 0):
		return p, &InputError{Param: "prior_strength", Reason: "must be a positive number"}
	}
	switch {
	case q.Draws == 0:
		p.Draws = DefaultDraws
	case q.Draws < 0 || q.Draws > MaxDraws:
		return p, &InputError{Param: "draws", Reason: fmt.Sprintf("must be 1..%d", MaxDraws)}
	}
	if q.Seed == 0 {
		p.Seed = DefaultSeed
	}
	switch q.ClosePeriod {
	case "":
		p.ClosePeriod = PeriodMonth
	case PeriodMonth, PeriodQuarter:
	default:
		return p, &InputError{Param: "close_period", Reason: "must be month or quarter"}
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
		default:
			return p, &InputError{Param: "by", Reason: fmt.Sprintf("unknown breakdown %q (close_period, owner, team)", b)}
		}
	}
	p.at, p.bound = p.AsOf, p.AsOf
	if q.Backtest != nil {
		b := q.Backtest.UTC().Truncate(time.Second)
		if b.Unix() <= 0 || !b.Before(p.AsOf) {
			return p, &InputError{Param: "backtest", Reason: "must be a date before as_of"}
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

// Forecast answers q.
func (f *Forecaster) Forecast(ctx context.Context, q Query) (*Result, error) {
	p, err := validate(q)
	if err != nil {
		return nil, err
	}
	var (
		rows  []trainRow
		stats trainingStats
		deals *chunks[dealRow]
	)
	// Both queries read one View: the training set and the open deals
	// come from the same rows.
	err = f.pin.Read(ctx, p.Tenant, func(ctx context.Context, v *snapshot.View) error {
		var (
			wg               sync.WaitGroup
			trainErr, dealsE error
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			rows, stats, trainErr = f.training(ctx, v, p.Tenant, p.refs, p.at, p.HorizonDays)
		}()
		go func() {
			defer wg.Done()
			deals, dealsE = f.deals(ctx, v, p.Tenant, p.at, p.bound)
		}()
		wg.Wait()
		if trainErr != nil {
			return trainErr
		}
		return dealsE
	})
	if err != nil {
		return nil, err
	}
	model := fitModel(rows, p.HorizonDays, p.PriorStrength)
	return assemble(p, model, stats, deals), nil
}

// scored is an open deal with both predicted probabilities.
type scored struct {
	*dealRow
	cell   int // index into the distinct cells of the open deals
	p, crm float64
	period string
}

// assemble builds the Result from the fitted model and the open deals.
func assemble(p params, model *Model, stats trainingStats, deals *chunks[dealRow]) *Result {
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
		ds[i] = scored{dealRow: d, cell: ci, p: pc, crm: clamp01(d.Probability), period: period}
	}

	res.Pipeline.Total = Group{Key: "total"}
	periods := map[string]*Group{}
	owners := map[string]*Group{}
	teams := map[string]*Group{}
	for i := range ds {
		d := &ds[i]
		res.Pipeline.Total.add(d)
		addTo(periods, d.period, d)
		if p.byOwner {
			addTo(owners, d.Owner, d)
		}
		if p.byTeam {
			addTo(teams, d.Team, d)
		}
	}
	periodKeys := sortedKeys(periods)
	periodIdx := make(map[string]int, len(periodKeys))
	for i, k := range periodKeys {
		periodIdx[k] = i
	}
	mc := make([]mcDeal, len(ds))
	for i := range ds {
		mc[i] = mcDeal{cell: ds[i].cell, group: periodIdx[ds[i].period], amount: ds[i].Amount}
	}
	spread := simulate(cells, mc, len(periodKeys), p.Draws, p.Seed)
	res.Pipeline.Total.P10, res.Pipeline.Total.P90 = floatPtr(spread.totalP10), floatPtr(spread.totalP90)
	if p.byPeriod {
		for i, k := range periodKeys {
			g := *periods[k]
			g.P10, g.P90 = floatPtr(spread.groupP10[i]), floatPtr(spread.groupP90[i])
			res.Pipeline.ByClosePeriod = append(res.Pipeline.ByClosePeriod, g)
		}
	}
	if p.byOwner {
		res.Pipeline.ByOwner = largestFirst(owners)
	}
	if p.byTeam {
		res.Pipeline.ByTeam = largestFirst(teams)
	}
	if p.Backtest != nil {
		res.Backtest = backtest(p, ds)
	}
	return res
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

// add counts deal d into g.
func (g *Group) add(d *scored) {
	g.Deals++
	g.Amount += d.Amount
	g.Expected += d.Amount * d.p
	g.CRMWeighted += d.Amount * d.crm
}

func addTo(m map[string]*Group, key string, d *scored) {
	g := m[key]
	if g == nil {
		g = &Group{Key: key}
		m[key] = g
	}
	g.add(d)
}

func sortedKeys(m map[string]*Group) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// largestFirst lists the groups, largest expected first, then by key.
func largestFirst(m map[string]*Group) []Group {
	out := make([]Group, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, *m[k])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Expected > out[j].Expected })
	return out
}

func floatPtr(x float64) *float64 { return &x }
