
SELECT o, f_amount, f_currency, f_close_date, f_probability, f_owner, f_team, f_segment, f_category, h, last_at, closed, ct, cs, close_amount, close_currency FROM (
    SELECT
        opportunity_id AS o,
        fact_closed[-1] AS f_closed,
        latest_amount AS f_amount,
        reinterpretAsUInt32(latest_currency) AS f_currency,
        latest_close_date AS f_close_date,
        latest_probability AS f_probability,
        latest_owner AS f_owner,
        latest_team AS f_team,
        latest_segment AS f_segment,
        '' AS f_category,
        emptyArrayString() AS f_attrs,
        reached_steps AS h,
        if(toUInt32(latest_gain_at) = 0, if(toUInt32(created_at) > 0 AND created_seen <= toDateTime(@bound), created_at, first_at), latest_gain_at) AS last_at,
        toUInt8(0) AS closed,
        toDateTime(0) AS ct,
        '' AS cs,
        toFloat64(0) AS close_amount,
        toUInt32(0) AS close_currency
    FROM opportunity_state FINAL
    
    WHERE tenant = @tenant AND 1 AND toUInt32(first_at) > 0 AND first_at <= toDateTime(@bound)
        AND if(toUInt32(created_at) > 0 AND created_seen <= toDateTime(@bound), created_at, first_at) <= toDateTime(@at)
        AND NOT (notEmpty(close_times) AND fact_closed[-1] = 1 AND close_times[-1] <= toDateTime(@at))
)
WHERE f_closed = 0
