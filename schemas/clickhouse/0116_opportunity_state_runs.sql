-- The facts that seldom change, owner, team and segment, as runs: each
-- run of equal consecutive values of owners (teams, segments) once, in
-- owner_runs, with the time of the run's first fact in owner_run_times.
-- Since the facts are in time order, a deal's owner as of a time t is
-- owner_runs[arrayCount(x -> x <= t, owner_run_times)], the same as
-- owners[arrayCount(x -> x <= t, fact_times)], and reading it reads about
-- one value per deal instead of one per fact: an answer as of a past date
-- (the forecast's back-test, stalls, the deal lists, a breakdown) reads a
-- fifth of the strings (internal/readmodel: FactRun).
--
-- The columns are computed by ClickHouse from the arrays: on insert, and
-- for parts written before this migration when they are read, until a
-- merge writes them. The fact arrays are taken at the length of
-- fact_times (a row written without owners reads ''), and no lambda reads
-- a column it is not given (18.16 loses those).

{{if not (has_column "opportunity_state" "owner_runs")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN owner_runs Array(String) DEFAULT arrayFilter((v, p, i) -> i = 1 OR v != p, arrayResize(owners, length(fact_times)), arrayResize(arrayPushFront(arrayResize(owners, length(fact_times)), ''), length(fact_times)), arrayEnumerate(fact_times));
{{end}}
{{if not (has_column "opportunity_state" "owner_run_times")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN owner_run_times Array(DateTime) DEFAULT arrayFilter((t, v, p, i) -> i = 1 OR v != p, fact_times, arrayResize(owners, length(fact_times)), arrayResize(arrayPushFront(arrayResize(owners, length(fact_times)), ''), length(fact_times)), arrayEnumerate(fact_times));
{{end}}
{{if not (has_column "opportunity_state" "team_runs")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN team_runs Array(String) DEFAULT arrayFilter((v, p, i) -> i = 1 OR v != p, arrayResize(teams, length(fact_times)), arrayResize(arrayPushFront(arrayResize(teams, length(fact_times)), ''), length(fact_times)), arrayEnumerate(fact_times));
{{end}}
{{if not (has_column "opportunity_state" "team_run_times")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN team_run_times Array(DateTime) DEFAULT arrayFilter((t, v, p, i) -> i = 1 OR v != p, fact_times, arrayResize(teams, length(fact_times)), arrayResize(arrayPushFront(arrayResize(teams, length(fact_times)), ''), length(fact_times)), arrayEnumerate(fact_times));
{{end}}
{{if not (has_column "opportunity_state" "segment_runs")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN segment_runs Array(String) DEFAULT arrayFilter((v, p, i) -> i = 1 OR v != p, arrayResize(segments, length(fact_times)), arrayResize(arrayPushFront(arrayResize(segments, length(fact_times)), ''), length(fact_times)), arrayEnumerate(fact_times));
{{end}}
{{if not (has_column "opportunity_state" "segment_run_times")}}
ALTER TABLE {{table "opportunity_state"}} {{on_cluster}} ADD COLUMN segment_run_times Array(DateTime) DEFAULT arrayFilter((t, v, p, i) -> i = 1 OR v != p, fact_times, arrayResize(segments, length(fact_times)), arrayResize(arrayPushFront(arrayResize(segments, length(fact_times)), ''), length(fact_times)), arrayEnumerate(fact_times));
{{end}}
