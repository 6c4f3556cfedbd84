package exporttest

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The oracle's answers, in the API's result types, from the folds of
// package book alone. Definitions are left empty: the comparison skips
// them.

// query is one question's dates and options.
type query struct {
	asOf, from, to time.Time
	window         *int   // funnel window_days
	by, interval   string // funnel breakdown
	fromStep       string // cycle-time from_step
}

var edges = []int{0, 7, 14, 30, 60, 90, 180}

// buckets is a histogram of seconds by edges.
func buckets(secs []int64) []bucket {
	out := make([]bucket, len(edges))
	for i, lo := range edges {
		out[i].MinDays = lo
		if i+1 < len(edges) {
			hi := edges[i+1]
			out[i].MaxDays = &hi
			out[i].Label = fmt.Sprintf("%d-%dd", lo, hi)
		} else {
			out[i].Label = fmt.Sprintf("%dd+", lo)
		}
	}
	for _, s := range secs {
		for i := len(edges) - 1; i >= 0; i-- {
			if s >= int64(edges[i])*86400 {
				out[i].Count++
				break
			}
		}
	}
	return out
}

// quantiles are the median, p75 and p90 in days of secs: sorted[min(n-1,
// floor(q*n))]; nil when empty.
func quantiles(secs []int64) (med, p75, p90 *float64) {
	if len(secs) == 0 {
		return nil, nil, nil
	}
	s := slices.Clone(secs)
	slices.Sort(s)
	q := func(q float64) *float64 {
		i := min(len(s)-1, int(q*float64(len(s))))
		v := float64(s[i]) / 86400
		return &v
	}
	return q(0.5), q(0.75), q(0.9)
}

func ratio(num, den float64) *float64 {
	if den == 0 {
		return nil
	}
	r := num / den
	return &r
}

// rateTable is the oracle's own reading of the operator's rate table:
// one unit of a currency is worth rate units of base from a date (UTC)
// until the next row of that currency; base and "" are worth 1.
type rateTable struct {
	base  string
	rates map[string][]datedRate // by date
}

type datedRate struct {
	from time.Time
	rate float64
}

// rate is the value of one unit of cur in base on on.
func (r *rateTable) rate(cur string, on time.Time) float64 {
	v := 1.0
	if cur == "" || cur == r.base {
		return v
	}
	for _, d := range r.rates[cur] {
		if !d.from.After(on) {
			v = d.rate
		}
	}
	return v
}

// money is how an answer shows its scalar amounts (README, "Currencies"):
// the plain sums when all its amounts are in one currency, converted to
// the base currency at the rates of a date with a rate table, else null.
type money struct {
	rates map[string]float64
	mixed bool
	cur   string
}

// money decides it for an answer whose amounts are in the currencies
// present, the rates of on.
func (b *book) money(present map[string]bool, on time.Time) money {
	if b.fx == nil {
		var m money
		for c := range present {
			m.mixed = m.mixed || len(present) > 1
			m.cur = c
		}
		return m
	}
	m := money{rates: map[string]float64{}}
	for c := range present {
		m.rates[c] = b.fx.rate(c, on) / b.fx.rate(b.fx.base, on)
	}
	return m
}

// sums are a counts object's amount figures summed per currency, in the
// order of its fields.
type sums map[string][]float64

func (s sums) add(cur string, n, i int, v float64) {
	if s[cur] == nil {
		s[cur] = make([]float64, n)
	}
	s[cur][i] += v
}

// shown are the sums of the currencies with an amount that is not 0: the
// others are left out of amounts_by_currency.
func (s sums) shown() map[string][]float64 {
	out := map[string][]float64{}
	for c, v := range s {
		if slices.ContainsFunc(v, func(x float64) bool { return x != 0 }) {
			out[c] = v
		}
	}
	return out
}

// present adds the currencies shown to p.
func (s sums) present(p map[string]bool) {
	for c := range s.shown() {
		p[c] = true
	}
}

