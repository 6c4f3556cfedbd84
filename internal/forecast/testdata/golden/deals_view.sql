
SELECT o, f_amount, f_currency, f_close_date, f_probability, f_owner, f_team, f_segment, f_category, h, last_at, closed, ct, cs, close_amount, close_currency FROM (
    SELECT
        opportunity_id AS o,
        if(toUInt32(created_at) > 0 AND created_seen <= toDateTime(@bound), created_at, first_at) AS created,
        arrayCount(t -> t <= toDateTime(@at), fact_times) AS fi,
        fact_closed[fi] AS f_closed,
        amounts[fi] AS f_amount,
        reinterpretAsUInt32(currencies[fi]) AS f_currency,
        close_dates[fi] AS f_close_date,
        probabilities[fi] AS f_probability,
        owner_runs[arrayCount(t -> t <= toDateTime(@at), owner_run_times)] AS f_owner,
        team_runs[arrayCount(t -> t <= toDateTime(@at), team_run_times)] AS f_team,
        segment_runs[arrayCount(t -> t <= toDateTime(@at), segment_run_times)] AS f_segment,
        '' AS f_category,
        emptyArrayString() AS f_attrs,
        arrayCount(g -> g <= toDateTime(@at), gain_times) AS gi,
        toUInt8(arrayCount(rt -> rt != toDateTime(0) AND rt <= toDateTime(@at), reach)) AS h,
        if(gi = 0, created, gain_times[gi]) AS last_at,
        arrayFirstIndex(x -> x > toDateTime(@at), close_times) AS ci,
        ci > 0 AND close_times[ci] <= toDateTime(@bound) AS closed,
        close_times[ci] AS ct,
        close_statuses[ci] AS cs,
        arrayCount(x -> x <= ct, fact_times) AS cfi,
        amounts[cfi] AS close_amount,
        reinterpretAsUInt32(currencies[cfi]) AS close_currency
    FROM opportunity_state
    PREWHERE (opp_hash, version) NOT IN _superseded
    WHERE tenant = @tenant AND _part IN @snapshot_parts AND toUInt32(first_at) > 0 AND first_at <= toDateTime(@bound)
        AND if(toUInt32(created_at) > 0 AND created_seen <= toDateTime(@bound), created_at, first_at) <= toDateTime(@at)
        AND NOT (notEmpty(close_times) AND fact_closed[-1] = 1 AND close_times[-1] <= toDateTime(@at))
)
WHERE f_closed = 0
