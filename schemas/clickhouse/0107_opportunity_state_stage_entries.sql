-- stage_entry_times[i], stage_entries[i]: every entry of the opportunity into
-- a CRM stage, in fold order (internal/derive.State.StageEntries): the stage
-- of deal.created, then the new stage of each deal.updated whose reason is
-- stage. Several entries may share one second (one CRM edit as several
-- typed events, exports with dates but no times); the array order is the
-- fold's. An empty stage is no entry. /v1/stage-history reads them
-- (internal/metrics/stagehistory.go): entries, re-entries, transitions and
-- time in stage.
--
-- Rows written before this migration get, when read, the entries the fact
-- arrays show (a stage differing from the previous snapshot's), which are
-- per second: a stage entered and left within one second is missing there
-- until a replay (commitflow replay) rewrites the states.

{{define "stage_entry_times"}}stage_entry_times Array(DateTime) DEFAULT
    arrayFilter((t, s, p) -> s != '' AND s != p, fact_times, stages, arrayPopBack(arrayPushFront(stages, ''))){{end}}

{{define "stage_entries"}}stage_entries Array(String) DEFAULT
    arrayFilter((s, p) -> s != '' AND s != p, stages, arrayPopBack(arrayPushFront(stages, ''))){{end}}

{{if not (has_column "opportunity_state" "stage_entry_times")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "stage_entry_times"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "stage_entry_times")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "stage_entry_times"}};
{{end}}
{{if not (has_column "opportunity_state" "stage_entries")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "stage_entries"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "stage_entries")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "stage_entries"}};
{{end}}
