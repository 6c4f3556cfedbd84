SELECT toUInt8(top_to),
		toUInt64(sum(n0)), toUInt64(sum(n1)), toUInt64(sum(n2)), toUInt64(sum(n3)),
		toUInt64(sum(n4)), toUInt64(sum(n5)), toUInt64(sum(n6)), toUInt64(sum(n7)),
		tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4], [a5], [a6], [a7]), 1), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4], [a5], [a6], [a7]), 2), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4], [a5], [a6], [a7]), 3), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4], [a5], [a6], [a7]), 4), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4], [a5], [a6], [a7]), 5), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4], [a5], [a6], [a7]), 6), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4], [a5], [a6], [a7]), 7), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4], [a5], [a6], [a7]), 8), tupleElement(sumMap([cur], [a0], [a1], [a2], [a3], [a4], [a5], [a6], [a7]), 9)
	FROM (
SELECT top_to, cur,
			countIf(is_new) AS n0, sumIf(amt, is_new) AS a0,
			countIf(top_to > top_from) AS n1, sumIf(amt, top_to > top_from) AS a1,
			countIf(reg) AS n2, sumIf(amt, reg) AS a2,
			countIf(stl) AS n3, sumIf(amt, stl) AS a3,
			countIf(both_open AND cd_from != 0 AND cd_to != 0 AND cd_to < cd_from) AS n4, sumIf(amt, both_open AND cd_from != 0 AND cd_to != 0 AND cd_to < cd_from) AS a4,
			countIf(both_open AND cd_from != 0 AND cd_to != 0 AND cd_to > cd_from) AS n5, sumIf(amt, both_open AND cd_from != 0 AND cd_to != 0 AND cd_to > cd_from) AS a5,
			countIf(won) AS n6, sumIf(amt, won) AS a6,
			countIf(lost) AS n7, sumIf(amt, lost) AS a7
		FROM (SELECT
			created_at >= toDateTime(@from) AND created_at < toDateTime(@to) AND created_seen <= toDateTime(@limit) AS is_new,
			toUInt8(arrayCount(rt -> rt != toDateTime(0) AND rt <= toDateTime(@flimit), reach)) AS top_from,
			toUInt8(arrayCount(rt -> rt != toDateTime(0) AND rt <= toDateTime(@limit), reach)) AS top_to,
			arrayExists(t -> t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@limit), regress_times) AS reg,
			arrayExists(t -> t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@limit), stall_times) AS stl,
			arrayExists((t, s) -> t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@limit) AND s = 'won', close_times, close_statuses) AS won,
			arrayExists((t, s) -> t >= toDateTime(@from) AND t < toDateTime(@to) AND t <= toDateTime(@limit) AND s = 'lost', close_times, close_statuses) AS lost,
			arrayCount(t -> t <= toDateTime(@flimit), fact_times) AS ffi,
			arrayCount(t -> t <= toDateTime(@limit), fact_times) AS fi,
			first_at <= toDateTime(@flimit) AND fact_closed[ffi] = 0 AND fact_closed[fi] = 0 AS both_open,
			toUInt16(close_dates[ffi]) AS cd_from,
			toUInt16(close_dates[fi]) AS cd_to,
			amounts[fi] AS amt,
			reinterpretAsUInt32(currencies[fi]) AS cur
		FROM opportunity_state
		PREWHERE (opp_hash, version) NOT IN _superseded
		WHERE tenant = @tenant AND 1 AND _part IN @snapshot_parts
			AND first_at != toDateTime(0) AND first_at <= toDateTime(@limit))
		GROUP BY top_to, cur
)
	GROUP BY top_to
	ORDER BY top_to
