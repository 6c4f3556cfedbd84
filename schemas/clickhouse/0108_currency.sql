-- Amounts carry their currency (ISO 4217, upper case; '' where the CRM
-- never said). Different currencies are never added: the metrics sum per
-- currency, or convert with the operator's rate table (internal/fx).
--
-- derived_events.currency: the currency of the snapshot's amount.
-- opportunity_state.currencies[i]: the currency of amounts[i], parallel to
-- the other fact arrays; miss_currencies[i] that of miss_amounts[i].
--
-- Rows written before this migration read '' (currency unknown) until a
-- replay (commitflow replay) rewrites them.

{{define "currency"}}currency String DEFAULT ''{{end}}
{{define "currencies"}}currencies Array(String) DEFAULT arrayMap(a -> '', amounts){{end}}
{{define "miss_currencies"}}miss_currencies Array(String) DEFAULT arrayMap(a -> '', miss_amounts){{end}}

{{if not (has_column "derived_events" "currency")}}
ALTER TABLE {{table "derived_events"}} {{on_cluster}} ADD COLUMN {{template "currency"}};
{{end}}
{{if not (has_distributed_column "derived_events" "currency")}}
ALTER TABLE {{distributed_table "derived_events"}} {{on_cluster}} ADD COLUMN {{template "currency"}};
{{end}}
{{if not (has_column "opportunity_state" "currencies")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "currencies"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "currencies")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "currencies"}};
{{end}}
{{if not (has_column "opportunity_state" "miss_currencies")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_currencies"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "miss_currencies")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "miss_currencies"}};
{{end}}
