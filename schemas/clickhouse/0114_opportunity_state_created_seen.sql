-- When the CRM first showed the deal: the time of its deal.created
-- (created_at is the creation time the CRM reports, which can be much
-- earlier: a webhook or an export of deals already open). As of a date
-- before created_seen the CRM had not shown the deal, so its creation is
-- not known yet: the answers count from its first event (a call, say)
-- until then, and a stall clock that runs from the creation counts the
-- stalls fired from created_seen on (internal/readmodel). 1970 = no
-- deal.created.
--
-- Rows written before this migration read the later of created_at and
-- first_at, which is right unless the deal had events before its
-- opportunity was first seen (replay writes them anew).

{{if not (has_column "opportunity_state" "created_seen")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN created_seen DateTime DEFAULT if(created_at > first_at, created_at, first_at);
{{end}}
