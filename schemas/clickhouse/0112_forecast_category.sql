-- The CRM's forecast category (Commit, Best Case, Pipeline, Omitted, ...;
-- '' where the CRM never said) is one of the facts, so the forecast can
-- break the pipeline down by it as of any date (GET /v1/forecast
-- by=forecast_category).
--
-- derived_events.forecast_category: the snapshot's category.
-- opportunity_state.forecast_categories[i]: the category as of
-- fact_times[i], parallel to the other fact arrays.
--
-- Rows written before this migration read '' (no category) until a replay
-- (commitflow replay) rewrites them.

{{define "forecast_category"}}forecast_category String DEFAULT ''{{end}}
{{define "forecast_categories"}}forecast_categories Array(String) DEFAULT arrayMap(a -> '', amounts){{end}}

{{if not (has_column "derived_events" "forecast_category")}}
ALTER TABLE {{table "derived_events"}} {{on_cluster}} ADD COLUMN {{template "forecast_category"}};
{{end}}
{{if not (has_distributed_column "derived_events" "forecast_category")}}
ALTER TABLE {{distributed_table "derived_events"}} {{on_cluster}} ADD COLUMN {{template "forecast_category"}};
{{end}}
{{if not (has_column "opportunity_state" "forecast_categories")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "forecast_categories"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "forecast_categories")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "forecast_categories"}};
{{end}}
