package metrics

// The oracle: the same metrics computed straightforwardly in Go over the
// current derived events, independent of the SQL.

import (
	"slices"
	"sort"
	"time"

	"github.com/commitflow/commitflow/internal/derive"
	"github.com/commitflow/commitflow/internal/store"
)

// currentEvents applies ReplacingMergeTree semantics: per (tenant,
// opportunity, id) the row with the highest version wins; retracted
// winners are dropped.
func currentEvents(rows []store.DerivedRow) []derive.Derived {
	type key struct{ tenant, opp, id string }
	best := map[key]store.DerivedRow{}
	for _, r := range rows {
		k := key{r.Tenant, r.OpportunityID, r.ID}
		if b, ok := best[k]; !ok || r.Version > b.Version {
			best[k] = r
		}
	}
	var out []derive.Derived
	for _, r := range best {
		if !r.Retracted {
			d := r.Derived
			d.OccurredAt = d.OccurredAt.UTC().Truncate(time.Second)
			out = append(out, d)
		}
	}
	return out
}

// oppEvents groups the tenant's events at or before limit by opportunity.
func oppEvents(evs []derive.Derived, tenant string, limit time.Time) map[string][]derive.Derived {
	m := map[string][]derive.Derived{}
	for _, e := range evs {
		if e.Tenant == tenant && !e.OccurredAt.After(limit) {
			m[e.OpportunityID] = append(m[e.OpportunityID], e)
		}
	}
	return m
}

// later reports whether a comes after b in fold order: (occurred_at, seq,
// id).
func later(a, b derive.Derived) bool {
	if !a.OccurredAt.Equal(b.OccurredAt) {
		return a.OccurredAt.After(b.OccurredAt)
	}
	if a.Seq != b.Seq {
		return a.Seq > b.Seq
	}
	return a.ID > b.ID
}

// factsAt is the snapshot of the latest event at or before d.
func factsAt(evs []derive.Derived, d time.Time) (derive.Snapshot, bool) {
	var best *derive.Derived
	for i := range evs {
		e := &evs[i]
		if e.OccurredAt.After(d) {
			continue
		}
		if best == nil || later(*e, *best) {
			best = e
		}
	}
	if best == nil {
		return derive.Snapshot{}, false
	}
	return best.Snapshot, true
}

// reachTime is the earliest commitment.gained with step >= k.
func reachTime(evs []derive.Derived, k int) (time.Time, bool) {
	var t time.Time
	ok := false
	for _, e := range evs {
		if e.Type == derive.CommitmentGained && e.StepIndex >= k && (!ok || e.OccurredAt.Before(t)) {
			t, ok = e.OccurredAt, true
		}
	}
	return t, ok
}

func oracleHistogram(secs []int64) []Bucket {
	b := newBuckets()
	for _, s := range secs {
		for i := len(bucketEdges) - 1; i >= 0; i-- {
			if s >= int64(bucketEdges[i])*86400 {
				b[i].Count++
				break
			}
		}
	}
	return b
}

func quantile(sorted []float64, q float64) *float64 {
	n := len(sorted)
	if n == 0 {
		return nil
	}
	i := int(q * float64(n))
	if i > n-1 {
		i = n - 1
	}
	v := sorted[i]
	return &v
}

// oracleRates is a rate table as the oracles see it, written by hand in
// a test: the value of one unit of each currency in To on the date On.
type oracleRates struct {
	rates    map[string]float64
	to, base string
	on       time.Time
}

// oracleCur shows the amounts of one answer: every amount counted is
// converted as it is added (unconverted without rates), and the
// currencies of the answer's non-zero amounts are noted; a scalar is null
// when they are several and nothing converts them.
type oracleCur struct {
	r    *oracleRates
	seen map[string]bool
}

func newOracleCur(r *oracleRates) *oracleCur { return &oracleCur{r: r, seen: map[string]bool{}} }

// add notes an amount counted and returns it as the scalars sum it.
func (o *oracleCur) add(amount float64, cur string) float64 {
	if amount != 0 {
		o.seen[cur] = true
	}
	if o.r == nil {
		return amount
	}
	return amount * o.r.rates[cur]
}

// scalar is a scalar amount summed from add's values, once every amount
// of the answer is added.
func (o *oracleCur) scalar(x float64) *float64 {
	if o.r == nil && len(o.seen) > 1 {
		return nil
	}
	return &x
}

