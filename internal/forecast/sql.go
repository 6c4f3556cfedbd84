package forecast

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// perOpportunitySQL folds the current derived rows of one tenant up to
// @bound into one row per opportunity: its gains (step and time), its rows'
// (time, id, segment) sorted, its creation time, its first close and the
// reference dates at which it was open. ClickHouse 18.16 drops columns that a
// subquery uses only inside lambdas, hence the explicit column list.
const perOpportunitySQL = `
SELECT
    opportunity_id AS o,
    groupArrayIf(step_index, type = 'commitment.gained') AS gs,
    groupArrayIf(occurred_at, type = 'commitment.gained') AS gt,
    arraySort(groupArray((occurred_at, id, segment))) AS rs,
    if(countIf(type = 'deal.created') > 0, minIf(occurred_at, type = 'deal.created'), min(occurred_at)) AS created,
    countIf(type = 'deal.closed') > 0 AS closed,
    minIf(occurred_at, type = 'deal.closed') AS ct,
    argMinIf(status, (occurred_at, id), type = 'deal.closed') AS cs,
    arrayFilter(t -> created <= t AND (NOT closed OR ct > t), arrayMap(x -> toDateTime(x), @refs)) AS open_ts
FROM derived_events FINAL
WHERE tenant = @tenant AND retracted = 0 AND occurred_at <= toDateTime(@bound)
GROUP BY o
HAVING notEmpty(open_ts)`

// statesSQL gives one row per (opportunity, reference date t) at which the
// opportunity was open: its state at t (highest step h, last commitment
// time, whole days since it, segment) and its outcome observed up to @bound
// (0 censored, 1 won, 2 lost within @horizon days) with the day it happened,
// or for censored samples the whole days of follow-up capped at @horizon.
const statesSQL = `
SELECT o, t, h, last_at, days, seg, outcome, day FROM (
    SELECT
        o,
        t,
        arrayReduce('max', arrayFilter((s, g) -> g <= t, gs, gt)) AS h,
        arrayReduce('max', arrayFilter(g -> g <= t, gt)) AS lg,
        if(toUInt32(lg) = 0, created, lg) AS last_at,
        intDiv(toInt64(toUInt32(t)) - toInt64(toUInt32(last_at)), 86400) AS days,
        rs[arrayCount(r -> r.1 <= t, rs)].3 AS seg,
        intDiv(toInt64(toUInt32(ct)) - toInt64(toUInt32(t)), 86400) AS close_day,
        multiIf(NOT closed OR close_day >= @horizon, 0, cs = 'won', 1, 2) AS outcome,
        if(outcome = 0, least(intDiv(toInt64(@bound) - toInt64(toUInt32(t)), 86400), @horizon), close_day) AS day
    FROM (` + perOpportunitySQL + `)
    ARRAY JOIN open_ts AS t
)`

// trainingSQL aggregates the states into groups of identical samples: the
// few thousand rows the estimator needs.
const trainingSQL = `
SELECT
    h,
    multiIf(days <= 14, 0, days <= 30, 1, days <= 60, 2, 3) AS bucket,
    seg,
    outcome,
    day,
    count() AS n,
    uniqExact(o) AS opps
FROM (` + statesSQL + `)
GROUP BY h, bucket, seg, outcome, day
WITH TOTALS
ORDER BY h, bucket, seg, outcome, day`

// dealsSQL gives the opportunities open at @at with their facts as of @at
// (the snapshot of the latest row at or before @at), their state at @at, and
// their first close observed up to @bound (>= @at) with the amount it closed
// at.
const dealsSQL = `
SELECT o, f_amount, f_close_date, f_probability, f_owner, f_team, f_segment, h, last_at, closed, ct, cs, close_amount FROM (
    SELECT
        opportunity_id AS o,
        argMaxIf(amount, (occurred_at, id), occurred_at <= toDateTime(@at)) AS f_amount,
        argMaxIf(close_date, (occurred_at, id), occurred_at <= toDateTime(@at)) AS f_close_date,
        argMaxIf(probability, (occurred_at, id), occurred_at <= toDateTime(@at)) AS f_probability,
        argMaxIf(owner_id, (occurred_at, id), occurred_at <= toDateTime(@at)) AS f_owner,
        argMaxIf(team, (occurred_at, id), occurred_at <= toDateTime(@at)) AS f_team,
        argMaxIf(segment, (occurred_at, id), occurred_at <= toDateTime(@at)) AS f_segment,
        maxIf(step_index, type = 'commitment.gained' AND occurred_at <= toDateTime(@at)) AS h,
        maxIf(occurred_at, type = 'commitment.gained' AND occurred_at <= toDateTime(@at)) AS lg,
        if(countIf(type = 'deal.created') > 0, minIf(occurred_at, type = 'deal.created'), min(occurred_at)) AS created,
        if(toUInt32(lg) = 0, created, lg) AS last_at,
        countIf(type = 'deal.closed') > 0 AS closed,
        minIf(occurred_at, type = 'deal.closed') AS ct,
        argMinIf(status, (occurred_at, id), type = 'deal.closed') AS cs,
        argMinIf(amount, (occurred_at, id), type = 'deal.closed') AS close_amount
    FROM derived_events FINAL
    WHERE tenant = @tenant AND retracted = 0 AND occurred_at <= toDateTime(@bound)
    GROUP BY o
    HAVING created <= toDateTime(@at) AND (NOT closed OR ct > toDateTime(@at))
)
ORDER BY o`

