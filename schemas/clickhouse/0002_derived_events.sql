-- Derived events (commitment.gained, commitment.missed, deal.stalled, ...).
-- id is deterministic: the same input events give the same ids. A derived
-- event that history no longer supports is retracted by inserting its id again
-- with retracted = 1 and a higher version; queries read
-- `derived_events FINAL WHERE retracted = 0`.
-- Not partitioned by time: a derived event keeps its id when a late input
-- moves its time, and replacement only works inside one partition.
-- The double-brace placeholders are described in README.md.
CREATE TABLE IF NOT EXISTS {{table "derived_events"}} {{on_cluster}} (
    tenant          String,
    opportunity_id  String,
    id              String,
    type            String,
    occurred_at     DateTime,
    step            String,
    step_index      UInt8,
    reason          String,
    interaction_id  String,
    evidence        Array(String),
    amount          Float64,
    close_date      Date,
    stage           String,
    probability     Float64,
    status          String,
    owner_id        String,
    team            String,
    segment         String,
    lead_source     String,
    product         String,
    value           Float64,
    detail          String,
    ladder_version  String,
    version         UInt64,
    retracted       UInt8
) ENGINE = {{engine "derived_events" "ReplacingMergeTree" "version"}}
ORDER BY (tenant, opportunity_id, id);

{{distributed "derived_events" "cityHash64(tenant, opportunity_id)"}};
