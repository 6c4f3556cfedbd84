SELECT opp_id, amt, cur, a_owner, a_team, a_stage, a_status, a_close, hi_step, days, is_open, cgain, ss, od, pd, nn,
	if(st_filled, st_state, st_events) AS st, toUInt8(1 * (is_open AND ss != 0) + 2 * (is_open AND st != 0 AND NOT (cgain > st AND cgain <= @asof)) + 4 * (is_open AND od != 0) + 8 * (is_open AND pd != 0) + 16 * (is_open AND nn != 0)) AS w
FROM (SELECT opportunity_id AS opp_id,
		arrayCount(t -> t <= toDateTime(@asof), fact_times) AS fi,
		amounts[fi] AS amt,
		currencies[fi] AS cur,
		owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)] AS a_owner,
		team_runs[arrayCount(t -> t <= toDateTime(@asof), team_run_times)] AS a_team,
		stages[fi] AS a_stage,
		statuses[fi] AS a_status,
		close_dates[fi] AS a_close,
		fact_closed[fi] = 0 AS is_open,
		toUInt8(arrayCount(rt -> rt != toDateTime(0) AND rt <= toDateTime(@asof), reach)) AS hi_step,
		toUInt32(gain_times[arrayCount(t -> t <= toDateTime(@asof), gain_times)]) AS lastc,
		if(created_seen <= toDateTime(@asof), toUInt32(created_at), toUInt32(0)) AS created,
		if(lastc != 0, lastc, if(created != 0, created, toUInt32(first_at))) AS ref,
		intDiv(toInt64(@asof) - ref, 86400) AS days,
		toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) AS lastclose,
		if(lastclose >= ref, lastclose + 1, if(lastc = 0 AND created != 0 AND toUInt32(created_seen) > ref, toUInt32(created_seen), ref)) AS sref,
		toUInt32(arrayFirst((t, r) -> toUInt32(t) >= r AND t <= toDateTime(@asof), stall_times, replicate(sref, stall_times))) AS ss,
		toUInt32(gained[@cstep]) AS cgain,
		toUInt32(arrayReduce('max', arrayFilter((t, r) -> r = 'close_date_pushed' AND t <= toDateTime(@asof) AND toUInt32(t) > @pushed_after, miss_times, miss_reasons))) AS pd,
		arrayFilter((i, r) -> r = 'no_buyer_present', miss_interactions, miss_reasons) AS nbp,
		arrayFilter((t, i, n) -> t <= toDateTime(@asof) AND NOT has(n, i), held_times, held_interactions, replicate(nbp, held_times)) AS bh_t,
		arrayFilter((o, t, i, n) -> t <= toDateTime(@asof) AND NOT has(n, i), held_outcomes, held_times, held_interactions, replicate(nbp, held_times)) AS bh_o,
		toUInt32(bh_t[length(bh_t)]) AS bh_last,
		greatest(lastc, bh_last) AS eng,
		toUInt32(arrayReduce('min', arrayFilter((t, r, e) -> r = 'buyer_action_overdue' AND t <= toDateTime(@asof) AND toUInt32(t) > e,
			miss_times, miss_reasons, replicate(eng, miss_times)))) AS od,
		if(bh_last != 0 AND bh_o[length(bh_o)] = 'continuation' AND lastc <= bh_last, bh_last, toUInt32(0)) AS nn,
		toUInt32(arrayReduce('min', arrayFilter(t -> t <= toDateTime(@asof), single_threaded_times))) AS st_state,
		single_threaded_filled AS st_filled
	FROM opportunity_state
	PREWHERE (opp_hash, version) NOT IN _superseded
	WHERE tenant = @tenant AND _part IN @snapshot_parts AND fi > 0 AND 1) ANY LEFT JOIN (
	SELECT opportunity_id AS opp_id, toUInt32(min(at)) AS st_events
	FROM (
		SELECT opportunity_id, id, argMax(occurred_at, version) AS at, argMax(retracted, version) AS r
		FROM derived_events
		WHERE tenant = @tenant AND type = 'deal.single_threaded'
		GROUP BY opportunity_id, id
	)
	WHERE r = 0 AND at <= toDateTime(@asof)
	GROUP BY opportunity_id
) USING opp_id
