-- One row per opportunity: its whole current derived history folded into
-- arrays (internal/derive.State, written by the derivation next to the
-- derived events, with the same version). The metrics and the forecast read
-- this instead of every derived event: "as of D" questions become array
-- look-ups on one row per opportunity, which keeps them fast at tens of
-- millions of events on old servers too.
--
-- Array conventions (all 1-based in SQL):
--   reach[K]       reach_time(K): earliest commitment.gained with step_index >= K;
--                  1970-01-01 00:00:00 (toDateTime(0)) = not reached
--   gained[K]      when step K itself was gained; toDateTime(0) = never (a skip)
--   gain_*         every commitment.gained, ordered by (occurred_at, id)
--   fact_*         the opportunity's facts (the snapshot every derived event
--                  carries) after each distinct occurred_at at which they
--                  changed, ordered by time: facts as of D are element
--                  arrayCount(t -> t <= D, fact_times) (0 = none yet); at equal
--                  times the snapshot of the greatest id wins
--   stall_*        deal.stalled events, ordered by time
--   regress_times  stage.regressed events, ordered by time
--   close_*        deal.closed events, ordered by (occurred_at, id)
--   miss_*         commitment.missed, ordered by (occurred_at, id); owner and
--                  amount from that event's own snapshot
--   held_*         interaction.held, likewise
CREATE TABLE IF NOT EXISTS {{table "opportunity_state"}} {{on_cluster}} (
    tenant            String,
    opportunity_id    String,
    created_at        DateTime,
    first_at          DateTime,
    reach             Array(DateTime),
    gained            Array(DateTime),
    gain_times        Array(DateTime),
    gain_steps        Array(UInt8),
    fact_times        Array(DateTime),
    amounts           Array(Float64),
    close_dates       Array(Date),
    stages            Array(String),
    probabilities     Array(Float64),
    statuses          Array(String),
    owners            Array(String),
    teams             Array(String),
    segments          Array(String),
    lead_sources      Array(String),
    products          Array(String),
    stall_times       Array(DateTime),
    stall_steps       Array(UInt8),
    regress_times     Array(DateTime),
    close_times       Array(DateTime),
    close_statuses    Array(String),
    close_reasons     Array(String),
    miss_times        Array(DateTime),
    miss_steps        Array(UInt8),
    miss_reasons      Array(String),
    miss_interactions Array(String),
    miss_owners       Array(String),
    miss_amounts      Array(Float64),
    held_times        Array(DateTime),
    held_steps        Array(UInt8),
    held_outcomes     Array(String),
    held_interactions Array(String),
    held_owners       Array(String),
    ladder_version    String,
    version           UInt64
) ENGINE = {{engine "opportunity_state" "ReplacingMergeTree" "version"}}
ORDER BY (tenant, opportunity_id);

{{distributed "opportunity_state" "cityHash64(tenant, opportunity_id)"}};
