package forecast

import (
	"math"
	"sort"
	"time"
)

// Outcome is how a training sample ended within the horizon.
type Outcome uint8

// Outcomes of a training sample.
const (
	// Censored: still open at the end of its follow-up (the as-of date, or
	// the horizon when it was observed that long).
	Censored Outcome = 0
	// Won within the horizon.
	Won Outcome = 1
	// Lost within the horizon (a competing risk: a lost deal can no longer be
	// won).
	Lost Outcome = 2
)

// NumDaysBuckets is the number of days-since-last-commitment buckets:
// 0-14, 15-30, 31-60 and 61 or more days.
const NumDaysBuckets = 4

// DaysBucket returns the bucket index (0..3) for a number of whole days since
// the last commitment.
func DaysBucket(days int) int {
	switch {
	case days <= 14:
		return 0
	case days <= 30:
		return 1
	case days <= 60:
		return 2
	default:
		return 3
	}
}

// DaysBucketLabel names bucket b ("0-14", "15-30", "31-60", "61+").
func DaysBucketLabel(b int) string {
	switch b {
	case 0:
		return "0-14"
	case 1:
		return "15-30"
	case 2:
		return "31-60"
	case 3:
		return "61+"
	}
	return ""
}

// Cell is the state of an open opportunity: highest step reached, days
// bucket since the last commitment and segment.
type Cell struct {
	Step    int
	Bucket  int
	Segment string
}

// trainRow is a group of identical training samples: Count samples in state
// Cell whose outcome was Outcome at day Day after the reference date (for
// Censored, Day is the follow-up in whole days, capped at the horizon).
type trainRow struct {
	Cell    Cell
	Outcome Outcome
	Day     int
	Count   float64
}

// lifeTable holds, per day since the reference date, the number of samples
// won, lost and censored on that day. Index horizon is used only by samples
// censored at (or beyond) the horizon.
type lifeTable struct {
	won, lost, cens []float64
}

func newLifeTable(horizon int) *lifeTable {
	return &lifeTable{
		won:  make([]float64, horizon+1),
		lost: make([]float64, horizon+1),
		cens: make([]float64, horizon+1),
	}
}

// add records n samples. Events on or after the horizon count as censored at
// the horizon; days are clamped into [0, horizon].
func (lt *lifeTable) add(o Outcome, day int, n float64) {
	h := len(lt.won) - 1
	if day < 0 {
		day = 0
	}
	if day >= h {
		lt.cens[h] += n
		return
	}
	switch o {
	case Won:
		lt.won[day] += n
	case Lost:
		lt.lost[day] += n
	default:
		lt.cens[day] += n
	}
}

// counts returns the totals of won and lost within the horizon, censored, and
// the effective sample size: every won or lost sample counts 1, a sample
// censored after c days counts c/horizon (one observed for the whole horizon
// counts 1).
func (lt *lifeTable) counts() (won, lost, cens, nEff float64) {
	h := len(lt.won) - 1
	for j := 0; j <= h; j++ {
		won += lt.won[j]
		lost += lt.lost[j]
		cens += lt.cens[j]
		if h > 0 {
			nEff += lt.cens[j] * float64(j) / float64(h)
		}
	}
	nEff += won + lost
	return won, lost, cens, nEff
}

// cumulativeIncidence is the Aalen–Johansen estimate of P(won within the
// horizon) with lost as a competing risk and censoring at the end of each
// sample's follow-up, on a daily grid. A sample censored on day c is at risk
// on days 0..c (events on a day happen before censoring on that day). ok is
// false when there are no samples.
func (lt *lifeTable) cumulativeIncidence() (p float64, ok bool) {
	h := len(lt.won) - 1
	atRisk := 0.0
	for j := 0; j <= h; j++ {
		atRisk += lt.won[j] + lt.lost[j] + lt.cens[j]
	}
	if atRisk <= 0 {
		return 0, false
	}
	surv := 1.0 // P(still open just before day j)
	for j := 0; j < h && atRisk > 0; j++ {
		w, l := lt.won[j], lt.lost[j]
		if w+l > 0 {
			p += surv * w / atRisk
			surv *= 1 - (w+l)/atRisk
		}
		atRisk -= w + l + lt.cens[j]
	}
	return clamp01(p), true
}

