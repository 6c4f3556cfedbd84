SELECT K, g, if(g = 0, '', toString(grp_pd)), grp_kh,
		toUInt64(sum(n0)), toUInt64(sum(n1)), toUInt64(sum(n2)), toUInt64(sum(n3)), toUInt64(sum(n4)), toUInt64(sum(n5)),
		tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4]), 1), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4]), 2), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4]), 3), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4]), 4), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4]), 5), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4]), 6),
		quantilesExactIfMerge(0.5, 0.75, 0.9)(qs),
	toUInt64(sum(h0)),
	toUInt64(sum(h1)),
	toUInt64(sum(h2)),
	toUInt64(sum(h3)),
	toUInt64(sum(h4)),
	toUInt64(sum(h5)),
	toUInt64(sum(h6))
	FROM (
SELECT K, pd, kh, cur,
	count() AS n0, sum(conv) AS n1, sum(dropped) AS n2, sum(NOT conv AND NOT dropped) AS n3, sum(skipped) AS n4, sum(conv AND skipped) AS n5,
	sum(amt) AS a0, sum(amt * conv) AS a1, sum(amt * dropped) AS a2, sum(amt * (NOT conv AND NOT dropped)) AS a3, sum(amt * skipped) AS a4,
	quantilesExactIfState(0.5, 0.75, 0.9)(toUInt32(rk1 - rk), conv AND NOT skipped) AS qs,
	sum(multiIf(NOT (conv AND NOT skipped) OR (rk1 - rk) < 0, 7, (rk1 - rk) < 604800, 0, (rk1 - rk) < 1209600, 1, (rk1 - rk) < 2592000, 2, (rk1 - rk) < 5184000, 3, (rk1 - rk) < 7776000, 4, (rk1 - rk) < 15552000, 5, 6) = 0) AS h0,
	sum(multiIf(NOT (conv AND NOT skipped) OR (rk1 - rk) < 0, 7, (rk1 - rk) < 604800, 0, (rk1 - rk) < 1209600, 1, (rk1 - rk) < 2592000, 2, (rk1 - rk) < 5184000, 3, (rk1 - rk) < 7776000, 4, (rk1 - rk) < 15552000, 5, 6) = 1) AS h1,
	sum(multiIf(NOT (conv AND NOT skipped) OR (rk1 - rk) < 0, 7, (rk1 - rk) < 604800, 0, (rk1 - rk) < 1209600, 1, (rk1 - rk) < 2592000, 2, (rk1 - rk) < 5184000, 3, (rk1 - rk) < 7776000, 4, (rk1 - rk) < 15552000, 5, 6) = 2) AS h2,
	sum(multiIf(NOT (conv AND NOT skipped) OR (rk1 - rk) < 0, 7, (rk1 - rk) < 604800, 0, (rk1 - rk) < 1209600, 1, (rk1 - rk) < 2592000, 2, (rk1 - rk) < 5184000, 3, (rk1 - rk) < 7776000, 4, (rk1 - rk) < 15552000, 5, 6) = 3) AS h3,
	sum(multiIf(NOT (conv AND NOT skipped) OR (rk1 - rk) < 0, 7, (rk1 - rk) < 604800, 0, (rk1 - rk) < 1209600, 1, (rk1 - rk) < 2592000, 2, (rk1 - rk) < 5184000, 3, (rk1 - rk) < 7776000, 4, (rk1 - rk) < 15552000, 5, 6) = 4) AS h4,
	sum(multiIf(NOT (conv AND NOT skipped) OR (rk1 - rk) < 0, 7, (rk1 - rk) < 604800, 0, (rk1 - rk) < 1209600, 1, (rk1 - rk) < 2592000, 2, (rk1 - rk) < 5184000, 3, (rk1 - rk) < 7776000, 4, (rk1 - rk) < 15552000, 5, 6) = 5) AS h5,
	sum(multiIf(NOT (conv AND NOT skipped) OR (rk1 - rk) < 0, 7, (rk1 - rk) < 604800, 0, (rk1 - rk) < 1209600, 1, (rk1 - rk) < 2592000, 2, (rk1 - rk) < 5184000, 3, (rk1 - rk) < 7776000, 4, (rk1 - rk) < 15552000, 5, 6) = 6) AS h6
FROM (SELECT K, rk, rk1, skipped, amt, cur, kh,
		toStartOfMonth(toDateTime(rk), 'UTC') AS pd,
		rk1 != 0 AND (@window < 0 OR rk1 - rk <= @window) AS conv,
		NOT conv AND (closed OR (@window >= 0 AND rk + @window <= @asof)) AS dropped
	FROM (
		SELECT arrayCount(t -> t <= toDateTime(@asof), fact_times) AS fi,
			amounts[fi] AS amt,
			reinterpretAsUInt32(currencies[fi]) AS cur,
			fact_closed[fi] AS closed,
			cityHash64(owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)]) AS kh,
			arrayMap(r -> if(r <= toDateTime(@asof), toUInt32(r), toUInt32(0)), arrayResize(reach, @nladder)) AS rks,
			arrayPopBack(rks) AS rk_k,
			arrayPopFront(rks) AS rk_k1,
			arrayMap((g, r) -> g != r, arrayResize(gained, @nsteps), arrayResize(reach, @nsteps)) AS skp
		FROM opportunity_state
		PREWHERE (opp_hash, version) NOT IN _superseded
		WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts
			AND arrayExists(t -> t >= @from AND t < @to, rk_k)
	)
	ARRAY JOIN
		arrayMap(x -> toUInt8(x + 1), range(@nsteps)) AS K,
		rk_k AS rk,
		rk_k1 AS rk1,
		skp AS skipped
	WHERE rk >= @from AND rk < @to)
GROUP BY K, pd, kh, cur
)
	ARRAY JOIN [toUInt8(0), toUInt8(1)] AS g
	GROUP BY K, g, if(g = 0, toDate(0), pd) AS grp_pd, if(g = 0, 0, kh) AS grp_kh
