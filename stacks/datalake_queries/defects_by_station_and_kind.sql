-- Defects by station and kind: non-conformances per station, defect code and source (VISION, MANUAL, TEST), with the distinct parts they concern.
--
-- Parameters, in this order: site, first day, last day (UTC days of detection, the table's dt
-- partitions), e.g. 'berlin', '2025-11-14', '2025-11-14'.
--
-- A report delivered twice, or revised, counts once: its latest revision.
WITH
reports AS (
    SELECT
        line,
        station,
        defect_code,
        source,
        part_id,
        row_number() OVER (PARTITION BY ncr_id ORDER BY revision DESC, issued_at DESC) AS nth
    FROM "${database}".nonconformances
    WHERE site = ?
        AND dt BETWEEN ? AND ?
)
SELECT
    line,
    station,
    defect_code AS kind,
    source,
    count(*) AS nonconformances,
    count(DISTINCT part_id) AS parts
FROM reports
WHERE nth = 1
GROUP BY line, station, defect_code, source
ORDER BY line, station, nonconformances DESC, kind, source