// defs records the answer's currency in d.
func (o *oracleCur) defs(d *Definitions) {
	if o.r == nil {
		cur := ""
		for c := range o.seen {
			if len(o.seen) == 1 {
				cur = c
			}
		}
		d.Currency = &cur
		d.Rules = append(slices.Clip(d.Rules), currencyRule)
		return
	}
	rates := map[string]float64{}
	for c := range o.seen {
		rates[c] = o.r.rates[c]
	}
	to := o.r.to
	d.Currency = &to
	d.Converted = &Conversion{To: to, RatesOn: o.r.on.Format(time.DateOnly), Rates: rates}
	d.Rules = append(slices.Clip(d.Rules), convertedRule(to, o.r.on, o.r.base))
}

// nonZero returns m without its zero values, nil when none is left.
func nonZero[T comparable](m map[string]T) map[string]T {
	var out map[string]T
	for k, v := range m {
		var zero T
		if v != zero {
			if out == nil {
				out = map[string]T{}
			}
			out[k] = v
		}
	}
	return out
}

type funnelAcc struct {
	c           FunnelCounts
	amt         [5]float64 // reached, converted, still open, dropped, skipped, as the scalars sum them
	by          map[string]FunnelAmounts
	secs        []int64 // time to convert of the converted that did not skip
	skippedConv int64
}

func (a *funnelAcc) add(o *oracleCur, amount float64, cur string, conv, dropped, skipped bool, secs int64) {
	x := o.add(amount, cur)
	if a.by == nil {
		a.by = map[string]FunnelAmounts{}
	}
	f := a.by[cur]
	a.c.Reached++
	a.amt[0] += x
	f.ReachedAmount += amount
	switch {
	case conv:
		a.c.Converted++
		a.amt[1] += x
		f.ConvertedAmount += amount
		if skipped {
			a.skippedConv++
		} else {
			a.secs = append(a.secs, secs)
		}
	case dropped:
		a.c.Dropped++
		a.amt[3] += x
		f.DroppedAmount += amount
	default:
		a.c.StillOpen++
		a.amt[2] += x
		f.StillOpenAmount += amount
	}
	if skipped {
		a.c.Skipped++
		a.amt[4] += x
		f.SkippedAmount += amount
	}
	a.by[cur] = f
}

// counts are the counts of the cohort, once every amount of the answer is
// added to o.
func (a *funnelAcc) counts(o *oracleCur) FunnelCounts {
	c := a.c
	c.ReachedAmount, c.ConvertedAmount, c.StillOpenAmount = o.scalar(a.amt[0]), o.scalar(a.amt[1]), o.scalar(a.amt[2])
	c.DroppedAmount, c.SkippedAmount = o.scalar(a.amt[3]), o.scalar(a.amt[4])
	if c.ReachedAmount != nil {
		c.AmountConversionRateDecided = ratio(a.amt[1], a.amt[1]+a.amt[3])
		c.AmountConversionRateReached = ratio(a.amt[1], a.amt[0])
	}
	c.AmountsByCurrency = nonZero(a.by)
	for cur, f := range c.AmountsByCurrency {
		f.AmountConversionRateDecided = ratio(f.ConvertedAmount, f.ConvertedAmount+f.DroppedAmount)
		f.AmountConversionRateReached = ratio(f.ConvertedAmount, f.ReachedAmount)
		c.AmountsByCurrency[cur] = f
	}
	days := make([]float64, len(a.secs))
	for i, s := range a.secs {
		days[i] = float64(s) / 86400
	}
	sort.Float64s(days)
	c.TimeToConvert = TimeToConvert{
		N:         int64(len(days)),
		Skipped:   a.skippedConv,
		Median:    quantile(days, 0.5),
		P75:       quantile(days, 0.75),
		P90:       quantile(days, 0.9),
		Histogram: oracleHistogram(a.secs),
	}
	c.setRates()
	return c
}

func periodStart(t time.Time, interval string) string {
	t = t.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	switch interval {
	case "week":
		wd := (int(d.Weekday()) + 6) % 7 // Monday = 0
		d = d.AddDate(0, 0, -wd)
	case "month":
		d = time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC)
	case "quarter":
		m := (int(d.Month())-1)/3*3 + 1
		d = time.Date(d.Year(), time.Month(m), 1, 0, 0, 0, 0, time.UTC)
	default:
		return ""
	}
	return d.Format("2006-01-02")
}

