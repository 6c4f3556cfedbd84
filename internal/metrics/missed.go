package metrics

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/commitflow/commitflow/internal/derive"
)

// MissedQuery asks for the commitments missed in [From, To).
type MissedQuery struct {
	Tenant string
	// AsOf is the instant the answer is computed at; zero means now.
	AsOf          time.Time
	From, To      time.Time
	Ladder        []string
	LadderVersion string
}

// MissedResult is the missed commitments by expected step, reason and owner.
type MissedResult struct {
	Definitions Definitions `json:"definitions"`
	Total       MissedRow   `json:"total"`
	// ByStep is sorted by step index, ByReason by reason, ByOwner by owner
	// id; a row is listed when it has a miss or an interaction.
	ByStep   []MissedRow `json:"by_step"`
	ByReason []MissedRow `json:"by_reason"`
	ByOwner  []MissedRow `json:"by_owner"`
}

// MissedRow is the misses of one step, reason or owner.
type MissedRow struct {
	// Key is the step key, the reason or the owner id.
	Key       string `json:"key"`
	StepIndex int    `json:"step_index,omitempty"`
	// Missed counts commitment.missed events; MissedAmount sums the
	// amount of their snapshots.
	Missed       int64   `json:"missed"`
	MissedAmount float64 `json:"missed_amount"`
	// MissedInteractions counts distinct interactions with a miss, leaving
	// out the reasons that are not about an interaction.
	MissedInteractions int64 `json:"missed_interactions"`
	// Interactions counts interaction.held events (not by reason).
	Interactions int64 `json:"interactions"`
	// MissRate is MissedInteractions / Interactions; null when there are
	// no interactions or the row is a reason.
	MissRate *float64 `json:"miss_rate"`
}

var missedRules = []string{
	"missed = commitment.missed events with occurred_at in [from, to) and at or before as_of",
	"step = the expected step of the miss or interaction; owner = owner_id of that event's snapshot",
	"missed_interactions = distinct interaction ids of misses, leaving out reasons close_date_pushed and no_decision (not interactions) and empty ids",
	"interactions = interaction.held events in [from, to) at or before as_of, for the same step or owner",
	"miss_rate = missed_interactions / interactions, per step, per owner and in total",
}

// notInteractionReasons are the miss reasons that are not about an
// interaction.
func notInteractionReasons() []string {
	return []string{derive.MissCloseDatePushed, derive.MissNoDecision}
}

// Missed computes the missed commitments and miss rates in [From, To).
func (q *Querier) Missed(ctx context.Context, mq MissedQuery) (*MissedResult, error) {
	c, err := validateCommon(mq.Tenant, mq.AsOf, mq.Ladder, mq.LadderVersion, 1)
	if err != nil {
		return nil, err
	}
	from, to, err := validateRange(mq.From, mq.To)
	if err != nil {
		return nil, err
	}
	res := &MissedResult{Definitions: c.defs, ByStep: []MissedRow{}, ByReason: []MissedRow{}, ByOwner: []MissedRow{}}
	res.Definitions.From, res.Definitions.To = timePtr(from), timePtr(to)
	res.Definitions.Rules = missedRules

	// Partial counts per (step, reason, owner, kind) over the misses and
	// the interactions of every opportunity, with the distinct
	// interactions as a mergeable state of their 64-bit hashes (a third of
	// the cost of hashing the strings themselves in uniqExact; two ids of
	// one tenant collide with odds of about n^2/2^65); then each partial row is counted
	// once in every dimension it belongs to (interactions have no reason
	// dimension).
	perKind := func(where, kind, reasons, isMissed, amountJoin, amount string) string {
		return `SELECT step_index, reason, owner_id, ` + isMissed + ` AS is_missed,
			count() AS n, ` + amount + ` AS amt,
			uniqExactIfState(cityHash64(iid), is_missed AND iid != '' AND NOT has(@notinteraction, reason)) AS ids
		FROM opportunity_state FINAL
		ARRAY JOIN
			` + kind + `_times AS t,
			` + kind + `_steps AS step_index,
			` + reasons + ` AS reason,
			` + kind + `_interactions AS iid,
			` + kind + `_owners AS owner_id` + amountJoin + `
		WHERE ` + where + ` AND t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@asof)
		GROUP BY step_index, reason, owner_id, is_missed`
	}
	conds, bounds, err := q.splitKeys(ctx, c.tenant)
	if err != nil {
		return nil, fmt.Errorf("missed: %w", err)
	}
	query := `SELECT dim, k,
	toUInt64(sumIf(n, is_missed)),
	sumIf(amt, is_missed),
	toUInt64(uniqExactIfMerge(ids)),
	toUInt64(sumIf(n, NOT is_missed))
FROM ` + fanout(conds, func(where string) string {
		return perKind(where, "miss", "miss_reasons", "1", ",\n\t\t\tmiss_amounts AS a", "sum(a)") + `
	UNION ALL
	` + perKind(where, "held", "held_outcomes", "0", "", "toFloat64(0)")
	}) + `
ARRAY JOIN
	if(is_missed, ['total', 'step', 'reason', 'owner'], ['total', 'step', 'owner']) AS dim,
	if(is_missed, ['', toString(step_index), reason, owner_id], ['', toString(step_index), owner_id]) AS k
GROUP BY dim, k
ORDER BY dim, k`
	rows, err := q.conn.Query(q.queryCtx(ctx), query, append(bounds,
		clickhouse.Named("tenant", c.tenant),
		clickhouse.Named("asof", ts(c.asOf)),
		clickhouse.Named("notinteraction", notInteractionReasons()),
		clickhouse.Named("from", ts(from)),
		clickhouse.Named("to", ts(to)))...)
	if err != nil {
		return nil, fmt.Errorf("missed query: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			dim, k           string
			missed, mi, ints uint64
			amt              float64
		)
		if err := rows.Scan(&dim, &k, &missed, &amt, &mi, &ints); err != nil {
			return nil, fmt.Errorf("missed scan: %w", err)
		}
		r := MissedRow{Key: k, Missed: int64(missed), MissedAmount: amt, MissedInteractions: int64(mi), Interactions: int64(ints)}
		switch dim {
		case "total":
			r.MissRate = ratio(float64(r.MissedInteractions), float64(r.Interactions))
			res.Total = r
		case "step":
			i, err := strconv.Atoi(k)
			if err != nil {
				return nil, fmt.Errorf("missed: step index %q: %w", k, err)
			}
			r.StepIndex, r.Key = i, stepName(c.ladder, i)
			r.MissRate = ratio(float64(r.MissedInteractions), float64(r.Interactions))
			res.ByStep = append(res.ByStep, r)
		case "reason":
			r.Interactions = 0
			res.ByReason = append(res.ByReason, r)
		case "owner":
			r.MissRate = ratio(float64(r.MissedInteractions), float64(r.Interactions))
			res.ByOwner = append(res.ByOwner, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("missed rows: %w", err)
	}
	sort.Slice(res.ByStep, func(a, b int) bool { return res.ByStep[a].StepIndex < res.ByStep[b].StepIndex })
	sort.Slice(res.ByReason, func(a, b int) bool { return res.ByReason[a].Key < res.ByReason[b].Key })
	sort.Slice(res.ByOwner, func(a, b int) bool { return res.ByOwner[a].Key < res.ByOwner[b].Key })
	return res, nil
}