// scalar is figure i by m.
func (m money) scalar(s sums, i int) *float64 {
	if m.mixed {
		return nil
	}
	v := 0.0
	for c, a := range s {
		switch {
		case m.rates != nil:
			v += a[i] * m.rates[c]
		case c == m.cur:
			v += a[i]
		}
	}
	return &v
}

func ratioPtr(num, den *float64) *float64 {
	if num == nil || den == nil {
		return nil
	}
	return ratio(*num, *den)
}

func plus(a, b *float64) *float64 {
	if a == nil || b == nil {
		return nil
	}
	v := *a + *b
	return &v
}

func stepName(ladder []string, i int) string {
	if i >= 1 && i <= len(ladder) {
		return ladder[i-1]
	}
	return ""
}

func (b *book) steps() []string {
	out := make([]string, b.l.Len())
	for i := range out {
		out[i] = b.l.Key(i + 1)
	}
	return out
}

// period is the first day of t's week, month or quarter, "" for none.
func period(t time.Time, interval string) string {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch interval {
	case "week":
		d = d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	case "month":
		d = time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC)
	case "quarter":
		d = time.Date(d.Year(), time.Month((int(d.Month())-1)/3*3+1), 1, 0, 0, 0, 0, time.UTC)
	default:
		return ""
	}
	return d.Format(time.DateOnly)
}

func byValue(f facts, by string) string {
	switch by {
	case "owner":
		return f.owner
	case "team":
		return f.team
	case "segment":
		return f.segment
	case "source":
		return f.source
	case "product":
		return f.product
	}
	if k, ok := strings.CutPrefix(by, "attr."); ok {
		return f.attrs[k]
	}
	return ""
}

// cohort accumulates one funnel cohort.
type cohort struct {
	c           funnelCounts
	amounts     sums    // reached, converted, still open, dropped, skipped
	secs        []int64 // time to convert of the converted that did not skip
	convSkipped int64
}

func (a *cohort) add(f facts, conv, dropped, skipped bool, secs int64) {
	if a.amounts == nil {
		a.amounts = sums{}
	}
	add := func(i int) { a.amounts.add(f.currency, 5, i, f.amount) }
	a.c.Reached++
	add(0)
	switch {
	case conv:
		a.c.Converted++
		add(1)
		if skipped {
			a.convSkipped++
		} else {
			a.secs = append(a.secs, secs)
		}
	case dropped:
		a.c.Dropped++
		add(3)
	default:
		a.c.StillOpen++
		add(2)
	}
	if skipped {
		a.c.Skipped++
		add(4)
	}
}

func (a *cohort) counts(m money) funnelCounts {
	c := a.c
	c.TimeToConvert = timeToConvert{N: int64(len(a.secs)), Skipped: a.convSkipped, Histogram: buckets(a.secs)}
	c.TimeToConvert.Median, c.TimeToConvert.P75, c.TimeToConvert.P90 = quantiles(a.secs)
	c.ConversionRateDecided = ratio(float64(c.Converted), float64(c.Converted+c.Dropped))
	c.ConversionRateReached = ratio(float64(c.Converted), float64(c.Reached))
	c.ReachedAmount, c.ConvertedAmount = m.scalar(a.amounts, 0), m.scalar(a.amounts, 1)
	c.StillOpenAmount, c.DroppedAmount, c.SkippedAmount = m.scalar(a.amounts, 2), m.scalar(a.amounts, 3), m.scalar(a.amounts, 4)
	c.AmountConversionRateDecided = ratioPtr(c.ConvertedAmount, plus(c.ConvertedAmount, c.DroppedAmount))
	c.AmountConversionRateReached = ratioPtr(c.ConvertedAmount, c.ReachedAmount)
	c.AmountsByCurrency = map[string]funnelAmounts{}
	for cur, v := range a.amounts.shown() {
		c.AmountsByCurrency[cur] = funnelAmounts{ReachedAmount: v[0], ConvertedAmount: v[1], StillOpenAmount: v[2],
			DroppedAmount: v[3], SkippedAmount: v[4],
			AmountConversionRateDecided: ratio(v[1], v[1]+v[3]), AmountConversionRateReached: ratio(v[1], v[0])}
	}
	return c
}

