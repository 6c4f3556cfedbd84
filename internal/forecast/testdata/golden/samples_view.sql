SELECT o, t, h, last_at, days, seg, outcome, day FROM (
SELECT o, t, k, h, last_at, days, seg, outcome, day FROM (
    SELECT
        o,
        t,
        k,
        arrayCount(g -> g <= t, gt) AS gi,
        toUInt8(arrayCount(rt -> rt != toDateTime(0) AND rt <= toDateTime(t), reach)) AS h,
        if(gi = 0, created, gt[gi]) AS last_at,
        intDiv(toInt64(toUInt32(t)) - toInt64(toUInt32(last_at)), 86400) AS days,
        segs[arrayCount(x -> x <= t, ft)] AS seg,
        arrayFirstIndex(x -> x > t, cts) AS ci,
        ci > 0 AND cts[ci] <= toDateTime(@bound) AS closed,
        intDiv(toInt64(toUInt32(cts[ci])) - toInt64(toUInt32(t)), 86400) AS close_day,
        multiIf(NOT closed OR close_day >= @horizon, 0, css[ci] = 'won', 1, 2) AS outcome,
        if(outcome = 0, least(intDiv(toInt64(@bound) - toInt64(toUInt32(t)), 86400), @horizon), close_day) AS day
    FROM (
SELECT
    opportunity_id AS o,
    gain_times AS gt,
    fact_times AS ft,
    fact_closed AS fc,
    reach,
    segments AS segs,
    close_times AS cts,
    close_statuses AS css,
    if(toUInt32(created_at) > 0 AND created_seen <= toDateTime(@bound), created_at, first_at) AS created,
    close_times[-1] AS lc,
    notEmpty(close_times) AND fact_closed[-1] = 1 AS ends_closed,
    empty(close_times) OR (length(close_times) = 1 AND ends_closed) AS simple,
    arrayFilter(t -> created <= t AND NOT (ends_closed AND lc <= t), arrayMap(x -> toDateTime(x), @refs)) AS cand,
    if(simple, cand, arrayFilter(t -> fc[arrayCount(x -> x <= t, ft)] = 0, if(simple, emptyArrayDateTime(), cand))) AS open_ts
FROM opportunity_state
PREWHERE (opp_hash, version) NOT IN _superseded
WHERE tenant = @tenant AND _part IN @snapshot_parts AND toUInt32(first_at) > 0 AND first_at <= toDateTime(@bound))
    ARRAY JOIN open_ts AS t, arrayEnumerate(open_ts) AS k
)) ORDER BY o, t
