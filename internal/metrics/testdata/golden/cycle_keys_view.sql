SELECT key, cityHash64(key), sum(n) AS n FROM (
SELECT owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)] AS key, count() AS n
		FROM opportunity_state
		PREWHERE (opp_hash, version) NOT IN _superseded
		WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts AND (arrayCount(t -> t <= toDateTime(@asof), close_times) > 0
	AND toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) >= @from
	AND toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) < @to
	AND fact_closed[arrayCount(t -> t <= toDateTime(@asof), fact_times)] = 1)
		GROUP BY key
)
	GROUP BY key
	ORDER BY n DESC, key
