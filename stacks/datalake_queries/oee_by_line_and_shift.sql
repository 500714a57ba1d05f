-- OEE by line and by shift (ISO 22400-2, the definitions of mes_domain.kpi): availability, performance, quality and OEE of each line per shift, of each line over the shifts, and of the site per shift.
--
-- Parameters, in this order (Athena's execution parameters are positional and allowed only in
-- WHERE clauses, so the three values are asked once per table read):
--    1-3  site, first shift day, last shift day, e.g. 'berlin', '2025-11-13', '2025-11-14'
--    4-6  the same three again (state changes)
--    7-9  the same three again (part counts)
-- A shift day is the site-local date a shift starts on (the night shift of the 13th ends on
-- the 14th); shift times are wall-clock times in the site's time zone, as the plant config says.
--
-- Definitions, as mes_domain/kpi.py and the KPI calculator compute them:
-- - a state lasts until the station's next change; the one in force at a shift's start is the
--   last change before it, looked for from a week before the first shift day (an older one
--   leaves the time unknown: a station reports its state at least weekly); exact duplicates
--   count once, and of two states at one instant the one last by name wins;
-- - RUNNING is production time; IDLE, UNPLANNED_STOP, SETUP and OFFLINE are availability losses
--   (a shift is inside the shift calendar, so OFFLINE in it is a loss; outside every shift
--   nothing counts); planned busy time = production time + losses, so PLANNED_STOP and unknown
--   time are left out;
-- - a part count belongs to the shift with start <= ts < end; exact duplicates count once;
-- - a line or the site adds up its stations' times and parts, never averages ratios; its
--   ideal time is the sum of ideal cycle time x produced over its stations;
-- - availability = production / planned busy time; performance = ideal time / production
--   time; quality = good / produced; OEE = their product. No planned time: availability,
--   performance and OEE are NULL; no production time: performance NULL; no parts: quality
--   NULL. A performance above 1 (an ideal cycle time that is too long) is reported as it is.
WITH
stations (site, line, station, ideal_cycle_time_s) AS (
    VALUES
        ${stations}
),
shift_calendar (site, time_zone, shift, start_clock, end_clock, iso_weekday) AS (
    VALUES
        ${shift_calendar}
),
calendar_days AS (
    SELECT CAST(day AS date) AS day
    FROM UNNEST(
        sequence(current_date - INTERVAL '3650' DAY, current_date + INTERVAL '1' DAY, INTERVAL '1' DAY)
    ) AS days (day)
),
shifts AS (
    SELECT
        c.site,
        c.shift,
        d.day AS shift_day,
        CAST(to_unixtime(CAST(
            concat(CAST(d.day AS varchar), ' ', c.start_clock, ':00 ', c.time_zone)
            AS timestamp(3) with time zone)) * 1000 AS bigint) AS start_ms,
        CAST(to_unixtime(CAST(
            concat(
                CAST(CAST(IF(c.end_clock <= c.start_clock, d.day + INTERVAL '1' DAY, d.day) AS date) AS varchar),
                ' ', c.end_clock, ':00 ', c.time_zone)
            AS timestamp(3) with time zone)) * 1000 AS bigint) AS end_ms
    FROM shift_calendar AS c
    CROSS JOIN calendar_days AS d
    WHERE c.iso_weekday = day_of_week(d.day)
        AND c.site = ?
        AND d.day BETWEEN date(?) AND date(?)
),
state_changes AS (
    SELECT
        line,
        station,
        ts,
        state,
        row_number() OVER (
            PARTITION BY line, station, ts
            ORDER BY state DESC, coalesce(reason_code, '') DESC
        ) AS nth_at_ts
    FROM "${database}".state_changes
    WHERE site = ?
        -- A week back: the state in force at Monday's first shift was often set on Friday.
        AND dt BETWEEN CAST(CAST(date(?) - INTERVAL '7' DAY AS date) AS varchar)
            AND CAST(CAST(date(?) + INTERVAL '2' DAY AS date) AS varchar)
),
state_spans AS (
    SELECT
        line,
        station,
        state,
        ts AS begin_ms,
        lead(ts) OVER (PARTITION BY line, station ORDER BY ts) AS next_ms
    FROM state_changes
    WHERE nth_at_ts = 1
),
spans_in_shifts AS (
    SELECT
        w.shift_day,
        w.shift,
        s.line,
        s.station,
        s.state,
        least(coalesce(s.next_ms, w.end_ms), w.end_ms) - greatest(s.begin_ms, w.start_ms)
            AS overlap_ms
    FROM shifts AS w
    JOIN state_spans AS s
        ON s.begin_ms < w.end_ms AND coalesce(s.next_ms, w.end_ms) > w.start_ms
),
station_times AS (
    SELECT
        shift_day,
        shift,
        line,
        station,
        sum(IF(state = 'RUNNING', overlap_ms, 0)) AS running_ms,
        sum(IF(state IN ('IDLE', 'UNPLANNED_STOP', 'SETUP', 'OFFLINE'), overlap_ms, 0)) AS loss_ms
    FROM spans_in_shifts
    GROUP BY shift_day, shift, line, station
),
part_counts AS (
    SELECT DISTINCT line, station, ts, good, bad, order_id
    FROM "${database}".part_counts
    WHERE site = ?
        AND dt BETWEEN CAST(CAST(date(?) - INTERVAL '1' DAY AS date) AS varchar)
            AND CAST(CAST(date(?) + INTERVAL '2' DAY AS date) AS varchar)
),
station_counts AS (
    SELECT
        w.shift_day,
        w.shift,
        c.line,
        c.station,
        sum(c.good) AS good,
        sum(c.good + c.bad) AS produced
    FROM shifts AS w
    JOIN part_counts AS c ON c.ts >= w.start_ms AND c.ts < w.end_ms
    GROUP BY w.shift_day, w.shift, c.line, c.station
),
station_shifts AS (
    SELECT
        w.site,
        w.shift_day,
        w.shift,
        w.start_ms,
        w.end_ms,
        st.line,
        st.station,
        coalesce(t.running_ms, 0) AS running_ms,
        coalesce(t.loss_ms, 0) AS loss_ms,
        coalesce(c.produced, 0) AS produced,
        coalesce(c.good, 0) AS good,
        st.ideal_cycle_time_s * coalesce(c.produced, 0) AS ideal_time_s
    FROM shifts AS w
    JOIN stations AS st ON st.site = w.site
    LEFT JOIN station_times AS t
        ON t.shift_day = w.shift_day AND t.shift = w.shift
        AND t.line = st.line AND t.station = st.station
    LEFT JOIN station_counts AS c
        ON c.shift_day = w.shift_day AND c.shift = w.shift
        AND c.line = st.line AND c.station = st.station
),
totals AS (
    SELECT
        CASE
            WHEN grouping(line) = 0 AND grouping(shift) = 0 THEN 'line_shift'
            WHEN grouping(line) = 0 THEN 'line'
            ELSE 'site_shift'
        END AS scope,
        site,
        line,
        shift_day,
        shift,
        min(start_ms) AS start_ms,
        max(end_ms) AS end_ms,
        sum(running_ms + loss_ms) / 1e3 AS planned_busy_time_s,
        sum(running_ms) / 1e3 AS actual_production_time_s,
        sum(produced) AS produced_quantity,
        sum(good) AS good_quantity,
        sum(ideal_time_s) AS ideal_time_s
    FROM station_shifts
    GROUP BY GROUPING SETS ((site, line, shift_day, shift), (site, line), (site, shift_day, shift))
)
SELECT
    scope,
    site,
    line,
    shift_day,
    shift,
    from_unixtime(start_ms / 1e3) AS shift_start,
    from_unixtime(end_ms / 1e3) AS shift_end,
    start_ms,
    end_ms,
    actual_production_time_s / nullif(planned_busy_time_s, 0) AS availability,
    ideal_time_s / nullif(actual_production_time_s, 0) AS performance,
    CAST(good_quantity AS double) / nullif(produced_quantity, 0) AS quality,
    (actual_production_time_s / nullif(planned_busy_time_s, 0))
        * (ideal_time_s / nullif(actual_production_time_s, 0))
        * (CAST(good_quantity AS double) / nullif(produced_quantity, 0)) AS oee,
    planned_busy_time_s,
    actual_production_time_s,
    produced_quantity,
    good_quantity,
    ideal_time_s
FROM totals
ORDER BY scope, line, start_ms