// funnel: the cohort of step K reached K (gained K or a later step) in
// [from, to) by as_of; converted when it reached K+1 (within the window);
// dropped when not converted and closed as of as_of, or past its window;
// skipped when K itself was not gained at its reach time.
func (b *book) funnel(q query) *funnelResult {
	ladder := b.steps()
	deals := b.at(q.asOf)
	type gkey struct{ period, key string }
	alls := make([]*cohort, len(ladder))
	groups := make([]map[gkey]*cohort, len(ladder))
	present := map[string]bool{}
	for k := 1; k < len(ladder); k++ {
		all := &cohort{}
		alls[k], groups[k] = all, map[gkey]*cohort{}
		for _, d := range deals {
			rk := d.reach[k]
			if rk.IsZero() || rk.Before(q.from) || !rk.Before(q.to) {
				continue
			}
			rk1 := d.reach[k+1]
			secs := int64(rk1.Sub(rk) / time.Second)
			conv := !rk1.IsZero() && (q.window == nil || secs <= int64(*q.window)*86400)
			dropped := !conv && (!d.open() || q.window != nil && !rk.AddDate(0, 0, *q.window).After(q.asOf))
			skipped := !d.gained[k].Equal(rk)
			all.add(d.f, conv, dropped, skipped, secs)
			if q.by != "" || q.interval != "" {
				gk := gkey{period(rk, q.interval), byValue(d.f, q.by)}
				if groups[k][gk] == nil {
					groups[k][gk] = &cohort{}
				}
				groups[k][gk].add(d.f, conv, dropped, skipped, secs)
			}
		}
		all.amounts.present(present)
		for _, g := range groups[k] {
			g.amounts.present(present)
		}
	}
	m := b.money(present, q.asOf)
	res := &funnelResult{}
	for k := 1; k < len(ladder); k++ {
		st := funnelStep{FromStep: ladder[k-1], FromIndex: k, ToStep: ladder[k], ToIndex: k + 1, funnelCounts: alls[k].counts(m)}
		for gk, a := range groups[k] {
			st.Groups = append(st.Groups, funnelGroup{Period: gk.period, Key: gk.key, funnelCounts: a.counts(m)})
		}
		slices.SortFunc(st.Groups, func(a, b funnelGroup) int {
			return cmp.Or(cmp.Compare(a.Period, b.Period), cmp.Compare(a.Key, b.Key))
		})
		res.Steps = append(res.Steps, st)
	}
	return res
}

// stalls: the deals open as of as_of by highest step gained; days since
// the last commitment (see deal.reference); stalled, and since when, as
// the fold says (see deal.clock and deal.stallAt).
func (b *book) stalls(q query) *stallsResult {
	ladder := b.steps()
	res := &stallsResult{Page: 1, PageSize: maxPageSize, Deals: []stalledDeal{}}
	steps := make([]stallStep, len(ladder)+1)
	secs := make([][]int64, len(ladder)+1)
	amounts := make([]sums, len(ladder)+1) // open, stalled
	total := sums{}
	for i := range steps {
		steps[i] = stallStep{StepIndex: i, Step: stepName(ladder, i)}
		amounts[i] = sums{}
	}
	for _, d := range b.at(q.asOf) {
		if d.first.IsZero() || !d.open() {
			continue
		}
		days := int64(q.asOf.Sub(d.reference())/time.Second) / 86400
		s := &steps[d.highest]
		s.Open++
		amounts[d.highest].add(d.f.currency, 2, 0, d.f.amount)
		total.add(d.f.currency, 2, 0, d.f.amount)
		secs[d.highest] = append(secs[d.highest], days*86400)
		if at := d.stalledSince; !at.IsZero() {
			s.Stalled++
			amounts[d.highest].add(d.f.currency, 2, 1, d.f.amount)
			total.add(d.f.currency, 2, 1, d.f.amount)
			res.Deals = append(res.Deals, stalledDeal{
				OpportunityID: d.id, OwnerID: d.f.owner, Team: d.f.team, Amount: d.f.amount, Currency: d.f.currency,
				StepIndex: d.highest, Step: stepName(ladder, d.highest), DaysSinceCommitment: days, StalledSince: at,
			})
		}
	}
	present := map[string]bool{}
	total.present(present)
	m := b.money(present, q.asOf)
	by := func(s sums) map[string]stallAmounts {
		out := map[string]stallAmounts{}
		for c, v := range s.shown() {
			out[c] = stallAmounts{OpenAmount: v[0], StalledAmount: v[1]}
		}
		return out
	}
	for i := range steps {
		steps[i].DaysSinceCommitment = buckets(secs[i])
		steps[i].OpenAmount, steps[i].StalledAmount = m.scalar(amounts[i], 0), m.scalar(amounts[i], 1)
		steps[i].AmountsByCurrency = by(amounts[i])
		res.Open += steps[i].Open
		res.Stalled += steps[i].Stalled
	}
	res.OpenAmount, res.StalledAmount, res.AmountsByCurrency = m.scalar(total, 0), m.scalar(total, 1), by(total)
	res.Steps = steps
	slices.SortFunc(res.Deals, func(a, b stalledDeal) int {
		return cmp.Or(cmp.Compare(b.Amount, a.Amount), cmp.Compare(a.OpportunityID, b.OpportunityID))
	})
	return res
}

