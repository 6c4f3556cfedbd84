-- Raw input events, one row per (tenant, opportunity, source, source event id).
-- A redelivered message inserts the same key again; ReplacingMergeTree keeps
-- one row per key after merges, and every query de-duplicates (FINAL, or
-- GROUP BY the key) so a duplicate is never counted before the merge.
-- The double-brace placeholders are described in README.md.
CREATE TABLE IF NOT EXISTS {{table "events"}} {{on_cluster}} (
    tenant         String,
    opportunity_id String,
    source         String,
    event_id       String,
    type           String,
    occurred_at    DateTime,
    received_at    DateTime,
    stream_seq     UInt64,
    payload        String
) ENGINE = {{engine "events" "ReplacingMergeTree" "stream_seq"}}
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (tenant, opportunity_id, source, event_id);

{{distributed "events" "cityHash64(tenant, opportunity_id)"}};
