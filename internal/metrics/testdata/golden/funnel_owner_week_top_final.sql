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
	n AS n0, n * (c < @nb) AS n1, n * (c = @nb + 1) AS n2, n * (c = @nb) AS n3, n * (code >= @skp) AS n4, n * (code >= @skp AND c < @nb) AS n5,
	a AS a0, a * (c < @nb) AS a1, a * (c = @nb + 1) AS a2, a * (c = @nb) AS a3, a * (code >= @skp) AS a4,
	qs, n * (code = 0) AS h0, n * (code = 1) AS h1, n * (code = 2) AS h2, n * (code = 3) AS h3, n * (code = 4) AS h4, n * (code = 5) AS h5, n * (code = 6) AS h6
FROM (
	SELECT K, pd, kh, cur, toUInt8(multiIf(NOT (conv) OR (rk1 - rk) < 0, 7, (rk1 - rk) < 604800, 0, (rk1 - rk) < 1209600, 1, (rk1 - rk) < 2592000, 2, (rk1 - rk) < 5184000, 3, (rk1 - rk) < 7776000, 4, (rk1 - rk) < 15552000, 5, 6) + dropped + 16 * skipped) AS code, code % @skp AS c,
		count() AS n, sum(amt) AS a,
		quantilesExactIfState(0.5, 0.75, 0.9)(toUInt32(rk1 - rk), conv AND NOT skipped) AS qs
	FROM (SELECT K, rk, rk1, skipped, amt, cur, kh,
		toMonday(toDateTime(rk), 'UTC') AS pd,
		rk1 != 0 AND (@window < 0 OR rk1 - rk <= @window) AS conv,
		NOT conv AND (closed OR (@window >= 0 AND rk + @window <= @asof)) AS dropped
	FROM (
		SELECT arrayCount(t -> t <= toDateTime(@asof), fact_times) AS fi,
			amounts[fi] AS amt,
			reinterpretAsUInt32(currencies[fi]) AS cur,
			fact_closed[fi] AS closed,
			if(has(@top_keys, cityHash64(owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)])), cityHash64(owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)]), toUInt64(1)) AS kh,
			arrayMap(r -> if(r <= toDateTime(@asof), toUInt32(r), toUInt32(0)), arrayResize(reach, @nladder)) AS rks,
			arrayPopBack(rks) AS rk_k,
			arrayPopFront(rks) AS rk_k1,
			arrayMap((g, r) -> g != r, arrayResize(gained, @nsteps), arrayResize(reach, @nsteps)) AS skp
		FROM opportunity_state FINAL
		
		WHERE tenant = @tenant AND opportunity_id < @b1 AND 1
			AND arrayExists(t -> t >= @from AND t < @to, rk_k)
	)
	ARRAY JOIN
		arrayMap(x -> toUInt8(x + 1), range(@nsteps)) AS K,
		rk_k AS rk,
		rk_k1 AS rk1,
		skp AS skipped
	WHERE rk >= @from AND rk < @to)
	GROUP BY K, pd, kh, cur, code
)
UNION ALL
SELECT K, pd, kh, cur,
	n AS n0, n * (c < @nb) AS n1, n * (c = @nb + 1) AS n2, n * (c = @nb) AS n3, n * (code >= @skp) AS n4, n * (code >= @skp AND c < @nb) AS n5,
	a AS a0, a * (c < @nb) AS a1, a * (c = @nb + 1) AS a2, a * (c = @nb) AS a3, a * (code >= @skp) AS a4,
	qs, n * (code = 0) AS h0, n * (code = 1) AS h1, n * (code = 2) AS h2, n * (code = 3) AS h3, n * (code = 4) AS h4, n * (code = 5) AS h5, n * (code = 6) AS h6
