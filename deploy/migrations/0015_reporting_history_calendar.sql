-- 0015_reporting_history_calendar: the history cells of 0014 by month and
-- by year too, so that a past as_of reads a bounded number of cells.
--
-- With day cells only, a request at as_of T summed every day cell before
-- T's day: one per day and value since the history began (~6,500 for
-- the portrait by region 180 days into the bench's history), 365 more a
-- year per value as the history grows. Each change now also
-- counts in the cell of its local month ('<kind>_m', day = the month's
-- first day) and of its local year ('<kind>_y', day = January 1st), k 0,
-- so a request sums, per value,
--   the year cells of the years before T's year,
--   the month cells of T's year before T's month,
--   the day cells of T's month before T's day,
--   the hour cells of T's day before T's hour,
-- at most (years of history) + 11 + 30 + 23 cells, and the changes of
-- the hour before T from the facts (REPORTING_HISTORY_CTE).
--
-- rpt_history_at is where a change counts, for the triggers and the
-- rebuild of 0014 alike (they call it by name), so replacing it is all
-- the keeping needs. The month and year cells of the history already
-- kept are the sums of its day cells.

CREATE OR REPLACE FUNCTION rpt_history_at(kind text, t timestamptz, tz text)
RETURNS TABLE (cell text, day date, k int) LANGUAGE sql STABLE AS $$
    SELECT x.cell, x.day, x.k FROM (SELECT (t AT TIME ZONE tz)::date AS
        day) d, LATERAL (VALUES
        (kind || '_y', date_trunc('year', d.day::timestamp)::date, 0),
        (kind || '_m', date_trunc('month', d.day::timestamp)::date, 0),
        (kind, d.day, 0),
        (kind || '_h', d.day, floor(extract(epoch FROM t -
        (d.day::timestamp AT TIME ZONE tz)) / 3600)::int)) x(cell, day, k)
$$;

SELECT rpt_cells_lock(true);
SELECT rpt_cells_add(ARRAY(SELECT (c.cell || x.suffix, x.day, c.key, 0,
    c.partition, sum(c.n)::bigint, 0::bigint, 0::bigint,
    0::bigint)::rpt_cells_delta FROM rpt_cells c,
    LATERAL (VALUES ('_y', date_trunc('year', c.day::timestamp)::date),
    ('_m', date_trunc('month', c.day::timestamp)::date)) x(suffix, day)
    WHERE c.cell IN ('stage_at', 'channel_at', 'region_at', 'industry_at')
    GROUP BY c.cell, x.suffix, x.day, c.key, c.partition));

SELECT pond_grant_roles();
