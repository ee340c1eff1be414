-- 0012_reporting_campaigns: day cells for the campaign report (API.md
-- section 4, services/reporting/campaigns.c), exact like the cells of
-- 0008 and kept by the same kind of statement triggers.
--
-- Every cell is keyed by the local day of its touch's selection (rewards:
-- of the reward) and the campaign id (key), in rpt_cells:
--   'camp_audience'   (selection day, campaign, k): selections of
--                     customers by the campaign (n), k = whole days since
--                     the same customer's previous selection by the same
--                     campaign (2147483647: none). A customer selected in
--                     the days d1 .. d2 - 1 has exactly one selection
--                     there whose previous one is before d1 (its first
--                     one there), so audience = the cells of the period
--                     with k > day - d1: distinct customers from cells.
--   'camp_sent'       touches sent (n) and their cost (net_fen);
--   'camp_delivered'  touches delivered, read or clicked (n, once each);
--   'camp_failed'     touches failed (n);
--   'camp_suppressed' touches suppressed (n), key = JSON [campaign,
--                     reason] (the reason of the touch's first one);
--   'camp_held_out'   touches held out (n) and hold-out conversions
--                     (orders): (held-out touch, paid order) pairs with
--                     the order within the attribution hours after the
--                     touch's selection;
--   'camp_conversions' paid orders credited to a touch of the campaign
--                     (n) and their amounts (net_fen): the customer's
--                     latest delivered touch before the order (any
--                     campaign), the order within the attribution hours
--                     after its delivery;
--   'camp_rewards'    (reward day, campaign): rewards paid with the
--                     campaign's id (net_fen).
-- A state counts once per touch, as the fact path's first row of a
-- (touch, state) does; every TouchChange of a touch carries its
-- campaign_id and selected_at (services/scheduler/change.c), so the
-- cells take them from any of its rows.
--
-- The invariant, as in 0008: cells = f(current facts) after every
-- statement. A touch's figures, a customer's audience selections and its
-- orders' credits depend on several rows, so the triggers settle the
-- customers of a statement set-based, with and without its rows: the
-- contribution of each customer computed from all of its facts minus
-- the one computed from its facts before the statement is added. "Before
-- the statement" is the rows of the customer with a seq below the least
-- seq of the statement's rows of that customer: a consumer applies a
-- partition's records in seq order, so a customer's new rows follow its
-- old ones (the bulk load of bench/pond-bench-reports.c inserts each
-- table once). No state table is kept: the facts are the state.
--
-- Conversions and hold-out conversions join two streams: orders come from
-- the events consumer, touch changes from the touches consumer, in two
-- transactions. Both triggers take rpt_partition_lock (0009) of their
-- partitions first, and only then read the other stream's facts, so the
-- later of two transactions of one partition sees the earlier one's
-- rows committed (a customer's events and touch changes are in the same
-- partition: hash(customer_key) mod P, DESIGN.md "Streams").
--
-- The attribution hours (POND_ATTRIBUTION_H) are a setting of
-- pond-reporting the triggers cannot see: they are stored beside the zone
-- (rpt_cells_zone.attribution_h); pond-reporting's start-up check calls
-- rpt_cells_check(POND_TZ, hours), which rebuilds the cells when either
-- differs, and a request uses the campaign cells only when both match.
-- The horizon (rpt_rollup_horizon) takes every touch change's time and
-- selection time; orders and rewards are in it already (0008).

ALTER TABLE rpt_cells_zone ADD COLUMN attribution_h int NOT NULL
    DEFAULT 72;

-- The touches' states, as the fact path reads them: one of the
-- delivered states is delivery, once per touch.
CREATE FUNCTION rpt_camp_delivered(state text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT state IN ('delivered', 'read', 'clicked')
$$;

-- rpt_camp_touch_cells is the contribution (unsummed) of the touches of
-- customers (p, ck) to the state and audience cells in zone tz, from
-- their touch changes with seq < cut (NULL: all).
CREATE FUNCTION rpt_camp_touch_cells(p int[], ck text[], cut bigint[],
    tz text)
RETURNS SETOF rpt_cells_delta LANGUAGE sql STABLE AS $$
    WITH u AS (SELECT DISTINCT * FROM unnest(p, ck, cut)
        AS u(partition, customer_key, cut)),
    tt AS (SELECT x.partition, x.customer_key, x.touch_id,
        min(x.campaign_id) AS campaign, min(x.selected_at) AS sel,
        bool_or(rpt_camp_delivered(x.state)) AS delivered,
        bool_or(x.state = 'failed') AS failed,
        bool_or(x.state = 'held_out') AS held,
        (array_agg(x.cost_fen ORDER BY x.seq)
            FILTER (WHERE x.state = 'sent'))[1] AS sent_cost,
        (array_agg(COALESCE(x.reason, '') ORDER BY x.seq)
            FILTER (WHERE x.state = 'suppressed'))[1] AS reason
        FROM u JOIN rpt_touch_changes x USING (partition, customer_key)
        WHERE u.cut IS NULL OR x.seq < u.cut
        GROUP BY 1, 2, 3 HAVING min(x.selected_at) IS NOT NULL),
    d AS (SELECT tt.*, (sel AT TIME ZONE tz)::date AS day,
        (lag(sel) OVER (PARTITION BY partition, customer_key, campaign
        ORDER BY sel, touch_id COLLATE "C") AT TIME ZONE tz)::date AS prev
        FROM tt)
    SELECT v.cell, d.day, v.key, v.k, d.partition, v.n, 0::bigint,
        v.orders, v.net FROM d, LATERAL (VALUES
        ('camp_audience', campaign, COALESCE(day - prev, 2147483647), true,
            1::bigint, 0::bigint, 0::bigint),
        ('camp_sent', campaign, 0, sent_cost IS NOT NULL, 1, 0, sent_cost),
        ('camp_delivered', campaign, 0, delivered, 1, 0, 0),
        ('camp_failed', campaign, 0, failed, 1, 0, 0),
        ('camp_held_out', campaign, 0, held, 1, 0, 0),
        ('camp_suppressed', json_build_array(campaign, reason)::text, 0,
            reason IS NOT NULL, 1, 0, 0))
        v(cell, key, k, counts, n, orders, net)
        WHERE v.counts
$$;

-- rpt_camp_order_cells is the contribution (unsummed) of the paid orders
-- of customers (p, ck) with seq >= ocut (NULL: all) to the conversion and
-- hold-out conversion cells, from their touch changes with seq < tcut
-- (NULL: all), with the attribution hours: each order is credited to the
-- latest delivered touch (first delivered time at or before it, ties by
-- touch_id) and converts when it is within the hours after that
-- delivery; each (held-out touch, order) pair with the order within the
-- hours after the touch's selection is a hold-out conversion. Every join
-- is a lookup of one customer's rows by index (the arrays' row counts are
-- unknown to the planner: a join of two computed sets would be planned
-- as a nested loop over both, quadratic on a bulk load).
CREATE FUNCTION rpt_camp_order_cells(p int[], ck text[], tcut bigint[],
    ocut bigint[], hours int, tz text)
RETURNS SETOF rpt_cells_delta LANGUAGE sql STABLE AS $$
    WITH o AS (SELECT o.partition, o.customer_key, o.occurred_at,
        o.amount_fen, u.tcut
        FROM (SELECT DISTINCT * FROM unnest(p, ck, tcut, ocut)
        AS u(partition, customer_key, tcut, ocut)) u
        JOIN rpt_orders o USING (partition, customer_key)
        WHERE o.paid AND (u.ocut IS NULL OR o.seq >= u.ocut)
        AND EXISTS (SELECT 1 FROM rpt_touch_changes x
        WHERE x.partition = u.partition AND x.customer_key = u.customer_key
        AND (u.tcut IS NULL OR x.seq < u.tcut)))
    SELECT 'camp_conversions', (c.sel AT TIME ZONE tz)::date, c.campaign,
        0, o.partition, 1::bigint, 0::bigint, 0::bigint, o.amount_fen
        FROM o, LATERAL (SELECT min(x.at) AS at,
        min(x.campaign_id) AS campaign, min(x.selected_at) AS sel
        FROM rpt_touch_changes x WHERE x.partition = o.partition
        AND x.customer_key = o.customer_key
        AND rpt_camp_delivered(x.state) AND x.at IS NOT NULL
        AND (o.tcut IS NULL OR x.seq < o.tcut)
        GROUP BY x.touch_id HAVING min(x.at) <= o.occurred_at
        ORDER BY min(x.at) DESC, x.touch_id COLLATE "C" DESC LIMIT 1) c
        WHERE c.sel IS NOT NULL
        AND o.occurred_at < c.at + hours * interval '1 hour'
    UNION ALL
    SELECT 'camp_held_out', (h.sel AT TIME ZONE tz)::date, h.campaign, 0,
        o.partition, 0, 0, 1, 0
        FROM o, LATERAL (SELECT min(x.campaign_id) AS campaign,
        min(x.selected_at) AS sel FROM rpt_touch_changes x
        WHERE x.partition = o.partition AND x.customer_key = o.customer_key
        AND x.state = 'held_out' AND (o.tcut IS NULL OR x.seq < o.tcut)
        GROUP BY x.touch_id) h
        WHERE o.occurred_at >= h.sel
        AND o.occurred_at < h.sel + hours * interval '1 hour'
$$;

-- rpt_camp_settle adds the summed deltas plus - minus to the cells.
CREATE FUNCTION rpt_camp_settle(plus rpt_cells_delta[],
    minus rpt_cells_delta[])
RETURNS void LANGUAGE sql AS $$
    SELECT rpt_cells_add(ARRAY(SELECT (cell, day, key, k, partition,
        sum(n), sum(incentive_fen), sum(orders),
        sum(net_fen))::rpt_cells_delta FROM (
        SELECT x.* FROM unnest(plus) x
        UNION ALL SELECT x.cell, x.day, x.key, x.k, x.partition, -x.n,
            -x.incentive_fen, -x.orders, -x.net_fen FROM unnest(minus) x)
        s GROUP BY cell, day, key, k, partition
        HAVING sum(n) <> 0 OR sum(incentive_fen) <> 0 OR sum(orders) <> 0
        OR sum(net_fen) <> 0))
$$;

-- A touches statement: its customers' state and audience cells, and the
-- credits of those with a new delivery or hold-out, with and without
-- the statement's rows; the horizon takes every time of the rows.
CREATE FUNCTION rpt_camp_touches_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
    hours int;
    p int[];
    ck text[];
    cut bigint[];
    cp int[];
    cck text[];
    ccut bigint[];
BEGIN
    PERFORM rpt_partition_lock(ARRAY(SELECT DISTINCT partition
        FROM new_rows));
    SELECT z.tz, z.attribution_h INTO tz, hours FROM rpt_cells_zone z;
    SELECT array_agg(partition), array_agg(customer_key), array_agg(s),
        array_agg(partition) FILTER (WHERE credits),
        array_agg(customer_key) FILTER (WHERE credits),
        array_agg(s) FILTER (WHERE credits)
        INTO p, ck, cut, cp, cck, ccut
        FROM (SELECT partition, customer_key, min(seq) AS s,
        bool_or(rpt_camp_delivered(state) OR state = 'held_out')
        AS credits FROM new_rows GROUP BY 1, 2) x;
    PERFORM rpt_camp_settle(ARRAY(SELECT rpt_camp_touch_cells(p, ck,
        NULL, tz)), ARRAY(SELECT rpt_camp_touch_cells(p, ck, cut, tz)));
    IF cp IS NOT NULL THEN
        PERFORM rpt_camp_settle(ARRAY(SELECT rpt_camp_order_cells(cp, cck,
            NULL, NULL, hours, tz)), ARRAY(SELECT rpt_camp_order_cells(cp,
            cck, ccut, NULL, hours, tz)));
    END IF;
    PERFORM rpt_rollup_seen(array_agg(x.p), array_agg(x.t)) FROM (SELECT
        partition, max(greatest(at, selected_at)) FROM new_rows GROUP BY 1)
        x(p, t);
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_camp_touches AFTER INSERT ON rpt_touch_changes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_camp_touches_trg();

-- An orders statement: the credits of its new paid orders (an order
-- changes no other order's credit); a rewards statement: the rewards
-- with a campaign id, on their own day.
CREATE FUNCTION rpt_camp_facts_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
    hours int;
BEGIN
    PERFORM rpt_partition_lock(ARRAY(SELECT DISTINCT partition
        FROM new_rows));
    SELECT z.tz, z.attribution_h INTO tz, hours FROM rpt_cells_zone z;
    IF TG_TABLE_NAME = 'rpt_orders' THEN
        PERFORM rpt_camp_settle(ARRAY(SELECT rpt_camp_order_cells(
            array_agg(partition), array_agg(customer_key), NULL,
            array_agg(s), hours, tz) FROM (SELECT partition, customer_key,
            min(seq) AS s FROM new_rows WHERE paid GROUP BY 1, 2) x),
            '{}');
    ELSE
        PERFORM rpt_camp_settle(ARRAY(SELECT ('camp_rewards',
            (occurred_at AT TIME ZONE tz)::date, campaign_id, 0, partition,
            0, 0, 0, amount_fen)::rpt_cells_delta FROM new_rows
            WHERE campaign_id IS NOT NULL), '{}');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_camp_orders AFTER INSERT ON rpt_orders
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_camp_facts_trg();
CREATE TRIGGER rpt_camp_rewards AFTER INSERT ON rpt_rewards
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_camp_facts_trg();

-- Every touch change's times reach the horizon on a rebuild too:
-- rpt_cells_seen_facts (called by rpt_cells_rebuild and
-- rpt_rollups_rebuild) is chained as 0010 does.
ALTER FUNCTION rpt_cells_seen_facts() RENAME TO rpt_cells_seen_facts_before_0012;
CREATE FUNCTION rpt_cells_seen_facts() RETURNS void LANGUAGE sql AS $$
    SELECT rpt_cells_seen_facts_before_0012();
    SELECT rpt_rollup_seen(array_agg(p), array_agg(t)) FROM (
        SELECT partition, max(greatest(at, selected_at))
        FROM rpt_touch_changes GROUP BY 1) x(p, t);
$$;

-- rpt_camp_rebuild computes the campaign cells from all the facts in
-- zone, with the stored attribution hours (the cells of other kinds are
-- not touched: the caller deleted them all first).
CREATE FUNCTION rpt_camp_rebuild(zone text) RETURNS void
LANGUAGE sql AS $$
    SELECT rpt_camp_settle(ARRAY(SELECT rpt_camp_touch_cells(
        array_agg(partition), array_agg(customer_key), NULL, zone)
        FROM (SELECT DISTINCT partition, customer_key
        FROM rpt_touch_changes) c), '{}');
    SELECT rpt_camp_settle(ARRAY(SELECT rpt_camp_order_cells(
        array_agg(partition), array_agg(customer_key), NULL, NULL,
        (SELECT attribution_h FROM rpt_cells_zone), zone)
        FROM (SELECT DISTINCT partition, customer_key
        FROM rpt_touch_changes) c), '{}');
    SELECT rpt_camp_settle(ARRAY(SELECT ('camp_rewards',
        (occurred_at AT TIME ZONE zone)::date, campaign_id, 0, partition,
        0, 0, 0, amount_fen)::rpt_cells_delta FROM rpt_rewards
        WHERE campaign_id IS NOT NULL), '{}');
$$;

-- The rebuild chains (the rules of 0008's callers): every cell, then the
-- campaign cells.
ALTER FUNCTION rpt_cells_rebuild(text) RENAME TO rpt_cells_rebuild_before_0012;
CREATE FUNCTION rpt_cells_rebuild(zone text) RETURNS void
LANGUAGE sql AS $$
    SELECT rpt_cells_rebuild_before_0012(zone);
    SELECT rpt_camp_rebuild(zone);
$$;


-- rpt_cells_check makes the cells those of zone and attribution hours
-- (pond-reporting's start): true when it had to rebuild them.
CREATE FUNCTION rpt_cells_check(zone text, hours int) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM rpt_cells_zone WHERE tz = zone
            AND attribution_h = hours) THEN
        RETURN false;
    END IF;
    PERFORM rpt_cells_lock(true);
    UPDATE rpt_cells_zone SET attribution_h = hours;
    PERFORM rpt_cells_rebuild(zone);
    RETURN true;
END $$;

SELECT rpt_cells_lock(true);
SELECT rpt_camp_rebuild(tz) FROM rpt_cells_zone;
SELECT rpt_cells_seen_facts();

-- The reporting role may use the new tables (0005_roles: rpt_%).
SELECT pond_grant_roles();
