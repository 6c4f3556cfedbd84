-- single_threaded_times: every current deal.single_threaded of the
-- opportunity, in fold order (internal/derive.State.SingleThreaded), so
-- the deal list and the warnings (internal/deals) answer the
-- single-threaded warning from this row instead of scanning derived_events.
-- single_threaded_filled is 1 on every row written since this migration.
--
-- Rows written before it read no times and single_threaded_filled 0 until
-- a replay (commitflow replay) rewrites the states; meanwhile the readers
-- take the single-threaded warning of those rows from derived_events, as
-- before, so the answers stay right and only slower.

{{define "single_threaded_times"}}single_threaded_times Array(DateTime) DEFAULT emptyArrayDateTime(){{end}}
{{define "single_threaded_filled"}}single_threaded_filled UInt8 DEFAULT 0{{end}}

{{if not (has_column "opportunity_state" "single_threaded_times")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "single_threaded_times"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "single_threaded_times")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "single_threaded_times"}};
{{end}}
{{if not (has_column "opportunity_state" "single_threaded_filled")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "single_threaded_filled"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "single_threaded_filled")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "single_threaded_filled"}};
{{end}}
