-- Deals with a miss in a time range, and their value at stake, each deal
-- once, without distinct sets: for each element of miss_* (ordered by
-- (occurred_at, id)), the time (UInt32 seconds) of the opportunity's
-- previous miss at the same expected step (miss_deal_prev_step), with the
-- same reason (miss_deal_prev_reason) and with the same owner
-- (miss_deal_prev_owner); 0 when there is none. A miss at t in [from, to)
-- is the first of its deal in that range with that step, reason or owner
-- exactly when that time is before from, so /v1/missed counts a deal, and
-- adds its amount, on that miss alone (internal/metrics/missed.go), as
-- 0103 does for interactions.
--
-- The columns are computed by ClickHouse from miss_times and the keys: on
-- insert, and for parts written before this migration when they are read,
-- until a merge writes them.

{{define "miss_deal_prev_step"}}miss_deal_prev_step Array(UInt32) DEFAULT
    arrayMap((i, k) -> toUInt32(arrayReduce('max', arrayMap((j, t2, k2) -> if(j < i AND k2 = k, toUInt32(t2), toUInt32(0)),
        arrayEnumerate(miss_times), miss_times, miss_steps))),
    arrayEnumerate(miss_times), miss_steps){{end}}

{{define "miss_deal_prev_reason"}}miss_deal_prev_reason Array(UInt32) DEFAULT
    arrayMap((i, k) -> toUInt32(arrayReduce('max', arrayMap((j, t2, k2) -> if(j < i AND k2 = k, toUInt32(t2), toUInt32(0)),
        arrayEnumerate(miss_times), miss_times, miss_reasons))),
    arrayEnumerate(miss_times), miss_reasons){{end}}

{{define "miss_deal_prev_owner"}}miss_deal_prev_owner Array(UInt32) DEFAULT
    arrayMap((i, k) -> toUInt32(arrayReduce('max', arrayMap((j, t2, k2) -> if(j < i AND k2 = k, toUInt32(t2), toUInt32(0)),
        arrayEnumerate(miss_times), miss_times, miss_owners))),
    arrayEnumerate(miss_times), miss_owners){{end}}

{{if not (has_column "opportunity_state" "miss_deal_prev_step")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_deal_prev_step"}};
{{end}}
{{if not (has_column "opportunity_state" "miss_deal_prev_reason")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_deal_prev_reason"}};
{{end}}
{{if not (has_column "opportunity_state" "miss_deal_prev_owner")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_deal_prev_owner"}};
{{end}}
