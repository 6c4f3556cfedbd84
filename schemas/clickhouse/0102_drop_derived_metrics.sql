-- The metrics read opportunity_state (0101) now; the narrow copy of
-- derived_events from 0100 and the materialized view that filled it only
-- cost a second write of every derived row.
DROP TABLE IF EXISTS {{table "derived_metrics_mv"}} {{on_cluster}};
DROP TABLE IF EXISTS {{table "derived_metrics"}} {{on_cluster}};
DROP TABLE IF EXISTS derived_metrics {{on_cluster}};
