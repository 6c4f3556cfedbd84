package forecast

import (
	"math"
	"time"

	"github.com/commitflow/commitflow/internal/fx"
)

// numBands is the number of calibration bands: [0, 0.1), …, [0.9, 1.0].
const numBands = 10

// backtest scores both weightings of the deals open at the back-test date
// against their outcome by the period end. It returns the back-test
// without its amounts, and the sums per currency index (of ncur) that
// setAmounts makes them of.
func backtest(p params, ds []scored, ncur int) (*Backtest, btSums) {
	bt := &Backtest{
		Date:      p.at,
		PeriodEnd: p.bound,
		Complete:  !p.bound.Before(p.at.AddDate(0, 0, p.HorizonDays)),
		Deals:     len(ds),
	}
	s := btSums{amount: make([]float64, ncur), won: make([]float64, ncur),
		commitment: make([]float64, ncur), crm: make([]float64, ncur)}
	preds := make([]prediction, len(ds))
	crm := make([]prediction, len(ds))
	for i, d := range ds {
		s.amount[d.cur] += d.Amount
		s.commitment[d.cur] += d.Amount * d.p
		s.crm[d.cur] += d.Amount * d.crm
		won := wonBy(d.dealRow, p.bound)
		if won {
			bt.WonDeals++
			s.won[d.closeCur] += d.CloseAmount
		}
		preds[i] = prediction{p: d.p, won: won}
		crm[i] = prediction{p: d.crm, won: won}
	}
	bt.Commitment = accuracy(preds)
	bt.CRM = accuracy(crm)
	return bt, s
}

// wonBy reports whether the open deal d's outcome is a win by bound.
func wonBy(d *dealRow, bound time.Time) bool {
	return d.Closed && d.Status == "won" && !d.ClosedAt.After(bound)
}

// btSums are a back-test's amounts per currency index: the amount open at
// the date and each weighting's forecast in the deal's currency then, the
// amount won in the currency of the close.
type btSums struct {
	amount, won, commitment, crm []float64
}

// setAmounts fills the amounts of bt from its sums per currency s (codes
// names the indexes) by the answer's rule m: per currency those not all
// 0, and the scalars.
func (bt *Backtest) setAmounts(s btSums, codes []string, m fx.Money) {
	weightings := []struct {
		a        *Accuracy
		forecast []float64
	}{{&bt.Commitment, s.commitment}, {&bt.CRM, s.crm}}
	for c, code := range codes {
		if s.amount[c] != 0 || s.won[c] != 0 {
			if bt.AmountsByCurrency == nil {
				bt.AmountsByCurrency = map[string]BacktestAmounts{}
			}
			bt.AmountsByCurrency[code] = BacktestAmounts{Amount: s.amount[c], WonAmount: s.won[c]}
		}
		for _, w := range weightings {
			if w.forecast[c] != 0 || s.won[c] != 0 {
				if w.a.AmountsByCurrency == nil {
					w.a.AmountsByCurrency = map[string]AccuracyAmounts{}
				}
				w.a.AmountsByCurrency[code] = accuracyAmounts(w.forecast[c], s.won[c])
			}
		}
	}
	self := func(x *float64) float64 { return *x }
	bt.Amount = scalar(m, codes, s.amount, self)
	bt.WonAmount = scalar(m, codes, s.won, self)
	for _, w := range weightings {
		f := scalar(m, codes, w.forecast, self)
		if f == nil || bt.WonAmount == nil {
			continue
		}
		x := accuracyAmounts(*f, *bt.WonAmount)
		w.a.Forecast, w.a.Actual, w.a.Error, w.a.AbsError, w.a.PctError = &x.Forecast, &x.Actual, &x.Error, &x.AbsError, x.PctError
	}
}

// accuracyAmounts compares a forecast amount with the actual amount won.
func accuracyAmounts(forecast, actual float64) AccuracyAmounts {
	a := AccuracyAmounts{Forecast: forecast, Actual: actual, Error: forecast - actual}
	a.AbsError = math.Abs(a.Error)
	if actual > 0 {
		a.PctError = floatPtr(100 * a.Error / actual)
	}
	return a
}

// prediction is one deal's predicted win probability and outcome.
type prediction struct {
	p   float64
	won bool
}

// accuracy scores the probabilities: Brier score and calibration by band.
// The amounts are setAmounts'.
func accuracy(ps []prediction) Accuracy {
	var a Accuracy
	type band struct {
		n, won int
		sumP   float64
	}
	var bands [numBands]band
	for _, x := range ps {
		y := 0.0
		if x.won {
			y = 1
		}
		a.Brier += (x.p - y) * (x.p - y)
		b := bandOf(x.p)
		bands[b].n++
		bands[b].sumP += x.p
		if x.won {
			bands[b].won++
		}
	}
	if len(ps) > 0 {
		a.Brier /= float64(len(ps))
	}
	a.Calibration = make([]Band, numBands)
	for i, b := range bands {
		c := Band{Lo: float64(i) / numBands, Hi: float64(i+1) / numBands, Deals: b.n, Won: b.won}
		if b.n > 0 {
			c.MeanPredicted = floatPtr(b.sumP / float64(b.n))
			c.ActualWinRate = floatPtr(float64(b.won) / float64(b.n))
		}
		a.Calibration[i] = c
	}
	return a
}

// bandOf is the calibration band of probability p; 1.0 falls in the last.
func bandOf(p float64) int {
	b := int(p * numBands)
	if b >= numBands {
		b = numBands - 1
	}
	if b < 0 {
		b = 0
	}
	return b
}
