// Package readmodel owns the rules that more than one answer reads from
// the opportunity_state read model (one row per opportunity: see
// schemas/clickhouse/0101_opportunity_state.sql): SQL expressions over its
// columns "as of" an instant, written once here so that the metrics, the
// deal lists and the forecast cannot drift apart.
//
// An instant is given as SQL: a bound argument such as "@asof" holding
// UInt32 seconds, or an expression of a DateTime. The expressions work on
// ClickHouse 18.16 and 24.x; no lambda reads anything but its arguments
// (18.16 loses a column that a query names only inside a lambda), so a
// per-row value a lambda needs is passed as an argument array,
// replicate(value, array).
//
// Snapshot (package snapshot) decides which rows of the table a query
// reads; this package what their columns mean.
package readmodel

import "time"

// FactIndex is the index in the fact arrays (amounts, currencies, owners,
// teams, stages, statuses, close_dates, fact_closed, ...) of the facts as
// of at: how many fact changes happened at or before at; 0 when the deal
// had none yet (and array[0] is the type's default).
func FactIndex(at string) string {
	return "arrayCount(t -> t <= toDateTime(" + at + "), fact_times)"
}

// FactRun is the value of the fact name (owner, team or segment) as of
// at, from its runs (migration 0116): name_runs holds each run of equal
// consecutive values of the fact array once, name_run_times the time of
// its first fact, so the value is that of owners[FactIndex(at)] (for
// "owner"; "" when the deal had no fact yet) while reading about one
// value per deal instead of one per fact.
func FactRun(name, at string) string {
	return name + "_runs[arrayCount(t -> t <= toDateTime(" + at + "), " + name + "_run_times)]"
}

// FactIndexOf is FactIndex for a query that looks the facts up at many
// dates: over times, fact_times or a subquery's name for it, as of at, a
// DateTime expression that may be a lambda's argument (t, as in
// arrayFilter(t -> fact_closed[FactIndexOf("fact_times", "t")] = 0,
// dates)) or an ARRAY JOINed date; its own lambda's argument is x.
func FactIndexOf(times, at string) string {
	return "arrayCount(x -> x <= " + at + ", " + times + ")"
}

// Created is a deal's creation time as seen with the events up to at (a
// bound argument or a DateTime expression): once its deal.created
// (created_seen) is at or before at, the creation time the CRM gave
// (created_at, at or before created_seen); before, its earliest event,
// first_at (DateTime).
func Created(at string) string {
	return "if(toUInt32(created_at) > 0 AND created_seen <= toDateTime(" + at + "), created_at, first_at)"
}

// HighestStep is the highest step index of the commitment.gained at or
// before at, 0 when none (UInt8). It counts the steps reached by then:
// reach[K] is the earliest gain of a step K or higher, so the reached
// steps are a prefix of reach whose times do not decrease, and the highest
// step gained is their number (an arrayCount, cheaper on 18.16 than an
// arrayReduce over the gains). at may name a column of the query (not rt,
// the lambda's).
func HighestStep(at string) string {
	return "toUInt8(arrayCount(rt -> rt != toDateTime(0) AND rt <= toDateTime(" + at + "), reach))"
}

// StallColumns are the select-list items of the stall rule over a row of
// opportunity_state as of the bound argument @asof (UInt32 seconds); times
// are UInt32 seconds, 0 meaning none:
//
//   - lastc: the last commitment.gained at or before @asof;
//   - created: the creation time the CRM gave (created_at), if its
//     deal.created (created_seen) is at or before @asof;
//   - ref: the reference time, lastc, else created, else first_at;
//   - days: whole days from ref to @asof (Int64);
//   - lastclose: the last deal.closed at or before @asof;
//   - sref: when the stall clock runs from: the second after lastclose
//     when that is not before ref (a reopened deal's clock restarts at
//     the reopen); else, when ref is created, created_seen if later (the
//     stalls fired before the CRM showed the deal ran on the clock of its
//     first event); else ref;
//   - ss: the earliest deal.stalled at or after sref and at or before
//     @asof; a deal is stalled as of @asof when ss != 0 (and it is open).
//
// The thresholds per step are applied when deal.stalled is derived
// (package derive); this rule decides which of those count as of @asof.
// A later commitment.gained moves ref past an earlier stall, clearing it.
//
// The time arrays are ordered by time, so the last element at or before
// @asof is the one at index arrayCount(t -> t <= @asof) (index 0 is the
// default, 0) and the earliest stall from sref is the first: look-ups
// that cost 18.16 less than filtering and reducing the arrays.
const StallColumns = `toUInt32(gain_times[arrayCount(t -> t <= toDateTime(@asof), gain_times)]) AS lastc,
		if(created_seen <= toDateTime(@asof), toUInt32(created_at), toUInt32(0)) AS created,
		if(lastc != 0, lastc, if(created != 0, created, toUInt32(first_at))) AS ref,
		intDiv(toInt64(@asof) - ref, 86400) AS days,
		toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) AS lastclose,
		if(lastclose >= ref, lastclose + 1, if(lastc = 0 AND created != 0 AND toUInt32(created_seen) > ref, toUInt32(created_seen), ref)) AS sref,
		toUInt32(arrayFirst((t, r) -> toUInt32(t) >= r AND t <= toDateTime(@asof), stall_times, replicate(sref, stall_times))) AS ss`

// StallStart is sref of StallColumns for Go code that has a deal's state
// in hand: when its stall clock runs from, given its reference time, its
// last deal.closed (zero: none) and, when the reference time is its
// creation, its deal.created (createdSeen; zero otherwise), all as of the
// date. A deal.stalled counts as of the date when it is at or after
// StallStart and at or before the date.
func StallStart(ref, lastClose, createdSeen time.Time) time.Time {
	switch {
	case !lastClose.IsZero() && !lastClose.Before(ref):
		return lastClose.Add(time.Second)
	case createdSeen.After(ref):
		return createdSeen
	}
	return ref
}
