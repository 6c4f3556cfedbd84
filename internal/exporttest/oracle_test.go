package exporttest

import (
	"cmp"
	"fmt"
	"slices"
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
	return ""
}

// cohort accumulates one funnel cohort.
type cohort struct {
	c           funnelCounts
	secs        []int64 // time to convert of the converted that did not skip
	convSkipped int64
}

func (a *cohort) add(amount float64, conv, dropped, skipped bool, secs int64) {
	a.c.Reached++
	a.c.ReachedAmount += amount
	switch {
	case conv:
		a.c.Converted++
		a.c.ConvertedAmount += amount
		if skipped {
			a.convSkipped++
		} else {
			a.secs = append(a.secs, secs)
		}
	case dropped:
		a.c.Dropped++
		a.c.DroppedAmount += amount
	default:
		a.c.StillOpen++
		a.c.StillOpenAmount += amount
	}
	if skipped {
		a.c.Skipped++
		a.c.SkippedAmount += amount
	}
}

func (a *cohort) counts() funnelCounts {
	c := a.c
	c.TimeToConvert = timeToConvert{N: int64(len(a.secs)), Skipped: a.convSkipped, Histogram: buckets(a.secs)}
	c.TimeToConvert.Median, c.TimeToConvert.P75, c.TimeToConvert.P90 = quantiles(a.secs)
	c.ConversionRateDecided = ratio(float64(c.Converted), float64(c.Converted+c.Dropped))
	c.ConversionRateReached = ratio(float64(c.Converted), float64(c.Reached))
	c.AmountConversionRateDecided = ratio(c.ConvertedAmount, c.ConvertedAmount+c.DroppedAmount)
	c.AmountConversionRateReached = ratio(c.ConvertedAmount, c.ReachedAmount)
	return c
}

// funnel: the cohort of step K reached K (gained K or a later step) in
// [from, to) by as_of; converted when it reached K+1 (within the window);
// dropped when not converted and closed as of as_of, or past its window;
// skipped when K itself was not gained at its reach time.
func (b *book) funnel(q query) *funnelResult {
	ladder := b.steps()
	deals := b.at(q.asOf)
	res := &funnelResult{}
	for k := 1; k < len(ladder); k++ {
		all := &cohort{}
		type gkey struct{ period, key string }
		groups := map[gkey]*cohort{}
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
			all.add(d.f.amount, conv, dropped, skipped, secs)
			if q.by != "" || q.interval != "" {
				gk := gkey{period(rk, q.interval), byValue(d.f, q.by)}
				if groups[gk] == nil {
					groups[gk] = &cohort{}
				}
				groups[gk].add(d.f.amount, conv, dropped, skipped, secs)
			}
		}
		st := funnelStep{FromStep: ladder[k-1], FromIndex: k, ToStep: ladder[k], ToIndex: k + 1, funnelCounts: all.counts()}
		for gk, a := range groups {
			st.Groups = append(st.Groups, funnelGroup{Period: gk.period, Key: gk.key, funnelCounts: a.counts()})
		}
		slices.SortFunc(st.Groups, func(a, b funnelGroup) int {
			return cmp.Or(cmp.Compare(a.Period, b.Period), cmp.Compare(a.Key, b.Key))
		})
		res.Steps = append(res.Steps, st)
	}
	return res
}

