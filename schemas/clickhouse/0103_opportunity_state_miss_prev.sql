-- Distinct interactions with a miss in a time range, without distinct sets:
-- for each element of miss_* (ordered by (occurred_at, id)), the time (UInt32
-- seconds) of the previous miss about the same interaction (miss_prev), about
-- the same interaction at the same expected step (miss_prev_step), with the
-- same reason (miss_prev_reason) and with the same owner (miss_prev_owner); 0
-- when there is none. A miss is about an interaction unless its interaction
-- id is empty or its reason is close_date_pushed or no_decision; a miss that
-- is not gets 4294967295 and never counts. A
-- miss at t in [from, to) is the first of its interaction in that range
-- exactly when its previous one is before from, so the distinct interactions
-- missed in [from, to) are countIf(prev < from): /v1/missed sums a number
-- per miss instead of merging hash sets of ids (internal/metrics/missed.go).
--
-- The columns are computed by ClickHouse from the other miss_* columns: on
-- insert, and for parts written before this migration when they are read,
-- until a merge writes them (OPTIMIZE TABLE opportunity_state FINAL does that
-- at once). Interaction ids belong to one opportunity, so per-row previous
-- occurrences are the same as over the whole table.
-- Each column is added by its own statement, skipped once the column exists
-- (18.16 has no ADD COLUMN IF NOT EXISTS); on a cluster the Distributed table
-- gets the same DEFAULT, which it evaluates for the rows inserted through it.

{{define "miss_prev"}}miss_prev Array(UInt32) DEFAULT
    arrayMap((i, iid, r) -> if(iid = '' OR r = 'close_date_pushed' OR r = 'no_decision', toUInt32(4294967295),
        toUInt32(arrayReduce('max', arrayMap((j, t2, iid2, r2) -> if(j < i AND iid2 = iid AND r2 != 'close_date_pushed' AND r2 != 'no_decision', toUInt32(t2), toUInt32(0)),
            arrayEnumerate(miss_times), miss_times, miss_interactions, miss_reasons)))),
    arrayEnumerate(miss_times), miss_interactions, miss_reasons){{end}}

{{define "miss_prev_step"}}miss_prev_step Array(UInt32) DEFAULT
    arrayMap((i, iid, r, k) -> if(iid = '' OR r = 'close_date_pushed' OR r = 'no_decision', toUInt32(4294967295),
        toUInt32(arrayReduce('max', arrayMap((j, t2, iid2, r2, k2) -> if(j < i AND iid2 = iid AND r2 != 'close_date_pushed' AND r2 != 'no_decision' AND k2 = k, toUInt32(t2), toUInt32(0)),
            arrayEnumerate(miss_times), miss_times, miss_interactions, miss_reasons, miss_steps)))),
    arrayEnumerate(miss_times), miss_interactions, miss_reasons, miss_steps){{end}}

{{define "miss_prev_reason"}}miss_prev_reason Array(UInt32) DEFAULT
    arrayMap((i, iid, r, k) -> if(iid = '' OR r = 'close_date_pushed' OR r = 'no_decision', toUInt32(4294967295),
        toUInt32(arrayReduce('max', arrayMap((j, t2, iid2, r2, k2) -> if(j < i AND iid2 = iid AND r2 != 'close_date_pushed' AND r2 != 'no_decision' AND k2 = k, toUInt32(t2), toUInt32(0)),
            arrayEnumerate(miss_times), miss_times, miss_interactions, miss_reasons, miss_reasons)))),
    arrayEnumerate(miss_times), miss_interactions, miss_reasons, miss_reasons){{end}}

{{define "miss_prev_owner"}}miss_prev_owner Array(UInt32) DEFAULT
    arrayMap((i, iid, r, k) -> if(iid = '' OR r = 'close_date_pushed' OR r = 'no_decision', toUInt32(4294967295),
        toUInt32(arrayReduce('max', arrayMap((j, t2, iid2, r2, k2) -> if(j < i AND iid2 = iid AND r2 != 'close_date_pushed' AND r2 != 'no_decision' AND k2 = k, toUInt32(t2), toUInt32(0)),
            arrayEnumerate(miss_times), miss_times, miss_interactions, miss_reasons, miss_owners)))),
    arrayEnumerate(miss_times), miss_interactions, miss_reasons, miss_owners){{end}}

{{if not (has_column "opportunity_state" "miss_prev")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_prev"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "miss_prev")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_prev"}};
{{end}}
{{if not (has_column "opportunity_state" "miss_prev_step")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_prev_step"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "miss_prev_step")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_prev_step"}};
{{end}}
{{if not (has_column "opportunity_state" "miss_prev_reason")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_prev_reason"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "miss_prev_reason")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_prev_reason"}};
{{end}}
{{if not (has_column "opportunity_state" "miss_prev_owner")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_prev_owner"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "miss_prev_owner")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_prev_owner"}};
{{end}}