func byValue(s derive.Snapshot, by string) string {
	switch by {
	case "owner":
		return s.OwnerID
	case "team":
		return s.Team
	case "segment":
		return s.Segment
	case "source":
		return s.LeadSource
	case "product":
		return s.Product
	}
	return ""
}

func oracleFunnel(evs []derive.Derived, fq FunnelQuery, r *oracleRates) *FunnelResult {
	o := newOracleCur(r)
	asOf := fq.AsOf.UTC()
	res := &FunnelResult{Definitions: Definitions{
		Tenant: fq.Tenant, AsOf: asOf, From: timePtr(fq.From.UTC()), To: timePtr(fq.To.UTC()),
		By: fq.By, Interval: fq.Interval, LadderVersion: fq.LadderVersion,
		Ladder: append([]string{}, fq.Ladder...), Rules: funnelRules,
	}}
	if fq.WindowDays != nil {
		w := *fq.WindowDays
		res.Definitions.WindowDays = &w
	}
	opps := oppEvents(evs, fq.Tenant, asOf)
	type gkey struct{ period, key string }
	type stepAcc struct {
		all    *funnelAcc
		groups map[gkey]*funnelAcc
	}
	var accs []stepAcc
	for k := 1; k < len(fq.Ladder); k++ {
		all := &funnelAcc{}
		groups := map[gkey]*funnelAcc{}
		accs = append(accs, stepAcc{all, groups})
		for _, oe := range opps {
			rk, ok := reachTime(oe, k)
			if !ok || rk.Before(fq.From) || !rk.Before(fq.To) {
				continue
			}
			rk1, ok1 := reachTime(oe, k+1)
			facts, _ := factsAt(oe, asOf)
			secs := int64(rk1.Sub(rk) / time.Second)
			conv := ok1 && (fq.WindowDays == nil || secs <= int64(*fq.WindowDays)*86400)
			dropped := !conv && (facts.Status == "lost" || facts.Status == "won" ||
				(fq.WindowDays != nil && !rk.Add(time.Duration(*fq.WindowDays)*24*time.Hour).After(asOf)))
			// Skipped: K itself not gained at reach_time(K).
			skipped := true
			for _, e := range oe {
				if e.Type == derive.CommitmentGained && e.StepIndex == k && e.OccurredAt.Equal(rk) {
					skipped = false
				}
			}
			all.add(o, facts.Amount, facts.Currency, conv, dropped, skipped, secs)
			if fq.By != "" || fq.Interval != "" {
				gk := gkey{periodStart(rk, fq.Interval), byValue(facts, fq.By)}
				if groups[gk] == nil {
					groups[gk] = &funnelAcc{}
				}
				groups[gk].add(o, facts.Amount, facts.Currency, conv, dropped, skipped, secs)
			}
		}
	}
	for k := 1; k < len(fq.Ladder); k++ {
		acc := accs[k-1]
		st := FunnelStep{FromStep: fq.Ladder[k-1], FromIndex: k, ToStep: fq.Ladder[k], ToIndex: k + 1, FunnelCounts: acc.all.counts(o)}
		for gk, a := range acc.groups {
			st.Groups = append(st.Groups, FunnelGroup{Period: gk.period, Key: gk.key, FunnelCounts: a.counts(o)})
		}
		sort.Slice(st.Groups, func(a, b int) bool {
			if st.Groups[a].Period != st.Groups[b].Period {
				return st.Groups[a].Period < st.Groups[b].Period
			}
			return st.Groups[a].Key < st.Groups[b].Key
		})
		res.Steps = append(res.Steps, st)
	}
	o.defs(&res.Definitions)
	return res
}

