SELECT dim, k, toUInt64(sum(n)), tupleElement(sumMap([cur], [v], [v0]), 1), tupleElement(sumMap([cur], [v], [v0]), 2), tupleElement(sumMap([cur], [v], [v0]), 3), toUInt64(sum(d)), toUInt64(sum(d0)),
	toUInt64(sum(u)), toUInt64(sum(u0)), toUInt64(sum(held))
FROM (
SELECT ['step', 'reason'] AS dims, [toString(step_index), reason] AS ks, [n, n] AS ns, [n * bitTest(code, 0), n * bitTest(code, 1)] AS us, [n * bitTest(code, 2), toUInt64(0)] AS u0s,
			[n * bitTest(code, 3), n * bitTest(code, 4)] AS ds, [n * bitTest(code, 5), toUInt64(0)] AS d0s, [a * bitTest(code, 3), a * bitTest(code, 4)] AS vs, [a * bitTest(code, 5), toFloat64(0)] AS v0s, [toUInt64(0), toUInt64(0)] AS helds, cur AS cur
		FROM (
			SELECT step_index, reason, cur, toUInt8(1 * (p1 < @from) + 2 * (p2 < @from) + 4 * (p0 < @from) + 8 * (fs < @from) + 16 * (fr < @from) + 32 * (f0 < @from)) AS code, count() AS n, sum(amt) AS a
			FROM (
			SELECT amounts[arrayCount(t -> t <= toDateTime(@asof), fact_times)] AS amt, toUInt32(4477781) AS cur, miss_times, miss_steps, miss_reasons, miss_prev, miss_prev_step, miss_prev_reason, miss_deal_prev_step, miss_deal_prev_reason
			FROM opportunity_state
			PREWHERE (opp_hash, version) NOT IN _superseded
			WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts
		)
		ARRAY JOIN miss_times AS t, miss_steps AS step_index, miss_reasons AS reason, miss_prev AS p0, miss_prev_step AS p1, miss_prev_reason AS p2, miss_deal_prev_step AS fs, miss_deal_prev_reason AS fr, arrayPopBack(arrayPushFront(arrayMap(m -> toUInt32(m), miss_times), toUInt32(0))) AS f0
		WHERE t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@asof)
			GROUP BY step_index, reason, cur, code
		)
	UNION ALL
		SELECT ['owner'] AS dims, [owner_id] AS ks, [n] AS ns, [n * bitTest(code, 0)] AS us, [toUInt64(0)] AS u0s,
			[n * bitTest(code, 1)] AS ds, [toUInt64(0)] AS d0s, [a * bitTest(code, 1)] AS vs, [toFloat64(0)] AS v0s, [toUInt64(0)] AS helds, cur AS cur
		FROM (
			SELECT owner_id, cur, toUInt8(1 * (p3 < @from) + 2 * (f < @from)) AS code, count() AS n, sum(amt) AS a
			FROM (
			SELECT amounts[arrayCount(t -> t <= toDateTime(@asof), fact_times)] AS amt, toUInt32(4477781) AS cur, miss_times, miss_owners, miss_prev_owner, miss_deal_prev_owner
			FROM opportunity_state
			PREWHERE (opp_hash, version) NOT IN _superseded
			WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts
		)
		ARRAY JOIN miss_times AS t, miss_owners AS owner_id, miss_prev_owner AS p3, miss_deal_prev_owner AS f
		WHERE t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@asof)
			GROUP BY owner_id, cur, code
		)
	UNION ALL
		SELECT ['step'] AS dims, [toString(step_index)] AS ks, [toUInt64(0)] AS ns, [toUInt64(0)] AS us, [toUInt64(0)] AS u0s,
			[toUInt64(0)] AS ds, [toUInt64(0)] AS d0s, [toFloat64(0)] AS vs, [toFloat64(0)] AS v0s, [count()] AS helds, toUInt32(0) AS cur
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
		SELECT ['owner'] AS dims, [owner_id] AS ks, [toUInt64(0)] AS ns, [toUInt64(0)] AS us, [toUInt64(0)] AS u0s,
			[toUInt64(0)] AS ds, [toUInt64(0)] AS d0s, [toFloat64(0)] AS vs, [toFloat64(0)] AS v0s, [count()] AS helds, toUInt32(0) AS cur
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
ARRAY JOIN dims AS dim, ks AS k, ns AS n, us AS u, u0s AS u0, ds AS d, d0s AS d0, vs AS v, v0s AS v0, helds AS held
GROUP BY dim, k
ORDER BY dim, k
