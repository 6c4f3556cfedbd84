-- People of the CRM: the users who own deals (Salesforce Users, HubSpot
-- owners, Pipedrive users), imported by `commitflow import --format users`
-- (package internal/people) so that answers and the dashboard show names
-- beside the owner ids the events carry.
--
-- Reference data, not events: written directly, one row per (tenant, id)
-- and import; the row of the greatest version (the import's time in
-- nanoseconds) is the person's current record. Readers take it with
-- argMax(..., version) GROUP BY id, so a row not merged yet is never read
-- twice. An import writes only the people it changes.
CREATE TABLE IF NOT EXISTS {{table "people"}} {{on_cluster}} (
    tenant  String,
    id      String,
    name    String,
    email   String,
    team    String,
    manager String,
    version UInt64
) ENGINE = {{engine "people" "ReplacingMergeTree" "version"}}
ORDER BY (tenant, id);

{{distributed "people" "cityHash64(tenant, id)"}};