func oracleStalls(evs []derive.Derived, sq StallsQuery, r *oracleRates) *StallsResult {
	o := newOracleCur(r)
	asOf := sq.AsOf.UTC()
	page, size := sq.Page, sq.PageSize
	if page == 0 {
		page = 1
	}
	if size == 0 {
		size = DefaultPageSize
	}
	res := &StallsResult{Definitions: Definitions{
		Tenant: sq.Tenant, AsOf: asOf, LadderVersion: sq.LadderVersion,
		Ladder: append([]string{}, sq.Ladder...), Rules: stallsRules,
	}, Page: page, PageSize: size, Deals: []StalledDeal{}}
	steps := map[int]*StallStep{}
	// amt holds each step's open and stalled amounts as the scalars sum
	// them, by holds them per currency; total the same over all steps.
	type amounts struct {
		amt [2]float64
		by  map[string]StallAmounts
	}
	amt := map[int]*amounts{}
	total := &amounts{by: map[string]StallAmounts{}}
	var deals []StalledDeal
	for id, oe := range oppEvents(evs, sq.Tenant, asOf) {
		top := 0
		var lastc, created, first, lastClose time.Time
		for _, e := range oe {
			switch e.Type {
			case derive.DealClosed:
				if e.OccurredAt.After(lastClose) {
					lastClose = e.OccurredAt
				}
			case derive.CommitmentGained:
				if e.StepIndex > top {
					top = e.StepIndex
				}
				if e.OccurredAt.After(lastc) {
					lastc = e.OccurredAt
				}
			case derive.DealCreated:
				if created.IsZero() || e.OccurredAt.Before(created) {
					created = e.OccurredAt
				}
			}
			if first.IsZero() || e.OccurredAt.Before(first) {
				first = e.OccurredAt
			}
		}
		// Closed as of asOf: its facts say so (a deal reopened after a
		// close is open).
		if f, _ := factsAt(oe, asOf); f.Status == "won" || f.Status == "lost" {
			continue
		}
		ref := lastc
		if ref.IsZero() {
			ref = created
		}
		if ref.IsZero() {
			ref = first
		}
		var since time.Time
		for _, e := range oe {
			// A reopened deal's stall clock restarts at the reopen:
			// a stall before its last close does not count.
			if e.Type == derive.DealStalled && !e.OccurredAt.Before(ref) && e.OccurredAt.After(lastClose) &&
				(since.IsZero() || e.OccurredAt.Before(since)) {
				since = e.OccurredAt
			}
		}
		facts, _ := factsAt(oe, asOf)
		secs := int64(asOf.Sub(ref) / time.Second)
		days := secs / 86400
		s := steps[top]
		if s == nil {
			s = &StallStep{StepIndex: top, DaysSinceCommitment: newBuckets()}
			steps[top] = s
		}
		a := amt[top]
		if a == nil {
			a = &amounts{by: map[string]StallAmounts{}}
			amt[top] = a
		}
		x := o.add(facts.Amount, facts.Currency)
		s.Open++
		for _, a := range []*amounts{a, total} {
			a.amt[0] += x
			b := a.by[facts.Currency]
			b.OpenAmount += facts.Amount
			if !since.IsZero() {
				a.amt[1] += x
				b.StalledAmount += facts.Amount
			}
			a.by[facts.Currency] = b
		}
		h := oracleHistogram([]int64{days * 86400})
		for i := range h {
			s.DaysSinceCommitment[i].Count += h[i].Count
		}
		if !since.IsZero() {
			s.Stalled++
			deals = append(deals, StalledDeal{
				OpportunityID: id, OwnerID: facts.OwnerID, Team: facts.Team, Amount: facts.Amount, Currency: facts.Currency,
				StepIndex: top, Step: stepName(sq.Ladder, top), DaysSinceCommitment: days, StalledSince: since,
			})
		}
	}
	for i := 0; i <= len(sq.Ladder); i++ {
		if steps[i] == nil {
			steps[i] = &StallStep{StepIndex: i, DaysSinceCommitment: newBuckets()}
		}
	}
	var idx []int
	for i := range steps {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	for _, i := range idx {
		s := *steps[i]
		s.Step = stepName(sq.Ladder, i)
		a := amt[i]
		if a == nil {
			a = &amounts{}
		}
		s.OpenAmount, s.StalledAmount = o.scalar(a.amt[0]), o.scalar(a.amt[1])
		s.AmountsByCurrency = nonZero(a.by)
		res.Steps = append(res.Steps, s)
		res.Open += s.Open
		res.Stalled += s.Stalled
	}
	res.OpenAmount, res.StalledAmount = o.scalar(total.amt[0]), o.scalar(total.amt[1])
	res.AmountsByCurrency = nonZero(total.by)
	o.defs(&res.Definitions)
	sort.Slice(deals, func(a, b int) bool {
		if deals[a].Amount != deals[b].Amount {
			return deals[a].Amount > deals[b].Amount
		}
		return deals[a].OpportunityID < deals[b].OpportunityID
	})
	lo := (page - 1) * size
	if lo < len(deals) {
		hi := min(lo+size, len(deals))
		res.Deals = append(res.Deals, deals[lo:hi]...)
	}
	return res
}

// oracleMissed counts the misses and interactions in range; a deal with
// misses in a row adds its amount as of as_of (the snapshot of its latest
// event then) once to that row.
func oracleMissed(evs []derive.Derived, mq MissedQuery, r *oracleRates) *MissedResult {
	o := newOracleCur(r)
	asOf := mq.AsOf.UTC()
	res := &MissedResult{Definitions: Definitions{
		Tenant: mq.Tenant, AsOf: asOf, From: timePtr(mq.From.UTC()), To: timePtr(mq.To.UTC()),
		LadderVersion: mq.LadderVersion, Ladder: append([]string{}, mq.Ladder...), Rules: missedRules,
	}, ByStep: []MissedRow{}, ByReason: []MissedRow{}, ByOwner: []MissedRow{}}
	type acc struct {
		row   MissedRow
		ids   map[string]bool
		deals map[string]bool
		amt   float64 // as the scalars sum it
		by    map[string]MissedAmounts
	}
	type dk struct {
		dim string
		key string
		idx int
	}
	accs := map[dk]*acc{}
	get := func(k dk) *acc {
		a := accs[k]
		if a == nil {
			a = &acc{ids: map[string]bool{}, deals: map[string]bool{}, by: map[string]MissedAmounts{}}
			accs[k] = a
		}
		return a
	}
	facts := map[string]derive.Snapshot{}
	for opp, oe := range oppEvents(evs, mq.Tenant, asOf) {
		facts[opp], _ = factsAt(oe, asOf)
	}
	for _, e := range evs {
		if e.Tenant != mq.Tenant || e.OccurredAt.After(asOf) || e.OccurredAt.Before(mq.From) || !e.OccurredAt.Before(mq.To) {
			continue
		}
		keys := []dk{{"total", "", 0}, {"step", "", e.StepIndex}, {"owner", e.OwnerID, 0}}
		switch e.Type {
		case derive.CommitmentMissed:
			keys = append(keys, dk{"reason", e.Reason, 0})
			f := facts[e.OpportunityID]
			for _, k := range keys {
				a := get(k)
				a.row.Missed++
				if !a.deals[e.OpportunityID] {
					a.deals[e.OpportunityID] = true
					a.amt += o.add(f.Amount, f.Currency)
					b := a.by[f.Currency]
					b.ValueAtStake += f.Amount
					a.by[f.Currency] = b
				}
				if e.InteractionID != "" && e.Reason != derive.MissCloseDatePushed && e.Reason != derive.MissNoDecision {
					a.ids[e.InteractionID] = true
				}
			}
		case derive.InteractionHeld:
			for _, k := range keys {
				get(k).row.Interactions++
			}
		}
	}
	for k, a := range accs {
		r := a.row
		r.ValueAtStake, r.AmountsByCurrency = o.scalar(a.amt), nonZero(a.by)
		r.MissedInteractions, r.Deals = int64(len(a.ids)), int64(len(a.deals))
		if k.dim != "reason" && r.Interactions > 0 {
			v := float64(r.MissedInteractions) / float64(r.Interactions)
			r.MissRate = &v
		}
		switch k.dim {
		case "total":
			res.Total = r
		case "step":
			r.StepIndex, r.Key = k.idx, stepName(mq.Ladder, k.idx)
			res.ByStep = append(res.ByStep, r)
		case "reason":
			r.Key = k.key
			res.ByReason = append(res.ByReason, r)
		case "owner":
			r.Key = k.key
			res.ByOwner = append(res.ByOwner, r)
		}
	}
	sort.Slice(res.ByStep, func(a, b int) bool { return res.ByStep[a].StepIndex < res.ByStep[b].StepIndex })
	sort.Slice(res.ByReason, func(a, b int) bool { return res.ByReason[a].Key < res.ByReason[b].Key })
	sort.Slice(res.ByOwner, func(a, b int) bool { return res.ByOwner[a].Key < res.ByOwner[b].Key })
	if res.Total.ValueAtStake == nil && o.scalar(0) != nil {
		res.Total.ValueAtStake = o.scalar(0) // no miss in range
	}
	o.defs(&res.Definitions)
	return res
}

func oracleMovement(evs []derive.Derived, mq MovementQuery, r *oracleRates) *MovementResult {
	o := newOracleCur(r)
	asOf, from, to := mq.AsOf.UTC(), mq.From.UTC(), mq.To.UTC()
	limit := to
	if asOf.Before(limit) {
		limit = asOf
	}
	res := &MovementResult{Definitions: Definitions{
		Tenant: mq.Tenant, AsOf: asOf, From: timePtr(from), To: timePtr(to),
		LadderVersion: mq.LadderVersion, Ladder: append([]string{}, mq.Ladder...), Rules: movementRules,
	}}
	in := func(t time.Time) bool { return !t.Before(from) && t.Before(to) }
	// Per step: the counts, the amounts of each kind as the scalars sum
	// them, and per currency.
	type acc struct {
		c   MovementCounts
		amt [8]float64
		by  map[string]*[8]float64
	}
	steps := map[int]*acc{}
	total := &acc{by: map[string]*[8]float64{}}
	for _, oe := range oppEvents(evs, mq.Tenant, limit) {
		var isNew, reg, stl, won, lost, anyFrom bool
		topFrom, topTo := 0, 0
		for _, e := range oe {
			atFrom := !e.OccurredAt.After(from)
			if atFrom {
				anyFrom = true
			}
			switch e.Type {
			case derive.DealCreated:
				isNew = isNew || in(e.OccurredAt)
			case derive.CommitmentGained:
				topTo = max(topTo, e.StepIndex)
				if atFrom {
					topFrom = max(topFrom, e.StepIndex)
				}
			case derive.StageRegressed:
				reg = reg || in(e.OccurredAt)
			case derive.DealStalled:
				stl = stl || in(e.OccurredAt)
			case derive.DealClosed:
				if in(e.OccurredAt) {
					won = won || e.Status == "won"
					lost = lost || e.Status == "lost"
				}
			}
		}
		factsFrom, _ := factsAt(oe, from)
		factsTo, _ := factsAt(oe, limit)
		closed := func(f derive.Snapshot) bool { return f.Status == "won" || f.Status == "lost" }
		bothOpen := anyFrom && !closed(factsFrom) && !closed(factsTo)
		known := !factsFrom.CloseDate.IsZero() && !factsTo.CloseDate.IsZero()
		pulled := bothOpen && known && factsTo.CloseDate.Before(factsFrom.CloseDate)
		pushed := bothOpen && known && factsTo.CloseDate.After(factsFrom.CloseDate)
		s := steps[topTo]
		if s == nil {
			s = &acc{by: map[string]*[8]float64{}}
			steps[topTo] = s
		}
		cur := factsTo.Currency
		for _, s := range []*acc{s, total} {
			if s.by[cur] == nil {
				s.by[cur] = &[8]float64{}
			}
			for i, n := range []*int64{&s.c.New, &s.c.Advanced, &s.c.Regressed, &s.c.Stalled, &s.c.PulledIn, &s.c.PushedOut, &s.c.Won, &s.c.Lost} {
				if []bool{isNew, topTo > topFrom, reg, stl, pulled, pushed, won, lost}[i] {
					*n++
					s.amt[i] += o.add(factsTo.Amount, cur)
					s.by[cur][i] += factsTo.Amount
				}
			}
		}
	}
	counts := func(a *acc) MovementCounts {
		c := a.c
		for i, p := range []**float64{&c.NewAmount, &c.AdvancedAmount, &c.RegressedAmount, &c.StalledAmount,
			&c.PulledInAmount, &c.PushedOutAmount, &c.WonAmount, &c.LostAmount} {
			*p = o.scalar(a.amt[i])
		}
		by := map[string]MovementAmounts{}
		for cur, x := range a.by {
			by[cur] = MovementAmounts{x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7]}
		}
		c.AmountsByCurrency = nonZero(by)
		return c
	}
	var idx []int
	for i, s := range steps {
		if i > len(mq.Ladder) && s.c.isZero() {
			continue
		}
		idx = append(idx, i)
	}
	for i := 0; i <= len(mq.Ladder); i++ {
		if steps[i] == nil {
			steps[i] = &acc{}
			idx = append(idx, i)
		}
	}
	sort.Ints(idx)
	for _, i := range idx {
		res.ByStep = append(res.ByStep, MovementStep{StepIndex: i, Step: stepName(mq.Ladder, i), MovementCounts: counts(steps[i])})
	}
	res.Total = counts(total)
	o.defs(&res.Definitions)
	return res
}