// reference is what days since the last commitment count from: the last
// gain, else the deal's creation once the CRM knows the deal (the CRM's
// created_at when earlier than its first CRM event), else its first
// event (a call before the CRM knew the deal).
func (d *deal) reference() time.Time {
	switch {
	case !d.lastGain.IsZero():
		return d.lastGain
	case !d.created.IsZero():
		return d.created
	}
	return d.first
}

// movement between from and to (events after as_of ignored): by the
// highest step at to; amounts as of to.
func (b *book) movement(q query) *movementResult {
	ladder := b.steps()
	limit := q.to
	if q.asOf.Before(limit) {
		limit = q.asOf
	}
	flimit := q.from
	if limit.Before(flimit) {
		flimit = limit
	}
	in := func(t time.Time) bool { return !t.Before(q.from) && t.Before(q.to) && !t.After(limit) }
	within := func(ts []time.Time) bool { return slices.ContainsFunc(ts, in) }
	atFrom := b.at(flimit)
	counts := make([][8]int64, len(ladder)+1)
	amounts := make([]sums, len(ladder)+1)
	total := sums{}
	var totalCounts [8]int64
	for i := range amounts {
		amounts[i] = sums{}
	}
	for i, d := range b.at(limit) {
		if d.first.IsZero() {
			continue
		}
		f := atFrom[i]
		var won, lost bool
		for _, c := range d.closes {
			if in(c.at) {
				won = won || c.status == "won"
				lost = lost || c.status == "lost"
			}
		}
		bothOpen := !f.first.IsZero() && f.open() && d.open()
		known := !f.f.closeDate.IsZero() && !d.f.closeDate.IsZero()
		for j, ok := range []bool{
			in(d.created), d.highest > f.highest, within(d.regress), within(d.stalls),
			bothOpen && known && d.f.closeDate.Before(f.f.closeDate), bothOpen && known && d.f.closeDate.After(f.f.closeDate),
			won, lost,
		} {
			if ok {
				counts[d.highest][j]++
				totalCounts[j]++
				amounts[d.highest].add(d.f.currency, 8, j, d.f.amount)
				total.add(d.f.currency, 8, j, d.f.amount)
			}
		}
	}
	present := map[string]bool{}
	total.present(present)
	m := b.money(present, limit)
	mc := func(n [8]int64, s sums) movementCounts {
		c := movementCounts{New: n[0], Advanced: n[1], Regressed: n[2], Stalled: n[3], PulledIn: n[4], PushedOut: n[5], Won: n[6], Lost: n[7],
			NewAmount: m.scalar(s, 0), AdvancedAmount: m.scalar(s, 1), RegressedAmount: m.scalar(s, 2), StalledAmount: m.scalar(s, 3),
			PulledInAmount: m.scalar(s, 4), PushedOutAmount: m.scalar(s, 5), WonAmount: m.scalar(s, 6), LostAmount: m.scalar(s, 7),
			AmountsByCurrency: map[string]movementAmounts{}}
		for cur, v := range s.shown() {
			c.AmountsByCurrency[cur] = movementAmounts{NewAmount: v[0], AdvancedAmount: v[1], RegressedAmount: v[2], StalledAmount: v[3],
				PulledInAmount: v[4], PushedOutAmount: v[5], WonAmount: v[6], LostAmount: v[7]}
		}
		return c
	}
	res := &movementResult{Total: mc(totalCounts, total)}
	for i := range counts {
		res.ByStep = append(res.ByStep, movementStep{StepIndex: i, Step: stepName(ladder, i), movementCounts: mc(counts[i], amounts[i])})
	}
	return res
}