FROM (
	SELECT K, pd, kh, cur, toUInt8(multiIf(NOT (conv) OR (rk1 - rk) < 0, 7, (rk1 - rk) < 604800, 0, (rk1 - rk) < 1209600, 1, (rk1 - rk) < 2592000, 2, (rk1 - rk) < 5184000, 3, (rk1 - rk) < 7776000, 4, (rk1 - rk) < 15552000, 5, 6) + dropped + 16 * skipped) AS code, code % @skp AS c,
		count() AS n, sum(amt) AS a,
		quantilesExactIfState(0.5, 0.75, 0.9)(toUInt32(rk1 - rk), conv AND NOT skipped) AS qs
	FROM (SELECT K, rk, rk1, skipped, amt, cur, kh,
		toMonday(toDateTime(rk), 'UTC') AS pd,
		rk1 != 0 AND (@window < 0 OR rk1 - rk <= @window) AS conv,
		NOT conv AND (closed OR (@window >= 0 AND rk + @window <= @asof)) AS dropped
	FROM (
		SELECT arrayCount(t -> t <= toDateTime(@asof), fact_times) AS fi,
			amounts[fi] AS amt,
			reinterpretAsUInt32(currencies[fi]) AS cur,
			fact_closed[fi] AS closed,
			if(has(@top_keys, cityHash64(owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)])), cityHash64(owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)]), toUInt64(1)) AS kh,
			arrayMap(r -> if(r <= toDateTime(@asof), toUInt32(r), toUInt32(0)), arrayResize(reach, @nladder)) AS rks,
			arrayPopBack(rks) AS rk_k,
			arrayPopFront(rks) AS rk_k1,
			arrayMap((g, r) -> g != r, arrayResize(gained, @nsteps), arrayResize(reach, @nsteps)) AS skp
		FROM opportunity_state FINAL
		
		WHERE tenant = @tenant AND opportunity_id >= @b1 AND opportunity_id < @b2 AND 1
			AND arrayExists(t -> t >= @from AND t < @to, rk_k)
	)
	ARRAY JOIN
		arrayMap(x -> toUInt8(x + 1), range(@nsteps)) AS K,
		rk_k AS rk,
		rk_k1 AS rk1,
		skp AS skipped
	WHERE rk >= @from AND rk < @to)
	GROUP BY K, pd, kh, cur, code
)
UNION ALL
SELECT K, pd, kh, cur,
	n AS n0, n * (c < @nb) AS n1, n * (c = @nb + 1) AS n2, n * (c = @nb) AS n3, n * (code >= @skp) AS n4, n * (code >= @skp AND c < @nb) AS n5,
	a AS a0, a * (c < @nb) AS a1, a * (c = @nb + 1) AS a2, a * (c = @nb) AS a3, a * (code >= @skp) AS a4,
	qs, n * (code = 0) AS h0, n * (code = 1) AS h1, n * (code = 2) AS h2, n * (code = 3) AS h3, n * (code = 4) AS h4, n * (code = 5) AS h5, n * (code = 6) AS h6
FROM (
	SELECT K, pd, kh, cur, toUInt8(multiIf(NOT (conv) OR (rk1 - rk) < 0, 7, (rk1 - rk) < 604800, 0, (rk1 - rk) < 1209600, 1, (rk1 - rk) < 2592000, 2, (rk1 - rk) < 5184000, 3, (rk1 - rk) < 7776000, 4, (rk1 - rk) < 15552000, 5, 6) + dropped + 16 * skipped) AS code, code % @skp AS c,
		count() AS n, sum(amt) AS a,
		quantilesExactIfState(0.5, 0.75, 0.9)(toUInt32(rk1 - rk), conv AND NOT skipped) AS qs
	FROM (SELECT K, rk, rk1, skipped, amt, cur, kh,
		toMonday(toDateTime(rk), 'UTC') AS pd,
		rk1 != 0 AND (@window < 0 OR rk1 - rk <= @window) AS conv,
		NOT conv AND (closed OR (@window >= 0 AND rk + @window <= @asof)) AS dropped
	FROM (
		SELECT arrayCount(t -> t <= toDateTime(@asof), fact_times) AS fi,
			amounts[fi] AS amt,
			reinterpretAsUInt32(currencies[fi]) AS cur,
			fact_closed[fi] AS closed,
			if(has(@top_keys, cityHash64(owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)])), cityHash64(owner_runs[arrayCount(t -> t <= toDateTime(@asof), owner_run_times)]), toUInt64(1)) AS kh,
			arrayMap(r -> if(r <= toDateTime(@asof), toUInt32(r), toUInt32(0)), arrayResize(reach, @nladder)) AS rks,
			arrayPopBack(rks) AS rk_k,
			arrayPopFront(rks) AS rk_k1,
			arrayMap((g, r) -> g != r, arrayResize(gained, @nsteps), arrayResize(reach, @nsteps)) AS skp
		FROM opportunity_state FINAL
		
		WHERE tenant = @tenant AND opportunity_id >= @b2 AND 1
			AND arrayExists(t -> t >= @from AND t < @to, rk_k)
	)
	ARRAY JOIN
		arrayMap(x -> toUInt8(x + 1), range(@nsteps)) AS K,
		rk_k AS rk,
		rk_k1 AS rk1,
		skp AS skipped
	WHERE rk >= @from AND rk < @to)
	GROUP BY K, pd, kh, cur, code
)
)
	ARRAY JOIN [toUInt8(0), toUInt8(1)] AS g
	GROUP BY K, g, if(g = 0, toDate(0), pd) AS grp_pd, if(g = 0, 0, kh) AS grp_kh
