-- Free breakdown attributes (region, office, product line, account
-- sector, deal type, ...: event.Opportunity.Attributes), sorted by key.
--
-- derived_events.attr_keys[i], attr_values[i]: the snapshot's attributes.
-- opportunity_state.attr_keys[j], attr_values[j]: those of fact snapshot j,
-- parallel to fact_times; the value of KEY as of D is
-- attr_values[fi][indexOf(attr_keys[fi], KEY)] with fi the fact index
-- (indexOf gives 0 when absent, and element 0 is '').
--
-- Rows written before this migration have none.

{{define "attr_keys"}}attr_keys Array(String){{end}}
{{define "attr_values"}}attr_values Array(String){{end}}
{{define "state_attr_keys"}}attr_keys Array(Array(String)) DEFAULT arrayMap(t -> emptyArrayString(), fact_times){{end}}
{{define "state_attr_values"}}attr_values Array(Array(String)) DEFAULT arrayMap(t -> emptyArrayString(), fact_times){{end}}

{{if not (has_column "derived_events" "attr_keys")}}
ALTER TABLE {{table "derived_events"}} {{on_cluster}} ADD COLUMN {{template "attr_keys"}};
{{end}}
{{if not (has_distributed_column "derived_events" "attr_keys")}}
ALTER TABLE {{distributed_table "derived_events"}} {{on_cluster}} ADD COLUMN {{template "attr_keys"}};
{{end}}
{{if not (has_column "derived_events" "attr_values")}}
ALTER TABLE {{table "derived_events"}} {{on_cluster}} ADD COLUMN {{template "attr_values"}};
{{end}}
{{if not (has_distributed_column "derived_events" "attr_values")}}
ALTER TABLE {{distributed_table "derived_events"}} {{on_cluster}} ADD COLUMN {{template "attr_values"}};
{{end}}
{{if not (has_column "opportunity_state" "attr_keys")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "state_attr_keys"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "attr_keys")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "state_attr_keys"}};
{{end}}
{{if not (has_column "opportunity_state" "attr_values")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "state_attr_values"}};
{{end}}
{{if not (has_distributed_column "opportunity_state" "attr_values")}}
ALTER TABLE {{distributed_table "opportunity_state"}} {{on_cluster}} ADD COLUMN {{template "state_attr_values"}};
{{end}}