// cycleTime: the deals closed as of as_of whose last close is in [from,
// to); days from creation (or reaching from_step) to that close; with by,
// per by value as of as_of too.
func (b *book) cycleTime(q query) *cycleResult {
	k := 0
	if q.fromStep != "" {
		k = b.l.Index(q.fromStep)
	}
	type acc struct {
		secs       [3][]int64 // won, lost, closed
		notReached [3]int64
	}
	var all acc
	groups := map[string]*acc{}
	for _, d := range b.at(q.asOf) {
		if d.open() || len(d.closes) == 0 {
			continue
		}
		last := d.closes[len(d.closes)-1]
		if last.at.Before(q.from) || !last.at.Before(q.to) {
			continue
		}
		st := d.created
		if k > 0 {
			st = d.reach[k]
		}
		o := 0
		if d.f.status == "lost" {
			o = 1
		}
		accs := []*acc{&all}
		if q.by != "" {
			key := byValue(d.f, q.by)
			if groups[key] == nil {
				groups[key] = &acc{}
			}
			accs = append(accs, groups[key])
		}
		for _, a := range accs {
			for _, i := range []int{o, 2} {
				if st.IsZero() || st.After(last.at) {
					a.notReached[i]++
				} else {
					a.secs[i] = append(a.secs[i], int64(last.at.Sub(st)/time.Second))
				}
			}
		}
	}
	outcomes := func(a *acc) cycleOutcomes {
		var o cycleOutcomes
		for i, ct := range []*cycleTime{&o.Won, &o.Lost, &o.Closed} {
			ct.N, ct.NotReached = int64(len(a.secs[i])), a.notReached[i]
			ct.Median, ct.P75, ct.P90 = quantiles(a.secs[i])
		}
		return o
	}
	res := &cycleResult{FromStep: q.fromStep, FromIndex: k, cycleOutcomes: outcomes(&all)}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		res.Groups = append(res.Groups, cycleGroup{Key: key, cycleOutcomes: outcomes(groups[key])})
	}
	return res
}

