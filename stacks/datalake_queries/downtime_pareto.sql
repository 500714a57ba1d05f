-- Downtime Pareto of a line by cause (the reason code, or the state without one): availability-loss time within the line's shifts, longest first, with each cause's share and the cumulative share.
--
-- Parameters, in this order (positional, WHERE-only, so asked once per table read):
--    1-4  site, line, first shift day, last shift day, e.g. 'berlin', 'body-line-1',
--         '2025-11-14', '2025-11-14' (site-local days a shift starts on)
--    5-8  the same four again (state changes)
--
-- Definitions, as mes_domain.kpi.downtime_pareto: the losses are IDLE, UNPLANNED_STOP and SETUP
-- (OFFLINE and PLANNED_STOP are not availability losses of a cause); a state lasts until the
-- station's next change (looked for from a week before the first day), cut to the shifts;
-- exact duplicates count once and of two states at one instant the last by name wins; a
-- stoppage is one occurrence however many shifts it spans; ties in time are ordered by cause.
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
        st.site,
        st.line,
        st.station,
        CAST(to_unixtime(CAST(
            concat(CAST(d.day AS varchar), ' ', c.start_clock, ':00 ', c.time_zone)
            AS timestamp(3) with time zone)) * 1000 AS bigint) AS start_ms,
        CAST(to_unixtime(CAST(
            concat(
                CAST(CAST(IF(c.end_clock <= c.start_clock, d.day + INTERVAL '1' DAY, d.day) AS date) AS varchar),
                ' ', c.end_clock, ':00 ', c.time_zone)
            AS timestamp(3) with time zone)) * 1000 AS bigint) AS end_ms
    FROM shift_calendar AS c
    JOIN stations AS st ON st.site = c.site
    CROSS JOIN calendar_days AS d
    WHERE c.iso_weekday = day_of_week(d.day)
        AND c.site = ?
        AND st.line = ?
        AND d.day BETWEEN date(?) AND date(?)
),
state_changes AS (
    SELECT
        station,
        ts,
        state,
        reason_code,
        row_number() OVER (
            PARTITION BY station, ts
            ORDER BY state DESC, coalesce(reason_code, '') DESC
        ) AS nth_at_ts
    FROM "${database}".state_changes
    WHERE site = ?
        AND line = ?
        -- A week back: the state in force at Monday's first shift was often set on Friday.
        AND dt BETWEEN CAST(CAST(date(?) - INTERVAL '7' DAY AS date) AS varchar)
            AND CAST(CAST(date(?) + INTERVAL '2' DAY AS date) AS varchar)
),
state_spans AS (
    SELECT
        station,
        state,
        reason_code,
        ts AS begin_ms,
        lead(ts) OVER (PARTITION BY station ORDER BY ts) AS next_ms
    FROM state_changes
    WHERE nth_at_ts = 1
),
stoppages AS (
    SELECT
        w.site,
        w.line,
        s.station,
        s.begin_ms,
        coalesce(s.reason_code, s.state) AS cause,
        sum(least(coalesce(s.next_ms, w.end_ms), w.end_ms) - greatest(s.begin_ms, w.start_ms))
            AS lost_ms
    FROM shifts AS w
    JOIN state_spans AS s
        ON s.station = w.station
        AND s.begin_ms < w.end_ms AND coalesce(s.next_ms, w.end_ms) > w.start_ms
    WHERE s.state IN ('IDLE', 'UNPLANNED_STOP', 'SETUP')
    GROUP BY w.site, w.line, s.station, s.begin_ms, coalesce(s.reason_code, s.state)
),
causes AS (
    SELECT
        site,
        line,
        cause,
        sum(lost_ms) / 1e3 AS seconds,
        count(*) AS occurrences
    FROM stoppages
    GROUP BY site, line, cause
)
SELECT
    site,
    line,
    row_number() OVER (ORDER BY seconds DESC, cause) AS rank,
    cause,
    seconds,
    occurrences,
    seconds / sum(seconds) OVER () AS share,
    sum(seconds) OVER (ORDER BY seconds DESC, cause ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        / sum(seconds) OVER () AS cumulative_share
FROM causes
ORDER BY rank
