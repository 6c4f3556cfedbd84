SELECT g, if(g = 0 OR oth, '', grp) AS k, g = 1 AND NOT has(@top_names, grp) AS oth, stage,
		toUInt64(sum(n)), toUInt64(sum(r)), toUInt64(sum(c)), toUInt64(sum(x)),
		quantilesExactIfMerge(0.5, 0.75, 0.9)(qs), groupArray(prev), groupArray(toUInt64(n))
	FROM (
SELECT grp, prev, stage, count() AS n, sum(re) AS r, sum(cur) AS c, sum(exited) AS x,
		quantilesExactIfState(0.5, 0.75, 0.9)(dur, exited) AS qs
	FROM (SELECT grp, stage, prev, occ > 1 AS re, i = n AND is_open AS cur,
		nxt != 0 AS exited, toUInt32(nxt) - toUInt32(et) AS dur
	FROM (
		SELECT arrayCount(t -> t <= toDateTime(@asof), fact_times) AS fi,
			owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)] AS grp,
			statuses[fi] = 'open' AS is_open,
			arrayCount(t -> t <= toDateTime(@asof), stage_entry_times) AS n,
			arraySlice(stage_entries, 1, n) AS es,
			arraySlice(stage_entry_times, 1, n) AS ets,
			arrayPushFront(arrayPopBack(es), '') AS prevs,
			arrayPushBack(arrayPopFront(ets), toDateTime(0)) AS nexts,
			arrayEnumerateUniq(es) AS occs
		FROM opportunity_state FINAL
		
		WHERE tenant = @tenant AND opportunity_id < @b1 AND 1
			AND n > 0
	)
	ARRAY JOIN arrayEnumerate(es) AS i, es AS stage, ets AS et, prevs AS prev, nexts AS nxt, occs AS occ)
	GROUP BY grp, prev, stage
UNION ALL
SELECT grp, prev, stage, count() AS n, sum(re) AS r, sum(cur) AS c, sum(exited) AS x,
		quantilesExactIfState(0.5, 0.75, 0.9)(dur, exited) AS qs
	FROM (SELECT grp, stage, prev, occ > 1 AS re, i = n AND is_open AS cur,
		nxt != 0 AS exited, toUInt32(nxt) - toUInt32(et) AS dur
	FROM (
		SELECT arrayCount(t -> t <= toDateTime(@asof), fact_times) AS fi,
			owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)] AS grp,
			statuses[fi] = 'open' AS is_open,
			arrayCount(t -> t <= toDateTime(@asof), stage_entry_times) AS n,
			arraySlice(stage_entries, 1, n) AS es,
			arraySlice(stage_entry_times, 1, n) AS ets,
			arrayPushFront(arrayPopBack(es), '') AS prevs,
			arrayPushBack(arrayPopFront(ets), toDateTime(0)) AS nexts,
			arrayEnumerateUniq(es) AS occs
		FROM opportunity_state FINAL
		
		WHERE tenant = @tenant AND opportunity_id >= @b1 AND opportunity_id < @b2 AND 1
			AND n > 0
	)
	ARRAY JOIN arrayEnumerate(es) AS i, es AS stage, ets AS et, prevs AS prev, nexts AS nxt, occs AS occ)
	GROUP BY grp, prev, stage
UNION ALL
SELECT grp, prev, stage, count() AS n, sum(re) AS r, sum(cur) AS c, sum(exited) AS x,
		quantilesExactIfState(0.5, 0.75, 0.9)(dur, exited) AS qs
	FROM (SELECT grp, stage, prev, occ > 1 AS re, i = n AND is_open AS cur,
		nxt != 0 AS exited, toUInt32(nxt) - toUInt32(et) AS dur
	FROM (
		SELECT arrayCount(t -> t <= toDateTime(@asof), fact_times) AS fi,
			owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)] AS grp,
			statuses[fi] = 'open' AS is_open,
			arrayCount(t -> t <= toDateTime(@asof), stage_entry_times) AS n,
			arraySlice(stage_entries, 1, n) AS es,
			arraySlice(stage_entry_times, 1, n) AS ets,
			arrayPushFront(arrayPopBack(es), '') AS prevs,
			arrayPushBack(arrayPopFront(ets), toDateTime(0)) AS nexts,
			arrayEnumerateUniq(es) AS occs
		FROM opportunity_state FINAL
		
		WHERE tenant = @tenant AND opportunity_id >= @b2 AND 1
			AND n > 0
	)
	ARRAY JOIN arrayEnumerate(es) AS i, es AS stage, ets AS et, prevs AS prev, nexts AS nxt, occs AS occ)
	GROUP BY grp, prev, stage
)
	ARRAY JOIN [toUInt8(0), toUInt8(1)] AS g
	GROUP BY g, k, oth, stage
