-- A deal's state after its last event, in columns of their own: latest_at
-- is the time of its last fact, gain, step reached or close (1970 = none), the latest_*
-- columns the last element of the fact arrays (its facts now: amount,
-- currency, close date, probability, owner, team, segment, forecast
-- category, attributes), latest_gain_at its last commitment.gained (1970
-- = none) and reached_steps how many steps it has reached. As of a time
-- at or after latest_at, a deal's facts and state are these columns: an
-- answer as of now reads them instead of every fact of every deal
-- (internal/forecast: the open deals), and reads the arrays only of the
-- deals with an event after the time asked.
--
-- The columns are computed by ClickHouse from the arrays: on insert, and
-- for parts written before this migration when they are read, until a
-- merge writes them.

{{if not (has_column "opportunity_state" "latest_at")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_at DateTime DEFAULT greatest(greatest(
    if(empty(fact_times), toDateTime(0), arrayReduce('max', fact_times)),
    if(empty(gain_times), toDateTime(0), arrayReduce('max', gain_times))), greatest(
    if(empty(close_times), toDateTime(0), arrayReduce('max', close_times)),
    if(empty(reach), toDateTime(0), arrayReduce('max', reach))));
{{end}}
{{if not (has_column "opportunity_state" "latest_amount")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_amount Float64 DEFAULT amounts[-1];
{{end}}
{{if not (has_column "opportunity_state" "latest_currency")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_currency String DEFAULT currencies[-1];
{{end}}
{{if not (has_column "opportunity_state" "latest_close_date")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_close_date Date DEFAULT close_dates[-1];
{{end}}
{{if not (has_column "opportunity_state" "latest_probability")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_probability Float64 DEFAULT probabilities[-1];
{{end}}
{{if not (has_column "opportunity_state" "latest_owner")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_owner String DEFAULT owners[-1];
{{end}}
{{if not (has_column "opportunity_state" "latest_team")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_team String DEFAULT teams[-1];
{{end}}
{{if not (has_column "opportunity_state" "latest_segment")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_segment String DEFAULT segments[-1];
{{end}}
{{if not (has_column "opportunity_state" "latest_forecast_category")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_forecast_category String DEFAULT forecast_categories[-1];
{{end}}
{{if not (has_column "opportunity_state" "latest_attr_keys")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_attr_keys Array(String) DEFAULT attr_keys[-1];
{{end}}
{{if not (has_column "opportunity_state" "latest_attr_values")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_attr_values Array(String) DEFAULT attr_values[-1];
{{end}}
{{if not (has_column "opportunity_state" "latest_gain_at")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN latest_gain_at DateTime DEFAULT gain_times[-1];
{{end}}
{{if not (has_column "opportunity_state" "reached_steps")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN reached_steps UInt8 DEFAULT toUInt8(arrayCount(rt -> rt != toDateTime(0), reach));
{{end}}
