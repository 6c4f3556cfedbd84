SELECT toUInt8(hi_step), toUInt64(sum(n0)), toUInt64(sum(n1)), tupleElement(sumMap([cur], [a0], [a1]), 1), tupleElement(sumMap([cur], [a0], [a1]), 2), tupleElement(sumMap([cur], [a0], [a1]), 3),
	toUInt64(sum(h0)),
	toUInt64(sum(h1)),
	toUInt64(sum(h2)),
	toUInt64(sum(h3)),
	toUInt64(sum(h4)),
	toUInt64(sum(h5)),
	toUInt64(sum(h6)),
	arrayMap(x -> -tupleElement(x, 1), groupArrayArray(top) AS tops), arrayMap(x -> tupleElement(x, 2), tops),
	arrayMap(x -> tupleElement(x, 3), tops), arrayMap(x -> tupleElement(x, 4), tops),
	arrayMap(x -> tupleElement(x, 5), tops), arrayMap(x -> toInt64(tupleElement(x, 6)), tops),
	arrayMap(x -> toUInt32(tupleElement(x, 7)), tops)
	FROM (
SELECT hi_step, cur, count() AS n0, sum(amt) AS a0, countIf(stalled) AS n1, sumIf(amt, stalled) AS a1,
		arraySlice(arraySort(groupArrayIf((-amt, opp_id, a_owner, a_team, cur, days, ss), stalled)), 1, @upto) AS top,
	sum(multiIf(NOT (1) OR days * 86400 < 0, 7, days * 86400 < 604800, 0, days * 86400 < 1209600, 1, days * 86400 < 2592000, 2, days * 86400 < 5184000, 3, days * 86400 < 7776000, 4, days * 86400 < 15552000, 5, 6) = 0) AS h0,
	sum(multiIf(NOT (1) OR days * 86400 < 0, 7, days * 86400 < 604800, 0, days * 86400 < 1209600, 1, days * 86400 < 2592000, 2, days * 86400 < 5184000, 3, days * 86400 < 7776000, 4, days * 86400 < 15552000, 5, 6) = 1) AS h1,
	sum(multiIf(NOT (1) OR days * 86400 < 0, 7, days * 86400 < 604800, 0, days * 86400 < 1209600, 1, days * 86400 < 2592000, 2, days * 86400 < 5184000, 3, days * 86400 < 7776000, 4, days * 86400 < 15552000, 5, 6) = 2) AS h2,
	sum(multiIf(NOT (1) OR days * 86400 < 0, 7, days * 86400 < 604800, 0, days * 86400 < 1209600, 1, days * 86400 < 2592000, 2, days * 86400 < 5184000, 3, days * 86400 < 7776000, 4, days * 86400 < 15552000, 5, 6) = 3) AS h3,
	sum(multiIf(NOT (1) OR days * 86400 < 0, 7, days * 86400 < 604800, 0, days * 86400 < 1209600, 1, days * 86400 < 2592000, 2, days * 86400 < 5184000, 3, days * 86400 < 7776000, 4, days * 86400 < 15552000, 5, 6) = 4) AS h4,
	sum(multiIf(NOT (1) OR days * 86400 < 0, 7, days * 86400 < 604800, 0, days * 86400 < 1209600, 1, days * 86400 < 2592000, 2, days * 86400 < 5184000, 3, days * 86400 < 7776000, 4, days * 86400 < 15552000, 5, 6) = 5) AS h5,
	sum(multiIf(NOT (1) OR days * 86400 < 0, 7, days * 86400 < 604800, 0, days * 86400 < 1209600, 1, days * 86400 < 2592000, 2, days * 86400 < 5184000, 3, days * 86400 < 7776000, 4, days * 86400 < 15552000, 5, 6) = 6) AS h6
		FROM (SELECT opp_id, hi_step, amt, cur, a_owner, a_team, ref, ss, ss != 0 AS stalled, days
	FROM (
		SELECT opportunity_id AS opp_id,
			arrayCount(t -> t <= toDateTime(@asof), fact_times) AS fi,
			amounts[fi] AS amt,
			reinterpretAsUInt32(currencies[fi]) AS cur,
			owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)] AS a_owner,
			team_runs[arrayCount(t -> t <= toDateTime(@asof), team_run_times)] AS a_team,
			toUInt8(arrayCount(rt -> rt != toDateTime(0) AND rt <= toDateTime(@asof), reach)) AS hi_step,
			toUInt32(gain_times[arrayCount(t -> t <= toDateTime(@asof), gain_times)]) AS lastc,
		if(created_seen <= toDateTime(@asof), toUInt32(created_at), toUInt32(0)) AS created,
		if(lastc != 0, lastc, if(created != 0, created, toUInt32(first_at))) AS ref,
		intDiv(toInt64(@asof) - ref, 86400) AS days,
		toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) AS lastclose,
		if(lastclose >= ref, lastclose + 1, if(lastc = 0 AND created != 0 AND toUInt32(created_seen) > ref, toUInt32(created_seen), ref)) AS sref,
		toUInt32(arrayFirst((t, r) -> toUInt32(t) >= r AND t <= toDateTime(@asof), stall_times, replicate(sref, stall_times))) AS ss
		FROM (
			SELECT opportunity_id, fact_times, amounts, currencies, owner_runs, owner_run_times, team_runs, team_run_times, reach, gain_times,
				created_at, created_seen, first_at, close_times, stall_times
			FROM opportunity_state
			PREWHERE (opp_hash, version) NOT IN _superseded
			WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts
				AND first_at != toDateTime(0) AND first_at <= toDateTime(@asof)
				AND fact_closed[arrayCount(t -> t <= toDateTime(@asof), fact_times)] = 0
		)
	))
		GROUP BY hi_step, cur
)
	GROUP BY hi_step
	ORDER BY hi_step