// Estimate is the win probability of one level of the model: the pooled
// rate, a step, a (step, days) pair or a full (step, days, segment) cell.
type Estimate struct {
	// Level is "pooled", "step", "step_days" or "cell".
	Level string `json:"level"`
	// Step is the highest step reached (0: none yet); absent for pooled.
	Step *int `json:"step,omitempty"`
	// DaysBucket is the days-since-last-commitment bucket.
	DaysBucket string `json:"days_bucket,omitempty"`
	// Segment is the opportunity's segment; empty for coarser levels.
	Segment *string `json:"segment,omitempty"`
	// N is the number of training samples (opportunity × reference date).
	N int64 `json:"n"`
	// Won, Lost and Censored split N by outcome within the horizon.
	Won      int64 `json:"won"`
	Lost     int64 `json:"lost"`
	Censored int64 `json:"censored"`
	// EffectiveN counts censored samples by the share of the horizon they
	// were observed.
	EffectiveN float64 `json:"effective_n"`
	// Raw is the unsmoothed cumulative incidence of a win within the
	// horizon; null without samples.
	Raw *float64 `json:"raw"`
	// P is the smoothed probability (posterior mean).
	P float64 `json:"p"`
	// Lo and Hi bound the 80% Beta credible interval (10th and 90th
	// percentiles).
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`

	alpha, beta float64
}

// Model is the fitted hierarchy of estimates.
type Model struct {
	Pooled   Estimate   `json:"pooled"`
	Steps    []Estimate `json:"steps"`
	StepDays []Estimate `json:"step_days"`
	Cells    []Estimate `json:"cells"`
	// FittedAt is when the training data was read; HistoryTo is the
	// date up to which the model saw history: the forecast date of the
	// fit. A model kept by a ModelCache answers later forecasts with the
	// FittedAt and HistoryTo of its fit.
	FittedAt  time.Time `json:"fitted_at"`
	HistoryTo time.Time `json:"history_to"`

	horizon  int
	prior    float64
	step     map[int]*Estimate
	stepDays map[[2]int]*Estimate
	cell     map[Cell]*Estimate
}

// fitModel estimates P(win within horizon days | cell) from training rows,
// shrinking each cell toward its (step, days) parent, that toward its step,
// and that toward the pooled rate, each with prior strength k effective
// samples. The pooled rate itself has a uniform Beta(1, 1) prior, so it is
// 0.5 without data and the raw rate with plenty.
func fitModel(rows []trainRow, horizon int, k float64) *Model {
	pooled := newLifeTable(horizon)
	steps := map[int]*lifeTable{}
	stepDays := map[[2]int]*lifeTable{}
	cells := map[Cell]*lifeTable{}
	get := func(m map[int]*lifeTable, key int) *lifeTable {
		lt := m[key]
		if lt == nil {
			lt = newLifeTable(horizon)
			m[key] = lt
		}
		return lt
	}
	for _, r := range rows {
		pooled.add(r.Outcome, r.Day, r.Count)
		get(steps, r.Cell.Step).add(r.Outcome, r.Day, r.Count)
		sd := [2]int{r.Cell.Step, r.Cell.Bucket}
		if stepDays[sd] == nil {
			stepDays[sd] = newLifeTable(horizon)
		}
		stepDays[sd].add(r.Outcome, r.Day, r.Count)
		if cells[r.Cell] == nil {
			cells[r.Cell] = newLifeTable(horizon)
		}
		cells[r.Cell].add(r.Outcome, r.Day, r.Count)
	}

	m := &Model{
		horizon:  horizon,
		prior:    k,
		step:     map[int]*Estimate{},
		stepDays: map[[2]int]*Estimate{},
		cell:     map[Cell]*Estimate{},
	}
	m.Pooled = estimate("pooled", pooled, 0.5, 2)

	for _, s := range sortedInts(steps) {
		e := estimate("step", steps[s], m.Pooled.P, k)
		e.Step = intPtr(s)
		m.Steps = append(m.Steps, e)
	}
	for i := range m.Steps {
		m.step[*m.Steps[i].Step] = &m.Steps[i]
	}

	sdKeys := make([][2]int, 0, len(stepDays))
	for key := range stepDays {
		sdKeys = append(sdKeys, key)
	}
	sort.Slice(sdKeys, func(i, j int) bool {
		if sdKeys[i][0] != sdKeys[j][0] {
			return sdKeys[i][0] < sdKeys[j][0]
		}
		return sdKeys[i][1] < sdKeys[j][1]
	})
	for _, key := range sdKeys {
		e := estimate("step_days", stepDays[key], m.parentOfStepDays(key), k)
		e.Step = intPtr(key[0])
		e.DaysBucket = DaysBucketLabel(key[1])
		m.StepDays = append(m.StepDays, e)
	}
	for i, key := range sdKeys {
		m.stepDays[key] = &m.StepDays[i]
	}

	cellKeys := make([]Cell, 0, len(cells))
	for c := range cells {
		cellKeys = append(cellKeys, c)
	}
	sortCells(cellKeys)
	for _, c := range cellKeys {
		e := estimate("cell", cells[c], m.parentOfCell(c), k)
		e.Step = intPtr(c.Step)
		e.DaysBucket = DaysBucketLabel(c.Bucket)
		seg := c.Segment
		e.Segment = &seg
		m.Cells = append(m.Cells, e)
	}
	for i, c := range cellKeys {
		m.cell[c] = &m.Cells[i]
	}
	return m
}

func (m *Model) parentOfStep(step int) float64 {
	if e := m.step[step]; e != nil {
		return e.P
	}
	return m.Pooled.P
}

func (m *Model) parentOfStepDays(key [2]int) float64 {
	return m.parentOfStep(key[0])
}

func (m *Model) parentOfCell(c Cell) float64 {
	if e := m.stepDays[[2]int{c.Step, c.Bucket}]; e != nil {
		return e.P
	}
	return m.parentOfStepDays([2]int{c.Step, c.Bucket})
}

// posterior returns the Beta posterior of a cell. A cell never seen in
// training has the prior alone: its parent's mean with strength k.
func (m *Model) posterior(c Cell) (p, alpha, beta float64) {
	if e := m.cell[c]; e != nil {
		return e.P, e.alpha, e.beta
	}
	parent := m.parentOfCell(c)
	a, b := betaParams(0, 0, parent, m.prior)
	return a / (a + b), a, b
}

// estimate fits one level: raw cumulative incidence from lt, shrunk toward
// parent with strength k.
func estimate(level string, lt *lifeTable, parent, k float64) Estimate {
	won, lost, cens, nEff := lt.counts()
	raw, ok := lt.cumulativeIncidence()
	e := Estimate{
		Level:      level,
		N:          int64(math.Round(won + lost + cens)),
		Won:        int64(math.Round(won)),
		Lost:       int64(math.Round(lost)),
		Censored:   int64(math.Round(cens)),
		EffectiveN: nEff,
	}
	if ok {
		r := raw
		e.Raw = &r
	} else {
		nEff = 0
	}
	e.alpha, e.beta = betaParams(raw, nEff, parent, k)
	e.P = e.alpha / (e.alpha + e.beta)
	e.Lo = betaQuantile(0.1, e.alpha, e.beta)
	e.Hi = betaQuantile(0.9, e.alpha, e.beta)
	return e
}

// betaParams is the posterior Beta(alpha, beta) of a rate observed as raw
// over nEff effective samples, under a Beta prior with mean parent and
// strength k. Both parameters are kept strictly positive.
func betaParams(raw, nEff, parent, k float64) (alpha, beta float64) {
	const eps = 1e-6
	alpha = nEff*raw + k*parent
	beta = nEff*(1-raw) + k*(1-parent)
	return math.Max(alpha, eps), math.Max(beta, eps)
}

func clamp01(x float64) float64 {
	switch {
	case x < 0 || math.IsNaN(x):
		return 0
	case x > 1:
		return 1
	}
	return x
}

func intPtr(i int) *int { return &i }

func sortedInts(m map[int]*lifeTable) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

func sortCells(cs []Cell) {
	sort.Slice(cs, func(i, j int) bool {
		a, b := cs[i], cs[j]
		if a.Step != b.Step {
			return a.Step < b.Step
		}
		if a.Bucket != b.Bucket {
			return a.Bucket < b.Bucket
		}
		return a.Segment < b.Segment
	})
}
