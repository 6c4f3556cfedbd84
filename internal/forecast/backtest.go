package forecast

import "math"

// numBands is the number of calibration bands: [0, 0.1), …, [0.9, 1.0].
const numBands = 10

// backtest scores both weightings of the deals open at the back-test date
// against their outcome by the period end.
func backtest(p params, ds []scored) *Backtest {
	bt := &Backtest{
		Date:      p.at,
		PeriodEnd: p.bound,
		Complete:  !p.bound.Before(p.at.AddDate(0, 0, p.HorizonDays)),
		Deals:     len(ds),
	}
	preds := make([]prediction, len(ds))
	crm := make([]prediction, len(ds))
	for i, d := range ds {
		bt.Amount += d.Amount
		won := d.Closed && d.Status == "won" && !d.ClosedAt.After(p.bound)
		actual := 0.0
		if won {
			bt.WonDeals++
			actual = d.CloseAmount
			bt.WonAmount += actual
		}
		preds[i] = prediction{p: d.p, amount: d.Amount, won: won, actual: actual}
		crm[i] = prediction{p: d.crm, amount: d.Amount, won: won, actual: actual}
	}
	bt.Commitment = accuracy(preds)
	bt.CRM = accuracy(crm)
	return bt
}

// prediction is one deal's predicted win probability and outcome.
type prediction struct {
	p      float64
	amount float64
	won    bool
	actual float64 // amount won, 0 if not won
}

// accuracy compares the forecast Σ amount × p with the amount won, and
// scores the probabilities: Brier score and calibration by band.
func accuracy(ps []prediction) Accuracy {
	var a Accuracy
	type band struct {
		n, won int
		sumP   float64
	}
	var bands [numBands]band
	for _, x := range ps {
		a.Forecast += x.amount * x.p
		a.Actual += x.actual
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
	a.Error = a.Forecast - a.Actual
	a.AbsError = math.Abs(a.Error)
	if a.Actual > 0 {
		a.PctError = floatPtr(100 * a.Error / a.Actual)
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
