SELECT dim, k, toUInt64(sum(n)), tupleElement(sumMap([cur], [v], [v0]), 1), tupleElement(sumMap([cur], [v], [v0]), 2), tupleElement(sumMap([cur], [v], [v0]), 3), toUInt64(sum(d)), toUInt64(sum(d0)),
	toUInt64(sum(u)), toUInt64(sum(u0)), toUInt64(sum(held))
FROM (
SELECT 'step' AS dim, toString(step_index) AS k, cur, count() AS n,
			sum(if(f < @from, amt, 0)) AS v, sum(if(f0 < @from, amt, 0)) AS v0, sum(f < @from) AS d, sum(f0 < @from) AS d0,
			sum(p1 < @from) AS u, sum(p0 < @from) AS u0, toUInt64(0) AS held
		FROM (
			SELECT amounts[arrayCount(t -> t <= toDateTime(@asof), fact_times)] AS amt, reinterpretAsUInt32(currencies[arrayCount(t -> t <= toDateTime(@asof), fact_times)]) AS cur, miss_times, miss_steps, miss_prev, miss_prev_step, miss_deal_prev_step
			FROM opportunity_state
			PREWHERE (opp_hash, version) NOT IN _superseded
			WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts
		)
		ARRAY JOIN miss_times AS t, miss_steps AS step_index, miss_prev AS p0, miss_prev_step AS p1, miss_deal_prev_step AS f, arrayPopBack(arrayPushFront(arrayMap(m -> toUInt32(m), miss_times), toUInt32(0))) AS f0
		WHERE t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@asof)
		GROUP BY step_index, cur
	UNION ALL
		SELECT 'reason', reason, cur, count(), sum(if(f < @from, amt, 0)), toFloat64(0), sum(f < @from), toUInt64(0),
			sum(p2 < @from), toUInt64(0), toUInt64(0)
		FROM (
			SELECT amounts[arrayCount(t -> t <= toDateTime(@asof), fact_times)] AS amt, reinterpretAsUInt32(currencies[arrayCount(t -> t <= toDateTime(@asof), fact_times)]) AS cur, miss_times, miss_reasons, miss_prev_reason, miss_deal_prev_reason
			FROM opportunity_state
			PREWHERE (opp_hash, version) NOT IN _superseded
			WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts
		)
		ARRAY JOIN miss_times AS t, miss_reasons AS reason, miss_prev_reason AS p2, miss_deal_prev_reason AS f
		WHERE t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@asof)
		GROUP BY reason, cur
	UNION ALL
		SELECT 'owner', owner_id, cur, count(), sum(if(f < @from, amt, 0)), toFloat64(0), sum(f < @from), toUInt64(0),
			sum(p3 < @from), toUInt64(0), toUInt64(0)
		FROM (
			SELECT amounts[arrayCount(t -> t <= toDateTime(@asof), fact_times)] AS amt, reinterpretAsUInt32(currencies[arrayCount(t -> t <= toDateTime(@asof), fact_times)]) AS cur, miss_times, miss_owners, miss_prev_owner, miss_deal_prev_owner
			FROM opportunity_state
			PREWHERE (opp_hash, version) NOT IN _superseded
			WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts
		)
		ARRAY JOIN miss_times AS t, miss_owners AS owner_id, miss_prev_owner AS p3, miss_deal_prev_owner AS f
		WHERE t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@asof)
		GROUP BY owner_id, cur
	UNION ALL
		SELECT 'step', toString(step_index), toUInt32(0), toUInt64(0), toFloat64(0), toFloat64(0), toUInt64(0), toUInt64(0),
			toUInt64(0), toUInt64(0), count()
		FROM (
			SELECT held_times, held_steps
			FROM opportunity_state
			PREWHERE (opp_hash, version) NOT IN _superseded
			WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts
		)
		ARRAY JOIN held_times AS t, held_steps AS step_index
		WHERE t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@asof)
		GROUP BY step_index
	UNION ALL
		SELECT 'owner', owner_id, toUInt32(0), toUInt64(0), toFloat64(0), toFloat64(0), toUInt64(0), toUInt64(0),
			toUInt64(0), toUInt64(0), count()
		FROM (
			SELECT held_times, held_owners
			FROM opportunity_state
			PREWHERE (opp_hash, version) NOT IN _superseded
			WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts
		)
		ARRAY JOIN held_times AS t, held_owners AS owner_id
		WHERE t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@asof)
		GROUP BY owner_id
)
GROUP BY dim, k
ORDER BY dim, k
