SELECT g, o, '', grp_kh,
	toUInt64(sum(n)), toUInt64(sum(nok)), quantilesExactIfMerge(0.5, 0.75, 0.9)(qs)
FROM (
	SELECT intDiv(x, 2) AS g, if(x % 2 = 0, 0, if(won, 1, 2)) AS o,
		if(g = 0, toDate(0), pd) AS grp_pd, if(g = 0, 0, kh) AS grp_kh, n, nok, qs
	FROM (
SELECT pd, kh, won, count() AS n, sum(ok) AS nok,
	quantilesExactIfState(0.5, 0.75, 0.9)(secs, ok) AS qs
FROM (
	SELECT arrayCount(t -> t <= toDateTime(@asof), close_times) AS ci,
		toUInt32(close_times[ci]) AS ct,
		close_statuses[ci] = 'won' AS won,
		toUInt32(created_at) AS st,
		st != 0 AND st <= ct AS ok,
		toUInt32(if(ok, ct - st, 0)) AS secs,
		toDate(0) AS pd,
		cityHash64(owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)]) AS kh
	FROM opportunity_state FINAL
	
	WHERE tenant = @tenant AND opportunity_id < @b1 AND 1
		AND ci > 0 AND ct >= @from AND ct < @to
		AND fact_closed[arrayCount(t -> t <= toDateTime(@asof), fact_times)] = 1
)
GROUP BY pd, kh, won
UNION ALL
SELECT pd, kh, won, count() AS n, sum(ok) AS nok,
	quantilesExactIfState(0.5, 0.75, 0.9)(secs, ok) AS qs
FROM (
	SELECT arrayCount(t -> t <= toDateTime(@asof), close_times) AS ci,
		toUInt32(close_times[ci]) AS ct,
		close_statuses[ci] = 'won' AS won,
		toUInt32(created_at) AS st,
		st != 0 AND st <= ct AS ok,
		toUInt32(if(ok, ct - st, 0)) AS secs,
		toDate(0) AS pd,
		cityHash64(owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)]) AS kh
	FROM opportunity_state FINAL
	
	WHERE tenant = @tenant AND opportunity_id >= @b1 AND opportunity_id < @b2 AND 1
		AND ci > 0 AND ct >= @from AND ct < @to
		AND fact_closed[arrayCount(t -> t <= toDateTime(@asof), fact_times)] = 1
)
GROUP BY pd, kh, won
UNION ALL
SELECT pd, kh, won, count() AS n, sum(ok) AS nok,
	quantilesExactIfState(0.5, 0.75, 0.9)(secs, ok) AS qs
FROM (
	SELECT arrayCount(t -> t <= toDateTime(@asof), close_times) AS ci,
		toUInt32(close_times[ci]) AS ct,
		close_statuses[ci] = 'won' AS won,
		toUInt32(created_at) AS st,
		st != 0 AND st <= ct AS ok,
		toUInt32(if(ok, ct - st, 0)) AS secs,
		toDate(0) AS pd,
		cityHash64(owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)]) AS kh
	FROM opportunity_state FINAL
	
	WHERE tenant = @tenant AND opportunity_id >= @b2 AND 1
		AND ci > 0 AND ct >= @from AND ct < @to
		AND fact_closed[arrayCount(t -> t <= toDateTime(@asof), fact_times)] = 1
)
GROUP BY pd, kh, won
)
	ARRAY JOIN [toUInt8(0), toUInt8(1), toUInt8(2), toUInt8(3)] AS x
)
GROUP BY g, o, grp_pd, grp_kh
