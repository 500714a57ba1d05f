-- Hourly aggregates of one tag of one station: readings, min, max, mean, sample standard deviation and the last value per UTC hour.
--
-- Parameters, in this order: site, first day, last day (UTC days of the readings, the table's
-- dt partitions), line, station, tag, e.g. 'berlin', '2025-11-14', '2025-11-14',
-- 'body-line-1', 'press-01', 'ram_force'.
--
-- A reading delivered twice counts once. The statistics are of value_number (numbers, and
-- booleans as 1 and 0); a string tag has counts and its last text only. The last reading of
-- the hour is in last_number (a number, or a boolean as 1 or 0) and last_text (a string, or a
-- boolean as true or false; null for a number: the lake keeps a number once); a tag's
-- readings are of its one data type. Hours are UTC hours.
WITH
readings AS (
    SELECT DISTINCT ts, value, value_number, quality
    FROM "${database}".telemetry
    WHERE site = ?
        AND dt BETWEEN ? AND ?
        AND line = ?
        AND station = ?
        AND tag = ?
),
hourly AS (
    SELECT ts - ts % 3600000 AS hour_start_ms, ts, value, value_number, quality
    FROM readings
)
SELECT
    from_unixtime(hour_start_ms / 1e3) AS hour_start,
    hour_start_ms,
    count(*) AS readings,
    count_if(quality <> 'GOOD') AS readings_not_good,
    count(value_number) AS numeric_readings,
    min(value_number) AS min_value,
    max(value_number) AS max_value,
    avg(value_number) AS mean_value,
    stddev_samp(value_number) AS stddev_value,
    max_by(value_number, ts) AS last_number,
    max_by(value, ts) AS last_text
FROM hourly
GROUP BY hour_start_ms
ORDER BY hour_start_ms
