SELECT key, cityHash64(key), sum(n) AS n FROM (
SELECT owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)] AS key, count() AS n
		FROM opportunity_state FINAL
		
		WHERE tenant = @tenant AND opportunity_id < @b1 AND 1 AND (arrayCount(t -> t <= toDateTime(@asof), close_times) > 0
	AND toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) >= @from
	AND toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) < @to
	AND fact_closed[arrayCount(t -> t <= toDateTime(@asof), fact_times)] = 1)
		GROUP BY key
UNION ALL
SELECT owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)] AS key, count() AS n
		FROM opportunity_state FINAL
		
		WHERE tenant = @tenant AND opportunity_id >= @b1 AND opportunity_id < @b2 AND 1 AND (arrayCount(t -> t <= toDateTime(@asof), close_times) > 0
	AND toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) >= @from
	AND toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) < @to
	AND fact_closed[arrayCount(t -> t <= toDateTime(@asof), fact_times)] = 1)
		GROUP BY key
UNION ALL
SELECT owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)] AS key, count() AS n
		FROM opportunity_state FINAL
		
		WHERE tenant = @tenant AND opportunity_id >= @b2 AND 1 AND (arrayCount(t -> t <= toDateTime(@asof), close_times) > 0
	AND toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) >= @from
	AND toUInt32(close_times[arrayCount(t -> t <= toDateTime(@asof), close_times)]) < @to
	AND fact_closed[arrayCount(t -> t <= toDateTime(@asof), fact_times)] = 1)
		GROUP BY key
)
	GROUP BY key
	ORDER BY n DESC, key