// stateRow is one (opportunity, reference date) sample as statesSQL gives
// it.
type stateRow struct {
	Opportunity string
	T           time.Time
	Step        int
	LastAt      time.Time
	Days        int
	Segment     string
	Outcome     Outcome
	Day         int
}

// dealRow is one open opportunity as dealsSQL gives it.
type dealRow struct {
	Opportunity string
	Amount      float64
	CloseDate   time.Time
	Probability float64
	Owner       string
	Team        string
	Segment     string
	Step        int
	LastAt      time.Time
	Closed      bool
	ClosedAt    time.Time
	Status      string
	CloseAmount float64
}

// trainingStats are the totals of the training query.
type trainingStats struct {
	samples       int64
	opportunities int64
}

func unix32(t time.Time) uint32 {
	s := t.Unix()
	if s < 0 {
		return 0
	}
	return uint32(s)
}

func refArgs(refs []time.Time) []uint32 {
	out := make([]uint32, len(refs))
	for i, r := range refs {
		out[i] = unix32(r)
	}
	return out
}

// states runs statesSQL: the per-(opportunity, reference date) samples of
// tenant with outcomes observed up to bound.
func (f *Forecaster) states(ctx context.Context, tenant string, refs []time.Time, bound time.Time, horizon int) ([]stateRow, error) {
	rows, err := f.conn.Query(ctx, statesSQL+" ORDER BY o, t",
		clickhouse.Named("tenant", tenant),
		clickhouse.Named("refs", refArgs(refs)),
		clickhouse.Named("bound", unix32(bound)),
		clickhouse.Named("horizon", horizon))
	if err != nil {
		return nil, fmt.Errorf("forecast states: %w", err)
	}
	defer rows.Close()
	var out []stateRow
	for rows.Next() {
		var (
			r          stateRow
			h, outcome uint8
			days, day  int64
			tt, lastAt time.Time
		)
		if err := rows.Scan(&r.Opportunity, &tt, &h, &lastAt, &days, &r.Segment, &outcome, &day); err != nil {
			return nil, fmt.Errorf("forecast states: scan: %w", err)
		}
		r.T, r.LastAt = tt.UTC(), lastAt.UTC()
		r.Step, r.Days, r.Outcome, r.Day = int(h), int(days), Outcome(outcome), int(day)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("forecast states: %w", err)
	}
	return out, nil
}

// training runs trainingSQL.
func (f *Forecaster) training(ctx context.Context, tenant string, refs []time.Time, bound time.Time, horizon int) ([]trainRow, trainingStats, error) {
	var st trainingStats
	rows, err := f.conn.Query(ctx, trainingSQL,
		clickhouse.Named("tenant", tenant),
		clickhouse.Named("refs", refArgs(refs)),
		clickhouse.Named("bound", unix32(bound)),
		clickhouse.Named("horizon", horizon))
	if err != nil {
		return nil, st, fmt.Errorf("forecast training set: %w", err)
	}
	defer rows.Close()
	var out []trainRow
	for rows.Next() {
		var (
			h, bucket, outcome uint8
			seg                string
			day                int64
			n, opps            uint64
		)
		if err := rows.Scan(&h, &bucket, &seg, &outcome, &day, &n, &opps); err != nil {
			return nil, st, fmt.Errorf("forecast training set: scan: %w", err)
		}
		out = append(out, trainRow{
			Cell:    Cell{Step: int(h), Bucket: int(bucket), Segment: seg},
			Outcome: Outcome(outcome),
			Day:     int(day),
			Count:   float64(n),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, st, fmt.Errorf("forecast training set: %w", err)
	}
	var (
		h, bucket, outcome uint8
		seg                string
		day                int64
		n, opps            uint64
	)
	if err := rows.Totals(&h, &bucket, &seg, &outcome, &day, &n, &opps); err != nil {
		return nil, st, fmt.Errorf("forecast training set: totals: %w", err)
	}
	st.samples, st.opportunities = int64(n), int64(opps)
	return out, st, nil
}

// deals runs dealsSQL: the opportunities open at at, with closes observed up
// to bound.
func (f *Forecaster) deals(ctx context.Context, tenant string, at, bound time.Time) ([]dealRow, error) {
	rows, err := f.conn.Query(ctx, dealsSQL,
		clickhouse.Named("tenant", tenant),
		clickhouse.Named("at", unix32(at)),
		clickhouse.Named("bound", unix32(bound)))
	if err != nil {
		return nil, fmt.Errorf("forecast open deals: %w", err)
	}
	defer rows.Close()
	var out []dealRow
	for rows.Next() {
		var (
			r      dealRow
			h      uint8
			closed uint8
		)
		if err := rows.Scan(&r.Opportunity, &r.Amount, &r.CloseDate, &r.Probability, &r.Owner, &r.Team, &r.Segment,
			&h, &r.LastAt, &closed, &r.ClosedAt, &r.Status, &r.CloseAmount); err != nil {
			return nil, fmt.Errorf("forecast open deals: scan: %w", err)
		}
		r.Step, r.Closed = int(h), closed == 1
		r.CloseDate, r.LastAt, r.ClosedAt = r.CloseDate.UTC(), r.LastAt.UTC(), r.ClosedAt.UTC()
		if !r.Closed {
			r.ClosedAt, r.Status, r.CloseAmount = time.Time{}, "", 0
		}
		if r.CloseDate.Unix() <= 0 {
			r.CloseDate = time.Time{}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("forecast open deals: %w", err)
	}
	return out, nil
}
