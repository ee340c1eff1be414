-- 0008_reporting_cells: cohort rollups by local day ("day cells") for the
-- money reports (acquisition, ltv, payback, guides), exact like the
-- rollups of 0007 and kept by the same kind of statement triggers.
--
-- A cell is keyed by partition (one consumer transaction writes one
-- partition, so two batches never lock the same cell), a local day in the
-- business time zone and a key:
--   'acq'     (acquisition day, channel): new customers (n) and the
--             incentive of their rewards, any time;
--   'revenue' (acquisition day, channel, k): the net revenue of the
--             customers' orders at or after their acquisition, by day
--             offset k = floor((order time - acquired_at) / 24 h) + 1;
--   'guide', 'store' (day, id): customers added on their acquisition day
--             (n), and the owned customers' orders at or after their
--             acquisition on the order's day (orders, net);
--   'funnel1' .. 'funnel3' (acquisition day, channel, k): customers by
--             the whole days of the largest of their first 1 .. 3 funnel
--             gaps (see rpt_cells_funnel below).
-- A customer with no acquisition counts nowhere. The channel is ''
-- where the acquisition has none, as the reports' cohort says.
--
-- The invariant: cells = f(current facts), after every statement,
-- whatever the order in which facts arrive. Three triggers keep the money
-- cells (the funnel's are settled per customer, below):
--   - rpt_orders: each new order adds its contribution under its
--     customer's acquisition as rpt_customers holds it now;
--   - rpt_rewards: each new reward adds its incentive the same way;
--   - rpt_customers: a customer whose acquisition (time, channel, guide,
--     store) the statement changed -- or set, for a new row -- has the
--     contributions of all its current orders and rewards subtracted
--     under the old acquisition and added under the new one.
-- That holds when every statement changes either the customers or the
-- orders and rewards, never both: then the customers trigger moves the
-- facts that the cells already count (each was added under the
-- acquisition current when it arrived, and moved at every change since),
-- and an order or reward trigger sees the acquisition that stays. So
-- services/reporting/apply.c writes a batch in two statements, the
-- customers first, then the facts; a bulk load that inserts orders
-- before their customers (bench/pond-bench-reports.c) is covered too
-- (the orders count nowhere until the customer row arrives and moves
-- them in). One statement doing both would count an order of a customer
-- whose acquisition it changed twice or not at all, depending on the
-- order in which PostgreSQL fires the statement triggers.
--
-- The zone: triggers do not know POND_TZ, so the cells' zone is stored in
-- rpt_cells_zone; pond-reporting compares it with POND_TZ at start and
-- calls rpt_cells_rebuild(POND_TZ) when they differ. A request uses the
-- cells only when the zone matches, from and to are local midnights in it,
-- and the horizon (rpt_rollup_horizon, now also every order and reward
-- time) is before as_of; anything else takes the exact path over the
-- facts. A rebuild and the triggers serialize on an advisory lock: the
-- triggers take it shared before they read the zone, the rebuild
-- exclusive, so no trigger adds deltas of the old zone to rebuilt cells.

CREATE TABLE rpt_cells_zone (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    tz  text    NOT NULL
);
INSERT INTO rpt_cells_zone (tz) VALUES ('Asia/Shanghai');

CREATE TABLE rpt_cells (
    cell          text   NOT NULL,
    day           date   NOT NULL,
    key           text   NOT NULL,
    k             int    NOT NULL,
    partition     int    NOT NULL,
    n             bigint NOT NULL,
    incentive_fen bigint NOT NULL,
    orders        bigint NOT NULL,
    net_fen       bigint NOT NULL,
    -- A request reads a period's cells of one kind by an index-only
    -- range scan of the key (no visit of the heap, whose rows of a day
    -- are scattered); the figures are in the key's INCLUDE for that.
    PRIMARY KEY (cell, day, key, k, partition)
        INCLUDE (n, incentive_fen, orders, net_fen)
);

CREATE TYPE rpt_cells_delta AS (
    cell          text,
    day           date,
    key           text,
    k             int,
    partition     int,
    n             bigint,
    incentive_fen bigint,
    orders        bigint,
    net_fen       bigint
);

-- rpt_cells_add adds deltas, summed per cell by the caller (a bulk
-- statement must not build an array of a row per fact).
CREATE FUNCTION rpt_cells_add(d rpt_cells_delta[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO rpt_cells AS c SELECT * FROM unnest(d) x
        WHERE x.n <> 0 OR x.incentive_fen <> 0 OR x.orders <> 0
        OR x.net_fen <> 0
        ON CONFLICT (cell, day, key, k, partition) DO UPDATE SET
        n = c.n + EXCLUDED.n,
        incentive_fen = c.incentive_fen + EXCLUDED.incentive_fen,
        orders = c.orders + EXCLUDED.orders,
        net_fen = c.net_fen + EXCLUDED.net_fen
$$;

-- rpt_cells_lock takes the cells' lock (shared by the triggers, exclusive
-- by a rebuild) and returns the zone; call it in its own statement, so
-- that the next one reads the facts and the zone after the lock.
CREATE FUNCTION rpt_cells_lock(exclusive boolean) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF exclusive THEN
        PERFORM pg_advisory_xact_lock(8008000001);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(8008000001);
    END IF;
    RETURN (SELECT tz FROM rpt_cells_zone);
END $$;

-- The contributions of one order of a customer acquired at acq
-- (channel ch, guide g, store st), net signed by the caller: none when
-- the order is before the acquisition.
CREATE FUNCTION rpt_cells_of_order(p int, acq timestamptz, ch text,
    g text, st text, ot timestamptz, net bigint, s int, tz text)
RETURNS SETOF rpt_cells_delta LANGUAGE sql STABLE AS $$
    SELECT x.cell, x.day, x.key, x.k, p, 0::bigint, 0::bigint,
        x.orders::bigint, net
        FROM (VALUES ('revenue', (acq AT TIME ZONE tz)::date,
        COALESCE(ch, ''), floor(extract(epoch FROM ot - acq) /
        86400)::int + 1, 0),
        ('guide', (ot AT TIME ZONE tz)::date, g, 0, s),
        ('store', (ot AT TIME ZONE tz)::date, st, 0, s))
        x(cell, day, key, k, orders)
        WHERE ot >= acq AND x.key IS NOT NULL
$$;

-- The contributions of a customer acquired at acq, with the sign s,
-- without its orders: one new customer (s) of the channel, guide and
-- store, and incentive inc (signed by the caller).
CREATE FUNCTION rpt_cells_of_customer(p int, acq timestamptz, ch text,
    g text, st text, s int, inc bigint, tz text)
RETURNS SETOF rpt_cells_delta LANGUAGE sql STABLE AS $$
    SELECT x.cell, (acq AT TIME ZONE tz)::date, x.key, 0, p, s::bigint,
        x.inc, 0::bigint, 0::bigint
        FROM (VALUES ('acq', COALESCE(ch, ''), inc), ('guide', g, 0),
        ('store', st, 0)) x(cell, key, inc)
        WHERE acq IS NOT NULL AND x.key IS NOT NULL
$$;

-- The funnel (API.md: added, then a first paid order within window_days
-- of the acquisition, a second within window_days of the first, a
-- member_joined within window_days of, and not before, the second). A
-- customer reaches step j + 1 iff the largest of its first j gaps is
-- under window_days x 24 h, that is, for a whole number of days, iff
-- floor(largest gap / 24 h) < window_days. Cells 'funnel1' .. 'funnel3'
-- count the customers by (acquisition day, channel, k = that floor).
-- rpt_cells_funnel keeps the buckets each customer is counted under; a
-- trigger recomputes them from the facts and moves the counts, so this
-- part holds for any order of statements.
CREATE TABLE rpt_cells_funnel (
    partition    int  NOT NULL,
    customer_key text NOT NULL,
    day          date NOT NULL,
    channel      text NOT NULL,
    b1           int,
    b2           int,
    b3           int,
    PRIMARY KEY (partition, customer_key)
);

-- rpt_cells_funnel_of is the buckets of a customer acquired at acq (NULL
-- for a step it cannot reach): its first two paid orders at or after the
-- acquisition, and its first member_joined at or after the second.
CREATE FUNCTION rpt_cells_funnel_of(p int, ck text, acq timestamptz)
RETURNS TABLE (b1 int, b2 int, b3 int) LANGUAGE sql STABLE AS $$
    SELECT floor(extract(epoch FROM o.t1 - acq) / 86400)::int,
        CASE WHEN o.t2 IS NOT NULL THEN floor(extract(epoch FROM
        greatest(o.t1 - acq, o.t2 - o.t1)) / 86400)::int END,
        CASE WHEN mm.m IS NOT NULL THEN floor(extract(epoch FROM
        greatest(o.t1 - acq, o.t2 - o.t1, mm.m - o.t2)) / 86400)::int END
        FROM (SELECT t[1] AS t1, t[2] AS t2 FROM (SELECT
        array_agg(occurred_at ORDER BY occurred_at) AS t FROM (SELECT
        y.occurred_at FROM rpt_orders y WHERE y.partition = p
        AND y.customer_key = ck AND y.paid AND y.occurred_at >= acq
        ORDER BY y.occurred_at LIMIT 2) z) a) o,
        LATERAL (SELECT min(mb.occurred_at) AS m FROM rpt_members mb
        WHERE mb.partition = p AND mb.customer_key = ck
        AND mb.occurred_at >= o.t2) mm
$$;

-- rpt_cells_funnel_settle recomputes the buckets of customers (p, ck)
-- and moves their funnel counts from what rpt_cells_funnel says was
-- counted to that.
CREATE FUNCTION rpt_cells_funnel_settle(p int[], ck text[], tz text)
RETURNS void LANGUAGE sql AS $$
    WITH u AS (SELECT DISTINCT * FROM unnest(p, ck)
        AS u(partition, customer_key)),
    now AS MATERIALIZED (SELECT u.partition, u.customer_key,
        (c.acquired_at AT TIME ZONE tz)::date AS day,
        COALESCE(c.channel, '') AS channel, f.b1, f.b2, f.b3
        FROM u JOIN rpt_customers c USING (partition, customer_key),
        rpt_cells_funnel_of(c.partition, c.customer_key, c.acquired_at) f
        WHERE c.acquired_at IS NOT NULL),
    was AS MATERIALIZED (SELECT s.* FROM u
        JOIN rpt_cells_funnel s USING (partition, customer_key)),
    keep AS (INSERT INTO rpt_cells_funnel SELECT * FROM now
        ON CONFLICT (partition, customer_key) DO UPDATE SET
        day = EXCLUDED.day, channel = EXCLUDED.channel, b1 = EXCLUDED.b1,
        b2 = EXCLUDED.b2, b3 = EXCLUDED.b3)
    SELECT rpt_cells_add(ARRAY(SELECT (x.cell, x.day, x.channel, x.b,
        x.partition, sum(x.n)::bigint, 0::bigint, 0::bigint,
        0::bigint)::rpt_cells_delta FROM (SELECT v.partition, v.day,
        v.channel, f.cell, f.b, v.s AS n FROM (SELECT *, 1 AS s FROM now
        UNION ALL SELECT *, -1 FROM was) v, LATERAL (VALUES
        ('funnel1', v.b1), ('funnel2', v.b2), ('funnel3', v.b3)) f(cell, b)
        WHERE f.b IS NOT NULL) x
        GROUP BY x.cell, x.day, x.channel, x.b, x.partition))
$$;

-- The orders, rewards and members feed the horizon: a request whose as_of
-- is not after every one of them takes the fact path.
CREATE FUNCTION rpt_cells_facts_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
BEGIN
    tz := rpt_cells_lock(false);
    IF TG_TABLE_NAME = 'rpt_orders' THEN
        PERFORM rpt_cells_add(ARRAY(SELECT (d.cell, d.day, d.key, d.k,
            d.partition, sum(d.n)::bigint, sum(d.incentive_fen)::bigint,
            sum(d.orders)::bigint, sum(d.net_fen)::bigint)::rpt_cells_delta FROM new_rows o
            JOIN rpt_customers c USING (partition, customer_key),
            rpt_cells_of_order(c.partition, c.acquired_at, c.channel,
            c.guide_id, c.store_id, o.occurred_at, CASE WHEN o.paid THEN
            o.amount_fen ELSE -o.amount_fen END, 1, tz) d
            GROUP BY d.cell, d.day, d.key, d.k, d.partition));
        PERFORM rpt_cells_funnel_settle(array_agg(partition),
            array_agg(customer_key), tz) FROM new_rows WHERE paid;
    ELSIF TG_TABLE_NAME = 'rpt_members' THEN
        PERFORM rpt_cells_funnel_settle(array_agg(partition),
            array_agg(customer_key), tz) FROM new_rows;
    ELSE
        PERFORM rpt_cells_add(ARRAY(SELECT (d.cell, d.day, d.key, d.k,
            d.partition, sum(d.n)::bigint, sum(d.incentive_fen)::bigint,
            sum(d.orders)::bigint, sum(d.net_fen)::bigint)::rpt_cells_delta FROM new_rows r
            JOIN rpt_customers c USING (partition, customer_key),
            rpt_cells_of_customer(c.partition, c.acquired_at, c.channel,
            c.guide_id, c.store_id, 0, r.amount_fen, tz) d
            GROUP BY d.cell, d.day, d.key, d.k, d.partition));
    END IF;
    PERFORM rpt_rollup_seen(array_agg(p), array_agg(t)) FROM (SELECT
        partition, max(occurred_at) FROM new_rows GROUP BY 1) x(p, t);
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_cells_orders AFTER INSERT ON rpt_orders
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_cells_facts_trg();
CREATE TRIGGER rpt_cells_rewards AFTER INSERT ON rpt_rewards
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_cells_facts_trg();
CREATE TRIGGER rpt_cells_members AFTER INSERT ON rpt_members
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_cells_facts_trg();

-- rpt_cells_move moves customers' whole contributions: m holds
-- (partition, customer_key, acquired_at, channel, guide_id, store_id)
-- with the sign s (-1 for the acquisition left, +1 for the one taken).
CREATE TYPE rpt_cells_mover AS (
    partition    int,
    customer_key text,
    acquired_at  timestamptz,
    channel      text,
    guide_id     text,
    store_id     text,
    s            int
);

CREATE FUNCTION rpt_cells_move(m rpt_cells_mover[], tz text) RETURNS void
LANGUAGE sql AS $$
    SELECT rpt_cells_add(ARRAY(SELECT (d.cell, d.day, d.key, d.k,
        d.partition, sum(d.n)::bigint, sum(d.incentive_fen)::bigint,
        sum(d.orders)::bigint, sum(d.net_fen)::bigint)::rpt_cells_delta FROM (
        SELECT x.* FROM unnest(m) u, rpt_cells_of_customer(u.partition,
            u.acquired_at, u.channel, u.guide_id, u.store_id, u.s,
            u.s * (SELECT COALESCE(sum(r.amount_fen), 0) FROM rpt_rewards r
            WHERE r.partition = u.partition
            AND r.customer_key = u.customer_key)::bigint, tz) x
        UNION ALL
        SELECT x.* FROM unnest(m) u JOIN rpt_orders o
            ON o.partition = u.partition AND o.customer_key = u.customer_key
            AND o.occurred_at >= u.acquired_at,
            rpt_cells_of_order(u.partition, u.acquired_at, u.channel,
            u.guide_id, u.store_id, o.occurred_at, u.s * CASE WHEN o.paid
            THEN o.amount_fen ELSE -o.amount_fen END, u.s, tz) x) d
        GROUP BY d.cell, d.day, d.key, d.k, d.partition))
$$;

CREATE FUNCTION rpt_cells_customers_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
BEGIN
    tz := rpt_cells_lock(false);
    IF TG_OP = 'INSERT' THEN
        PERFORM rpt_cells_move(ARRAY(SELECT (n.partition, n.customer_key,
            n.acquired_at, n.channel, n.guide_id, n.store_id,
            1)::rpt_cells_mover FROM new_rows n
            WHERE n.acquired_at IS NOT NULL), tz);
        PERFORM rpt_cells_funnel_settle(array_agg(partition),
            array_agg(customer_key), tz) FROM new_rows
            WHERE acquired_at IS NOT NULL;
    ELSE
        PERFORM rpt_cells_move(ARRAY(SELECT x.m FROM old_rows o
            JOIN new_rows n USING (partition, customer_key),
            LATERAL (VALUES ((o.partition, o.customer_key, o.acquired_at,
            o.channel, o.guide_id, o.store_id, -1)::rpt_cells_mover),
            ((n.partition, n.customer_key, n.acquired_at, n.channel,
            n.guide_id, n.store_id, 1)::rpt_cells_mover)) x(m)
            WHERE (o.acquired_at, o.channel, o.guide_id, o.store_id)
            IS DISTINCT FROM (n.acquired_at, n.channel, n.guide_id,
            n.store_id) AND (x.m).acquired_at IS NOT NULL), tz);
        PERFORM rpt_cells_funnel_settle(array_agg(o.partition),
            array_agg(o.customer_key), tz) FROM old_rows o
            JOIN new_rows n USING (partition, customer_key)
            WHERE (o.acquired_at, o.channel) IS DISTINCT FROM
            (n.acquired_at, n.channel);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_cells_customers_ins AFTER INSERT ON rpt_customers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_cells_customers_trg();
CREATE TRIGGER rpt_cells_customers_upd AFTER UPDATE ON rpt_customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_cells_customers_trg();

-- rpt_cells_seen_facts adds every order, reward and member time to the
-- horizon (the install that predates this migration; a rebuild).
CREATE FUNCTION rpt_cells_seen_facts() RETURNS void LANGUAGE sql AS $$
    SELECT rpt_rollup_seen(array_agg(p), array_agg(t)) FROM (
        SELECT partition, max(occurred_at) FROM rpt_orders GROUP BY 1
        UNION ALL
        SELECT partition, max(occurred_at) FROM rpt_rewards GROUP BY 1
        UNION ALL
        SELECT partition, max(occurred_at) FROM rpt_members GROUP BY 1)
        x(p, t)
$$;

-- rpt_cells_rebuild recomputes every cell from the facts in zone, set
-- by set (not through the triggers' functions, but for the funnel's
-- buckets, which it takes from rpt_cells_funnel_settle): pond-reporting's
-- start when POND_TZ is not the cells' zone, and a check in the tests.
CREATE FUNCTION rpt_cells_rebuild(zone text) RETURNS void
LANGUAGE sql AS $$
    SELECT rpt_cells_lock(true);
    UPDATE rpt_cells_zone SET tz = zone;
    DELETE FROM rpt_cells;
    WITH c AS (SELECT partition, customer_key, acquired_at,
        (acquired_at AT TIME ZONE zone)::date AS day,
        COALESCE(channel, '') AS channel, guide_id, store_id
        FROM rpt_customers WHERE acquired_at IS NOT NULL),
    o AS (SELECT c.*, (o.occurred_at AT TIME ZONE zone)::date AS oday,
        floor(extract(epoch FROM o.occurred_at - c.acquired_at) / 86400)::int
        + 1 AS k, CASE WHEN o.paid THEN o.amount_fen ELSE -o.amount_fen END
        AS net FROM c JOIN rpt_orders o USING (partition, customer_key)
        WHERE o.occurred_at >= c.acquired_at),
    r AS (SELECT partition, customer_key, sum(amount_fen) AS inc
        FROM rpt_rewards GROUP BY 1, 2)
    INSERT INTO rpt_cells SELECT cell, day, key, k, partition, sum(n),
        sum(inc), sum(orders), sum(net) FROM (
        SELECT 'acq', day, channel, 0, partition, 1, COALESCE(r.inc, 0), 0, 0
            FROM c LEFT JOIN r USING (partition, customer_key)
        UNION ALL SELECT 'guide', day, guide_id, 0, partition, 1, 0, 0, 0
            FROM c WHERE guide_id IS NOT NULL
        UNION ALL SELECT 'store', day, store_id, 0, partition, 1, 0, 0, 0
            FROM c WHERE store_id IS NOT NULL
        UNION ALL SELECT 'revenue', day, channel, k, partition, 0, 0, 0, net
            FROM o
        UNION ALL SELECT 'guide', oday, guide_id, 0, partition, 0, 0, 1, net
            FROM o WHERE guide_id IS NOT NULL
        UNION ALL SELECT 'store', oday, store_id, 0, partition, 0, 0, 1, net
            FROM o WHERE store_id IS NOT NULL)
        s(cell, day, key, k, partition, n, inc, orders, net)
        GROUP BY 1, 2, 3, 4, 5;
    DELETE FROM rpt_cells_funnel;
    SELECT rpt_cells_funnel_settle(array_agg(partition),
        array_agg(customer_key), zone) FROM rpt_customers
        WHERE acquired_at IS NOT NULL;
    SELECT rpt_cells_seen_facts();
$$;

-- rpt_rollups_rebuild keeps the horizon of every fact the rollups and
-- the cells depend on: 0007's recomputation, then the orders and rewards.
ALTER FUNCTION rpt_rollups_rebuild() RENAME TO rpt_rollups_rebuild_counts;
CREATE FUNCTION rpt_rollups_rebuild() RETURNS void LANGUAGE sql AS $$
    SELECT rpt_rollups_rebuild_counts();
    SELECT rpt_cells_seen_facts();
$$;

SELECT rpt_cells_rebuild('Asia/Shanghai');

-- The reporting role may use the new tables (0005_roles: rpt_%).
SELECT pond_grant_roles();
