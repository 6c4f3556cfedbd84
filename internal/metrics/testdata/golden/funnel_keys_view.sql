SELECT key, cityHash64(key), sum(n) AS n FROM (
SELECT owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)] AS key, count() AS n
		FROM opportunity_state
		PREWHERE (opp_hash, version) NOT IN _superseded
		WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts AND (arrayExists(r -> r <= toDateTime(@asof) AND toUInt32(r) >= @from AND toUInt32(r) < @to, arrayResize(reach, @nsteps)))
		GROUP BY key
)
	GROUP BY key
	ORDER BY n DESC, key
