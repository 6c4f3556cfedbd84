-- seq: a derived event's position in its opportunity's fold among the
-- derived events of the same second (internal/derive.Derived.Seq, from 0).
-- Events sharing a second (one CRM edit of several fields as several typed
-- events, a stage change and the close it implies, dates without times)
-- are ordered by (occurred_at, seq): the last one's snapshot is the facts
-- after every input event up to the end of that second. It is content, not
-- identity: ids do not change. Rows written before this migration read 0;
-- a replay (commitflow replay) rewrites those whose seq is not.
-- opportunity_state (0101) is computed in this order too: where 0101 says
-- "ordered by (occurred_at, id)" or "the snapshot of the greatest id wins",
-- read (occurred_at, seq) and "the last in fold order".

{{define "seq"}}seq UInt32 DEFAULT 0{{end}}

{{if not (has_column "derived_events" "seq")}}
ALTER TABLE {{table "derived_events"}} {{on_cluster}} ADD COLUMN {{template "seq"}};
{{end}}
{{if not (has_distributed_column "derived_events" "seq")}}
ALTER TABLE {{distributed_table "derived_events"}} {{on_cluster}} ADD COLUMN {{template "seq"}};
{{end}}
