-- 0014_reporting_history: lifecycle and the portrait (region, industry,
-- channel, lifecycle) at any as_of, from day cells of their changes.
--
-- The rollups of 0007 answer "now" (as_of after every fact); an as_of in
-- the past counted every customer from the facts (251 ms and 2.0 s at
-- 1 M customers). A customer's stage, channel, region and industry are
-- step functions of time, so the number of customers with value v at
-- as_of is the sum of the changes to v before as_of:
--   'stage_at'    +1 for the stage a customer enters at each of its
--                 milestones (first event, first three paid orders,
--                 member_joined), -1 for the stage it leaves;
--   'channel_at'  +1 for its channel at its acquisition;
--   'region_at', 'industry_at'
--                 +1 for the value its profile facts set at a time, -1
--                 for the value they replace;
-- keyed (kind, local day of the change, value) in the zone of the cells,
-- k 0, counted in n; and the same changes by hour, in the kinds
-- '<kind>_h' keyed (kind, local day, value, k = whole hours from the
-- day's local midnight to the change: 0 .. 23, 22 or 24 on a day of a
-- daylight-saving change). Stage changes cover the whole population (every
-- customer is in exactly one stage from its first event on), so the
-- population is their sum, and "no value" is the population less the
-- values. At a change time t the value before is the value at t (facts
-- strictly before t count, as for as_of) and the value after is the value
-- at t + 1 microsecond (the timestamps' resolution), so changes at one
-- instant net out and ties break as the reports break them.
--
-- A request at as_of T sums the cells of the local days before T's day,
-- and the hour cells of T's day before T's hour (which starts at M =
-- the day's midnight + whole hours), then adds, for the few customers
-- with a change in [M, T), their value at T less their value at M, from
-- the facts by index: exact for every T, with no horizon (a change at or
-- after T is in a day or hour the request does not read, or after T).
-- The hour cells keep that last part to an hour's changes: at 1 M
-- customers the changes of the 8 hours before 08:00 were 5,000 customers
-- and 60-180 ms.
--
-- Kept by statement triggers: on rpt_customers the changed rows' old
-- contributions out, the new ones in; on rpt_profile_facts, for the
-- statement's customers, the contributions of all their facts less those
-- of their facts without the statement's rows. Both are functions of one
-- table each, written by the one events consumer in separate statements,
-- so the cells equal a recomputation after every statement whatever the
-- arrival order.

-- The changes in [M, T) are found by index.
CREATE INDEX rpt_customers_third_order ON rpt_customers ((first_paid[3]));
CREATE INDEX rpt_customers_member ON rpt_customers (member_at);
CREATE INDEX rpt_profile_facts_time ON rpt_profile_facts (occurred_at)
    INCLUDE (partition, customer_key);

-- rpt_history_at is where a change at t counts, in zone tz: the cell of
-- its local day (kind, day, 0) and its hour cell (kind_h, day, whole hours
-- since that day's local midnight).
CREATE FUNCTION rpt_history_at(kind text, t timestamptz, tz text)
RETURNS TABLE (cell text, day date, k int) LANGUAGE sql STABLE AS $$
    SELECT x.cell, d.day, x.k FROM (SELECT (t AT TIME ZONE tz)::date AS
        day) d, LATERAL (VALUES (kind, 0), (kind || '_h', floor(extract(
        epoch FROM t - (d.day::timestamp AT TIME ZONE tz)) / 3600)::int))
        x(cell, k)
$$;

-- rpt_stage_before is the lifecycle stage of customer c at t (NULL
-- before its first event): the STAGE_EXPR of services/reporting/cohorts.c.
CREATE FUNCTION rpt_stage_before(c rpt_customers, t timestamptz)
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN NOT c.first_event_at < t THEN NULL
        WHEN c.member_at < t THEN 'member'
        WHEN c.first_paid[3] < t THEN 'loyal'
        WHEN c.first_paid[2] < t THEN 'repurchase'
        WHEN c.first_paid[1] < t THEN 'first_purchase'
        ELSE 'potential' END
$$;

-- The stage and channel changes of customer c, with the sign s.
CREATE FUNCTION rpt_cells_of_milestones(c rpt_customers, s int, tz text)
RETURNS SETOF rpt_cells_delta LANGUAGE sql STABLE AS $$
    SELECT a.cell, a.day, x.key, a.k, c.partition,
        (s * x.n)::bigint, 0::bigint, 0::bigint, 0::bigint
        FROM (SELECT DISTINCT t FROM unnest(ARRAY[c.first_event_at,
        c.member_at, c.first_paid[1], c.first_paid[2], c.first_paid[3]])
        AS u(t) WHERE t IS NOT NULL) m,
        LATERAL (VALUES (rpt_stage_before(c, m.t + interval '1 microsecond'),
        1), (rpt_stage_before(c, m.t), -1)) x(key, n),
        rpt_history_at('stage_at', m.t, tz) a
        WHERE x.key IS NOT NULL
    UNION ALL
    SELECT a.cell, a.day, c.channel, a.k, c.partition, s::bigint,
        0::bigint, 0::bigint, 0::bigint
        FROM rpt_history_at('channel_at', c.acquired_at, tz) a
        WHERE c.acquired_at IS NOT NULL AND c.channel IS NOT NULL
$$;

-- rpt_profile_values is each (dim, value) a profile fact sets.
CREATE FUNCTION rpt_profile_values(f rpt_profile_facts)
RETURNS TABLE (dim text, value text) LANGUAGE sql IMMUTABLE AS $$
    SELECT 'region_at', f.region WHERE f.has_region
    UNION ALL
    SELECT 'industry_at', f.industry WHERE f.has_industry
$$;

-- The region and industry changes of the customers (p, ck), from their
-- profile facts but those of partition xp with seq xseq, with the sign s:
-- at each instant the last fact (by event_id, then publisher) sets the
-- value; a change adds the value set and takes the one it replaces.
CREATE FUNCTION rpt_cells_of_profiles(p int[], ck text[], xp int[],
    xseq bigint[], s int, tz text)
RETURNS SETOF rpt_cells_delta LANGUAGE sql STABLE AS $$
    WITH u AS (SELECT DISTINCT * FROM unnest(p, ck)
        AS u(partition, customer_key)),
    x AS (SELECT DISTINCT * FROM unnest(xp, xseq) AS x(partition, seq)),
    v AS (SELECT DISTINCT ON (f.partition, f.customer_key, d.dim,
        f.occurred_at) f.partition, f.customer_key, d.dim, f.occurred_at,
        d.value FROM u JOIN rpt_profile_facts f USING (partition,
        customer_key), rpt_profile_values(f) d
        WHERE NOT EXISTS (SELECT 1 FROM x WHERE x.partition = f.partition
        AND x.seq = f.seq)
        ORDER BY f.partition, f.customer_key, d.dim, f.occurred_at,
        f.event_id DESC, f.publisher DESC),
    c AS (SELECT v.*, lag(value) OVER (PARTITION BY partition, customer_key,
        dim ORDER BY occurred_at) AS was FROM v)
    SELECT a.cell, a.day, y.key, a.k, c.partition, (s * y.n)::bigint,
        0::bigint, 0::bigint, 0::bigint
        FROM c, LATERAL (VALUES (c.value, 1), (c.was, -1)) y(key, n),
        rpt_history_at(c.dim, c.occurred_at, tz) a
        WHERE y.key IS NOT NULL AND c.value IS DISTINCT FROM c.was
$$;

CREATE FUNCTION rpt_history_customers_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
BEGIN
    tz := rpt_cells_lock(false);
    IF TG_OP = 'INSERT' THEN
        PERFORM rpt_cells_add(ARRAY(SELECT (d.cell, d.day, d.key, d.k,
            d.partition, sum(d.n)::bigint, 0::bigint, 0::bigint,
            0::bigint)::rpt_cells_delta FROM new_rows c,
            rpt_cells_of_milestones(c, 1, tz) d
            GROUP BY d.cell, d.day, d.key, d.k, d.partition));
    ELSE
        PERFORM rpt_cells_add(ARRAY(SELECT (d.cell, d.day, d.key, d.k,
            d.partition, sum(d.n)::bigint, 0::bigint, 0::bigint,
            0::bigint)::rpt_cells_delta FROM old_rows o
            JOIN new_rows n USING (partition, customer_key),
            LATERAL (SELECT * FROM rpt_cells_of_milestones(o, -1, tz)
            UNION ALL SELECT * FROM rpt_cells_of_milestones(n, 1, tz)) d
            WHERE (o.first_event_at, o.member_at, o.first_paid,
            o.acquired_at, o.channel) IS DISTINCT FROM (n.first_event_at,
            n.member_at, n.first_paid, n.acquired_at, n.channel)
            GROUP BY d.cell, d.day, d.key, d.k, d.partition));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_history_customers_ins AFTER INSERT ON rpt_customers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_history_customers_trg();
CREATE TRIGGER rpt_history_customers_upd AFTER UPDATE ON rpt_customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_history_customers_trg();

CREATE FUNCTION rpt_history_profiles_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
    p int[];
    ck text[];
    xp int[];
    xseq bigint[];
BEGIN
    tz := rpt_cells_lock(false);
    SELECT array_agg(partition), array_agg(customer_key), array_agg(seq)
        INTO xp, ck, xseq FROM new_rows;
    p := xp;
    PERFORM rpt_cells_add(ARRAY(SELECT (d.cell, d.day, d.key, d.k,
        d.partition, sum(d.n)::bigint, 0::bigint, 0::bigint,
        0::bigint)::rpt_cells_delta FROM (
        SELECT * FROM rpt_cells_of_profiles(p, ck, '{}', '{}', 1, tz)
        UNION ALL
        SELECT * FROM rpt_cells_of_profiles(p, ck, xp, xseq, -1, tz)) d
        GROUP BY d.cell, d.day, d.key, d.k, d.partition));
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_history_profiles AFTER INSERT ON rpt_profile_facts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_history_profiles_trg();

-- The rebuild (a change of zone, and the tests' check) recomputes these
-- kinds after the earlier kinds' rebuild, which empties rpt_cells.
CREATE FUNCTION rpt_history_rebuild(zone text) RETURNS void
LANGUAGE sql AS $$
    SELECT rpt_cells_add(ARRAY(SELECT (d.cell, d.day, d.key, d.k,
        d.partition, sum(d.n)::bigint, 0::bigint, 0::bigint,
        0::bigint)::rpt_cells_delta FROM rpt_customers c,
        rpt_cells_of_milestones(c, 1, zone) d
        GROUP BY d.cell, d.day, d.key, d.k, d.partition));
    SELECT rpt_cells_add(ARRAY(SELECT (d.cell, d.day, d.key, d.k,
        d.partition, sum(d.n)::bigint, 0::bigint, 0::bigint,
        0::bigint)::rpt_cells_delta FROM (SELECT array_agg(partition)
        AS p, array_agg(customer_key) AS ck FROM (SELECT DISTINCT
        partition, customer_key FROM rpt_profile_facts) f) a,
        rpt_cells_of_profiles(a.p, a.ck, '{}', '{}', 1, zone) d
        GROUP BY d.cell, d.day, d.key, d.k, d.partition));
$$;

ALTER FUNCTION rpt_cells_rebuild(text) RENAME TO rpt_cells_rebuild_before_0014;
CREATE FUNCTION rpt_cells_rebuild(zone text) RETURNS void
LANGUAGE sql AS $$
    SELECT rpt_cells_rebuild_before_0014(zone);
    SELECT rpt_history_rebuild(zone);
$$;

SELECT rpt_history_rebuild((SELECT tz FROM rpt_cells_zone));

SELECT pond_grant_roles();