// stageHistory: every entry into a CRM stage as of as_of; with by, per by
// value as of as_of too.
func (b *book) stageHistory(q query) *stageHistoryResult {
	deals := b.at(q.asOf)
	res := &stageHistoryResult{stageHistory: b.history(deals)}
	if q.by == "" {
		return res
	}
	groups := map[string][]*deal{}
	for _, d := range deals {
		if len(d.entries) > 0 {
			key := byValue(d.f, q.by)
			groups[key] = append(groups[key], d)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(groups)) {
		res.Groups = append(res.Groups, stageHistoryGroup{Key: key, stageHistory: b.history(groups[key])})
	}
	return res
}

// history is the stage history of deals.
func (b *book) history(deals []*deal) stageHistory {
	ladder := b.steps()
	stepOf := func(stage string) int { s, _ := b.l.StageStep("*", stage); return s }
	stats := map[string]*stageStats{}
	durs := map[string][]int64{}
	type move struct{ from, to string }
	moves := map[move]int64{}
	var h stageHistory
	for _, d := range deals {
		if len(d.entries) == 0 {
			continue
		}
		h.Total.Deals++
		for i, e := range d.entries {
			st := stats[e.stage]
			if st == nil {
				st = &stageStats{Stage: e.stage, StepIndex: stepOf(e.stage), Step: stepName(ladder, stepOf(e.stage))}
				stats[e.stage] = st
			}
			st.Entries++
			h.Total.Entries++
			if slices.ContainsFunc(d.entries[:i], func(m mark) bool { return m.stage == e.stage }) {
				st.ReEntries++
				h.Total.ReEntries++
			} else {
				st.Deals++
			}
			if i == len(d.entries)-1 {
				if d.open() {
					st.Current++
				}
			} else {
				durs[e.stage] = append(durs[e.stage], int64(d.entries[i+1].at.Sub(e.at)/time.Second))
			}
			if i == 0 {
				st.Initial++
				continue
			}
			prev := d.entries[i-1].stage
			moves[move{prev, e.stage}]++
			h.Total.Moves++
			switch from, to := stepOf(prev), stepOf(e.stage); {
			case from == 0 || to == 0:
				h.Total.Unordered++
			case to > from:
				h.Total.Forward++
			case to < from:
				h.Total.Backward++
				st.Backward++
			default:
				h.Total.Lateral++
			}
		}
	}
	h.Stages = []stageStats{}
	for stage, st := range stats {
		st.TimeInStage.N = int64(len(durs[stage]))
		st.TimeInStage.Median, st.TimeInStage.P75, st.TimeInStage.P90 = quantiles(durs[stage])
		h.Stages = append(h.Stages, *st)
	}
	h.Transitions = []stageTransition{}
	for m, n := range moves {
		from, to := stepOf(m.from), stepOf(m.to)
		dir := "lateral"
		switch {
		case from == 0 || to == 0:
			dir = "unordered"
		case to > from:
			dir = "forward"
		case to < from:
			dir = "backward"
		}
		h.Transitions = append(h.Transitions, stageTransition{From: m.from, To: m.to, FromStepIndex: from, ToStepIndex: to, Direction: dir, Count: n})
	}
	slices.SortFunc(h.Stages, func(a, b stageStats) int {
		return cmp.Or(cmp.Compare(a.StepIndex, b.StepIndex), cmp.Compare(a.Stage, b.Stage))
	})
	slices.SortFunc(h.Transitions, func(a, b stageTransition) int {
		return cmp.Or(cmp.Compare(a.FromStepIndex, b.FromStepIndex), cmp.Compare(a.From, b.From),
			cmp.Compare(a.ToStepIndex, b.ToStepIndex), cmp.Compare(a.To, b.To))
	})
	return h
}

// crmPipeline is the stage-weighted pipeline of the deals open as of
// as_of: amount × CRM probability, in total and by owner, team and close
// month ("none" without a close date).
func (b *book) crmPipeline(q query) *crmPipeline {
	p := &crmPipeline{ByOwner: map[string]crmGroup{}, ByTeam: map[string]crmGroup{}, ByClosePeriod: map[string]crmGroup{}}
	add := func(g crmGroup, d *deal) crmGroup {
		g.Deals++
		g.Amount += d.f.amount
		g.CRMWeighted += d.f.amount * min(max(d.f.probability, 0), 1)
		return g
	}
	for _, d := range b.at(q.asOf) {
		if d.first.IsZero() || !d.open() {
			continue
		}
		cp := "none"
		if !d.f.closeDate.IsZero() {
			cp = d.f.closeDate.Format("2006-01")
		}
		p.Total = add(p.Total, d)
		p.ByOwner[d.f.owner] = add(p.ByOwner[d.f.owner], d)
		p.ByTeam[d.f.team] = add(p.ByTeam[d.f.team], d)
		p.ByClosePeriod[cp] = add(p.ByClosePeriod[cp], d)
	}
	return p
}

// missed: the misses and interactions of every deal (see touch) with a
// time in [from, to) at or before as_of, by expected step, reason and the
// owner of their facts; missed_interactions counts distinct interactions
// with a miss, leaving out close_date_pushed and no_decision (no
// interaction); miss_rate = missed_interactions / interactions, none for
// a reason; deals and value_at_stake: each deal with a miss in a row
// once, at its amount and currency as of as_of.
func (b *book) missed(q query) *missedResult {
	in := func(t time.Time) bool { return !t.Before(q.from) && t.Before(q.to) && !t.After(q.asOf) }
	type row struct {
		missedRow
		amounts sums
		seen    map[string]bool
		deals   map[string]bool
	}
	rows := map[string]map[string]*row{"total": {}, "step": {}, "reason": {}, "owner": {}}
	get := func(dim, key string, step int) *row {
		r := rows[dim][key]
		if r == nil {
			r = &row{missedRow: missedRow{Key: key, StepIndex: step}, amounts: sums{}, seen: map[string]bool{}, deals: map[string]bool{}}
			rows[dim][key] = r
		}
		return r
	}
	ladder := b.steps()
	for _, d := range b.at(now) {
		f := fold(b.l, d.id, b.opps[d.id], q.asOf).f
		for _, m := range d.misses {
			if !in(m.at) {
				continue
			}
			for _, r := range []*row{get("total", "", 0), get("step", stepName(ladder, m.step), m.step), get("reason", m.reason, 0), get("owner", m.owner, 0)} {
				r.Missed++
				if !r.deals[d.id] {
					r.deals[d.id] = true
					r.Deals++
					r.amounts.add(f.currency, 1, 0, f.amount)
				}
				if m.reason != "close_date_pushed" && m.reason != "no_decision" && m.interaction != "" && !r.seen[m.interaction] {
					r.seen[m.interaction] = true
					r.MissedInteractions++
				}
			}
		}
		for _, h := range d.held {
			if in(h.at) {
				for _, r := range []*row{get("total", "", 0), get("step", stepName(ladder, h.step), h.step), get("owner", h.owner, 0)} {
					r.Interactions++
				}
			}
		}
	}
	present := map[string]bool{}
	get("total", "", 0).amounts.present(present)
	m := b.money(present, q.asOf)
	out := func(dim string) []missedRow {
		list := []missedRow{}
		for _, r := range rows[dim] {
			r.ValueAtStake = m.scalar(r.amounts, 0)
			r.AmountsByCurrency = map[string]missedAmounts{}
			for c, v := range r.amounts.shown() {
				r.AmountsByCurrency[c] = missedAmounts{ValueAtStake: v[0]}
			}
			if dim != "reason" {
				r.MissRate = ratio(float64(r.MissedInteractions), float64(r.Interactions))
			}
			list = append(list, r.missedRow)
		}
		slices.SortFunc(list, func(a, b missedRow) int {
			return cmp.Or(cmp.Compare(a.StepIndex, b.StepIndex), cmp.Compare(a.Key, b.Key))
		})
		return list
	}
	res := &missedResult{ByStep: out("step"), ByReason: out("reason"), ByOwner: out("owner")}
	if t := out("total"); len(t) > 0 {
		res.Total = t[0]
	} else {
		res.Total.AmountsByCurrency = map[string]missedAmounts{}
		res.Total.ValueAtStake = m.scalar(sums{}, 0)
	}
	return res
}

// The deal endpoints, by the rules internal/deals gives in
// definitions.rules: a deal is listed as of as_of when it has an event at
// or before it, with its facts then; step = the highest step gained; days
// since commitment = floor((as_of - reference) / 86400) (see
// deal.reference); deals ordered by amount desc, each in its own
// currency, then opportunity_id. A warning holds only while the deal is
// open: stalled when its stall clock has run out (the stalled deals of
// /v1/stalls), close_date_pushed when it had a close_date_pushed miss in
// the 30 days up to as_of (after as_of - 30 days).

// warned reports whether d, folded to as_of, has the warning kind; full
// is d folded to the derivation's clock (its misses).
func (b *book) warned(d, full *deal, kind string, asOf time.Time) bool {
	if d.first.IsZero() || !d.open() {
		return false
	}
	switch kind {
	case "stalled":
		return !d.stalledSince.IsZero()
	case "close_date_pushed":
		return slices.ContainsFunc(full.misses, func(m touch) bool {
			return m.reason == "close_date_pushed" && !m.at.After(asOf) && m.at.After(asOf.Add(-30*24*time.Hour))
		})
	}
	panic("the oracle has no warning " + kind)
}

// dealList is the page of every deal keep selects as of as_of.
func (b *book) dealList(asOf time.Time, keep func(d, full *deal) bool) *dealList {
	ladder := b.steps()
	res := &dealList{Page: 1, PageSize: maxPageSize, Deals: []dealRow{}}
	fulls := b.at(now)
	for i, d := range b.at(asOf) {
		if d.first.IsZero() || !keep(d, fulls[i]) {
			continue
		}
		res.Deals = append(res.Deals, dealRow{
			OpportunityID: d.id, Name: d.name, OwnerID: d.f.owner, Team: d.f.team, Amount: d.f.amount, Currency: d.f.currency,
			CloseDate: closeDate(d.f), Stage: d.f.stage, Status: d.f.status, StepIndex: d.highest, Step: stepName(ladder, d.highest),
			DaysSinceCommitment: (asOf.Unix() - d.reference().Unix()) / 86400,
		})
	}
	res.Total = int64(len(res.Deals))
	slices.SortFunc(res.Deals, func(a, b dealRow) int {
		return cmp.Or(cmp.Compare(b.Amount, a.Amount), cmp.Compare(a.OpportunityID, b.OpportunityID))
	})
	return res
}

func closeDate(f facts) *string {
	if f.closeDate.IsZero() {
		return nil
	}
	s := f.closeDate.Format(time.DateOnly)
	return &s
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// dealView is one deal as of as_of: facts, steps (reached when it or a
// later step was gained; skipped when reached without being gained itself
// then), its misses at or before as_of in the fold's order, and its
// entries into CRM stages; nil when it has no event yet.
func (b *book) dealView(id string, asOf time.Time) *dealView {
	ladder := b.steps()
	d, full := fold(b.l, id, b.opps[id], asOf), fold(b.l, id, b.opps[id], now)
	if d.first.IsZero() {
		return nil
	}
	v := &dealView{OpportunityID: id, Name: d.name, HighestStepIndex: d.highest, HighestStep: stepName(ladder, d.highest),
		DaysSinceCommitment: (asOf.Unix() - d.reference().Unix()) / 86400, Misses: []dealMiss{}, StageHistory: []stageEntry{}}
	v.Facts = dealFacts{Stage: d.f.stage, Status: d.f.status, Amount: d.f.amount, Currency: d.f.currency, CloseDate: closeDate(d.f),
		OwnerID: d.f.owner, Team: d.f.team, Segment: d.f.segment, Source: d.f.source, Product: d.f.product,
		Probability: d.f.probability, Attributes: maps.Clone(d.f.attrs), CreatedAt: timePtr(d.created)}
	if v.Facts.Attributes == nil {
		v.Facts.Attributes = map[string]string{}
	}
	for k := 1; k <= len(ladder); k++ {
		p := stepProgress{StepIndex: k, Step: ladder[k-1], ReachedAt: timePtr(d.reach[k]), GainedAt: timePtr(d.gained[k])}
		p.Skipped = p.ReachedAt != nil && (p.GainedAt == nil || !p.GainedAt.Equal(*p.ReachedAt))
		v.Steps = append(v.Steps, p)
	}
	ms := slices.Clone(full.misses)
	slices.SortStableFunc(ms, func(a, b touch) int { return cmp.Or(cmp.Compare(a.at.Unix(), b.at.Unix()), cmp.Compare(a.pos, b.pos)) })
	for _, m := range ms {
		if !m.at.After(asOf) {
			v.Misses = append(v.Misses, dealMiss{At: m.at, Step: stepName(ladder, m.step), StepIndex: m.step, Reason: m.reason, InteractionID: m.interaction})
		}
	}
	for _, e := range d.entries {
		v.StageHistory = append(v.StageHistory, stageEntry{At: e.at, Stage: e.stage})
	}
	return v
}