// stalls: the deals open as of as_of by highest step gained; days since
// the last commitment (creation, else the first event, before any);
// stalled when the stall clock has run out (see deal.stallAt).
func (b *book) stalls(q query) *stallsResult {
	ladder := b.steps()
	res := &stallsResult{Page: 1, PageSize: maxPageSize, Deals: []stalledDeal{}}
	steps := make([]stallStep, len(ladder)+1)
	secs := make([][]int64, len(ladder)+1)
	for i := range steps {
		steps[i] = stallStep{StepIndex: i, Step: stepName(ladder, i)}
	}
	for _, d := range b.at(q.asOf) {
		if d.first.IsZero() || !d.open() {
			continue
		}
		ref := d.lastGain
		if ref.IsZero() {
			ref = d.created
		}
		if ref.IsZero() {
			ref = d.first
		}
		days := int64(q.asOf.Sub(ref)/time.Second) / 86400
		s := &steps[d.highest]
		s.Open++
		s.OpenAmount += d.f.amount
		secs[d.highest] = append(secs[d.highest], days*86400)
		if at, ok := d.stallAt(b.l); ok && !at.After(q.asOf) {
			s.Stalled++
			s.StalledAmount += d.f.amount
			res.Deals = append(res.Deals, stalledDeal{
				OpportunityID: d.id, OwnerID: d.f.owner, Team: d.f.team, Amount: d.f.amount,
				StepIndex: d.highest, Step: stepName(ladder, d.highest), DaysSinceCommitment: days, StalledSince: at,
			})
		}
	}
	for i := range steps {
		steps[i].DaysSinceCommitment = buckets(secs[i])
		res.Open += steps[i].Open
		res.OpenAmount += steps[i].OpenAmount
		res.Stalled += steps[i].Stalled
		res.StalledAmount += steps[i].StalledAmount
	}
	res.Steps = steps
	slices.SortFunc(res.Deals, func(a, b stalledDeal) int {
		return cmp.Or(cmp.Compare(b.Amount, a.Amount), cmp.Compare(a.OpportunityID, b.OpportunityID))
	})
	return res
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
	steps := make([]movementCounts, len(ladder)+1)
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
		s := &steps[d.highest]
		a := d.f.amount
		count := func(ok bool, n *int64, amt *float64) {
			if ok {
				*n++
				*amt += a
			}
		}
		count(in(d.created), &s.New, &s.NewAmount)
		count(d.highest > f.highest, &s.Advanced, &s.AdvancedAmount)
		count(within(d.regress), &s.Regressed, &s.RegressedAmount)
		count(within(d.stalls), &s.Stalled, &s.StalledAmount)
		count(bothOpen && known && d.f.closeDate.Before(f.f.closeDate), &s.PulledIn, &s.PulledInAmount)
		count(bothOpen && known && d.f.closeDate.After(f.f.closeDate), &s.PushedOut, &s.PushedOutAmount)
		count(won, &s.Won, &s.WonAmount)
		count(lost, &s.Lost, &s.LostAmount)
	}
	res := &movementResult{}
	for i, s := range steps {
		res.ByStep = append(res.ByStep, movementStep{StepIndex: i, Step: stepName(ladder, i), movementCounts: s})
		res.Total.add(s)
	}
	return res
}

// cycleTime: the deals closed as of as_of whose last close is in [from,
// to); days from creation (or reaching from_step) to that close.
func (b *book) cycleTime(q query) *cycleResult {
	k := 0
	if q.fromStep != "" {
		k = b.l.Index(q.fromStep)
	}
	res := &cycleResult{FromStep: q.fromStep, FromIndex: k}
	var secs [3][]int64 // won, lost, closed
	var notReached [3]int64
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
		for _, i := range []int{o, 2} {
			if st.IsZero() || st.After(last.at) {
				notReached[i]++
			} else {
				secs[i] = append(secs[i], int64(last.at.Sub(st)/time.Second))
			}
		}
	}
	out := []*cycleTime{&res.Won, &res.Lost, &res.Closed}
	for i, ct := range out {
		ct.N, ct.NotReached = int64(len(secs[i])), notReached[i]
		ct.Median, ct.P75, ct.P90 = quantiles(secs[i])
	}
	return res
}

// stageHistory: every entry into a CRM stage as of as_of.
func (b *book) stageHistory(q query) *stageHistory {
	ladder := b.steps()
	stepOf := func(stage string) int { s, _ := b.l.StageStep("*", stage); return s }
	stats := map[string]*stageStats{}
	durs := map[string][]int64{}
	type move struct{ from, to string }
	moves := map[move]int64{}
	var h stageHistory
	for _, d := range b.at(q.asOf) {
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
	return &h
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
