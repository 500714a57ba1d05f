-- First-pass yield by inspection model version: per station and model version, the share of distinct parts whose first verdict was GOOD, as mes_domain.kpi.first_pass_yield.
--
-- Parameters, in this order: site, first day, last day (UTC days of the inspections, the
-- table's dt partitions), e.g. 'berlin', '2025-11-14', '2025-11-14'.
--
-- Definitions: ERROR results reached no verdict, so they neither pass nor fail a part (they
-- are counted apart); a part's first verdict is its earliest, and of two at one instant DEFECT
-- (first by name); each model version judges the parts it inspected, so a part failed by one
-- version and passed later by the next counts under both. NULL yield: no verdict at all.
WITH
verdicts AS (
    SELECT
        line,
        station,
        model_id,
        model_version,
        part_id,
        verdict,
        row_number() OVER (
            PARTITION BY line, station, model_id, model_version, part_id, verdict = 'ERROR'
            ORDER BY ts, verdict
        ) AS nth
    FROM "${database}".inspection_results
    WHERE site = ?
        AND dt BETWEEN ? AND ?
)
SELECT
    line,
    station,
    model_id,
    model_version,
    count_if(nth = 1 AND verdict <> 'ERROR') AS parts,
    count_if(nth = 1 AND verdict = 'GOOD') AS passed_first_time,
    count_if(verdict = 'ERROR') AS error_results,
    CAST(count_if(nth = 1 AND verdict = 'GOOD') AS double)
        / nullif(count_if(nth = 1 AND verdict <> 'ERROR'), 0) AS first_pass_yield
FROM verdicts
GROUP BY line, station, model_id, model_version
ORDER BY line, station, model_id, model_version
