package forecast

import (
	"math"
	"math/rand/v2"
	"sort"
)

// exactLimit is the largest number of deals of a group (close period)
// drawn deal by deal. A larger group draws its won amount, given the cells'
// probabilities of the draw, from the normal approximation of its sum of
// Bernoulli draws: mean Σ_c P_c·Σa, variance Σ_c P_c(1−P_c)·Σa², clamped to
// [0, Σa]. That keeps the cost per draw at the number of (group, cell)
// buckets, whatever the number of deals.
const exactLimit = 200

// mcCell is the Beta posterior of one cell's win probability.
type mcCell struct{ alpha, beta float64 }

// mcDeal is one open deal: its cell, its group (e.g. close period) and
// amount.
type mcDeal struct {
	cell, group int
	amount      float64
}

// spreadResult holds the P10 and P90 of the simulated won amount, in total and
// per group.
type spreadResult struct {
	totalP10, totalP90 float64
	groupP10, groupP90 []float64
}

// mcBucket is the deals of one (group, cell).
type mcBucket struct {
	cell       int
	amounts    []float64
	sum, sumSq float64
}

// mcGroup is the deals of one group, by cell.
type mcGroup struct {
	n       int
	sum     float64
	buckets []mcBucket
}

// simulate draws the won amount of the open deals draws times: each draw
// takes every cell's probability from its Beta posterior (shared by the
// deals of the cell), then each deal wins with that probability (see
// exactLimit). The result depends only on the inputs and the seed.
func simulate(cells []mcCell, deals []mcDeal, groups, draws int, seed uint64) spreadResult {
	gs := make([]mcGroup, groups)
	idx := map[[2]int]int{}
	for _, d := range deals {
		g := &gs[d.group]
		g.n++
		g.sum += d.amount
		i, ok := idx[[2]int{d.group, d.cell}]
		if !ok {
			i = len(g.buckets)
			idx[[2]int{d.group, d.cell}] = i
			g.buckets = append(g.buckets, mcBucket{cell: d.cell})
		}
		b := &g.buckets[i]
		b.sum += d.amount
		b.sumSq += d.amount * d.amount
		b.amounts = append(b.amounts, d.amount)
	}
	for _, g := range gs {
		sort.Slice(g.buckets, func(i, j int) bool { return g.buckets[i].cell < g.buckets[j].cell })
	}

	r := rand.New(rand.NewPCG(seed, 0x5eed_f0ca_57c0_ffee))
	p := make([]float64, len(cells))
	totals := make([]float64, draws)
	groupDraws := make([][]float64, groups)
	for g := range groupDraws {
		groupDraws[g] = make([]float64, draws)
	}
	for k := 0; k < draws; k++ {
		for c, cell := range cells {
			p[c] = drawBeta(r, cell.alpha, cell.beta)
		}
		for gi := range gs {
			g := &gs[gi]
			won := 0.0
			if g.n <= exactLimit {
				for _, b := range g.buckets {
					pc := p[b.cell]
					for _, a := range b.amounts {
						if r.Float64() < pc {
							won += a
						}
					}
				}
			} else {
				mean, variance := 0.0, 0.0
				for _, b := range g.buckets {
					pc := p[b.cell]
					mean += pc * b.sum
					variance += pc * (1 - pc) * b.sumSq
				}
				won = mean + math.Sqrt(variance)*r.NormFloat64()
				won = math.Min(math.Max(won, 0), g.sum)
			}
			totals[k] += won
			groupDraws[gi][k] = won
		}
	}
	res := spreadResult{groupP10: make([]float64, groups), groupP90: make([]float64, groups)}
	res.totalP10, res.totalP90 = quantiles(totals)
	for g := range groupDraws {
		res.groupP10[g], res.groupP90[g] = quantiles(groupDraws[g])
	}
	return res
}

// scaled returns r with every amount multiplied by k > 0: the spread of
// the same deals with their amounts multiplied by k.
func (r *spreadResult) scaled(k float64) *spreadResult {
	out := &spreadResult{totalP10: r.totalP10 * k, totalP90: r.totalP90 * k,
		groupP10: make([]float64, len(r.groupP10)), groupP90: make([]float64, len(r.groupP90))}
	for g := range r.groupP10 {
		out.groupP10[g], out.groupP90[g] = r.groupP10[g]*k, r.groupP90[g]*k
	}
	return out
}

// quantiles returns the 10th and 90th percentiles of xs (linear
// interpolation between order statistics); xs is sorted in place.
func quantiles(xs []float64) (p10, p90 float64) {
	if len(xs) == 0 {
		return 0, 0
	}
	sort.Float64s(xs)
	return quantileSorted(xs, 0.1), quantileSorted(xs, 0.9)
}

func quantileSorted(xs []float64, q float64) float64 {
	pos := q * float64(len(xs)-1)
	i := int(pos)
	if i >= len(xs)-1 {
		return xs[len(xs)-1]
	}
	f := pos - float64(i)
	return xs[i] + f*(xs[i+1]-xs[i])
}
