-- 0010_reporting_weeks: retention from week cells.
--
-- Retention (API.md sections 4 and 6) counts, per local Monday week of
-- acquisition, the customers with a paid order or an interaction at or
-- after their acquisition in the k-th local week after it. Asked over
-- whole local days, it reads:
--   'acq'       (0008: acquisition day, channel): the cohort sizes;
--   'retention' (acquisition day, channel, k): the customers of that day
--               and channel active in week k = (local day of the activity
--               - Monday of the acquisition's local week) / 7, each
--               customer once per k, for k < 104 (the most weeks the
--               request accepts, services/reporting/params.c).
-- A request sums the cells of its days by the Monday of their week.
--
-- A customer is counted once per week however many orders and
-- interactions it has there, so rpt_retention_weeks keeps, per customer,
-- the weeks it is counted in (bit k of a bit(104)) and the acquisition
-- day and channel it is counted under. The invariant, after every
-- statement and for any order of arrival: the bits are the weeks of the
-- customer's current facts under its current acquisition, and the cells
-- count the bits.
--   - rpt_orders (paid) and rpt_activity: a new fact at or after its
--     customer's acquisition sets the bit of its week; only the bits not
--     set before add +1 to a cell. apply.c inserts a batch's orders and
--     interactions in one statement, so both tables' triggers fire after
--     it, each with its own rows: the second finds the weeks the first
--     set and adds only the rest (asking "was there activity in this week
--     before" would count such a week twice, or not at all).
--   - rpt_customers: a customer whose acquisition (time or channel) the
--     statement set or moved has its bits subtracted under the day and
--     channel they were counted under, then its bits recomputed from all
--     its facts under the new acquisition (whose week, and so every k,
--     may differ) and added. As for the money cells of 0008, a statement
--     changes the customers or the facts, never both (apply.c's two
--     statements); a bulk load that inserts the facts before their
--     customers is covered (the facts count nowhere until the customer
--     row arrives).
-- Every activity time reaches the horizon (rpt_rollup_seen), so a request
-- at an as_of before an interaction takes the exact fact path; order
-- times already do (0008).

CREATE TABLE rpt_retention_weeks (
    partition    int       NOT NULL,
    customer_key text      NOT NULL,
    day          date      NOT NULL,
    channel      text      NOT NULL,
    weeks        bit(104)  NOT NULL,
    PRIMARY KEY (partition, customer_key)
);

-- rpt_retention_week is the Monday of the local week (zone tz) of an
-- acquisition at acq; rpt_retention_k the index k of the week of an
-- activity at t, counted from that Monday.
CREATE FUNCTION rpt_retention_week(acq timestamptz, tz text) RETURNS date
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc('week', acq AT TIME ZONE tz)::date
$$;

CREATE FUNCTION rpt_retention_k(week date, t timestamptz, tz text)
RETURNS int LANGUAGE sql IMMUTABLE AS $$
    SELECT ((t AT TIME ZONE tz)::date - week) / 7
$$;

-- The new facts' weeks: the statement's rows of the transition table
-- new_rows that pass the filter %s (refunds are not activity), at or
-- after their customer's acquisition, and among them the weeks whose bit
-- was not set; the bits are set and the new weeks counted. $1 is the
-- cells' zone. Run by EXECUTE: the filter names a column of rpt_orders
-- that rpt_activity does not have.
CREATE FUNCTION rpt_retention_facts_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
BEGIN
    tz := rpt_cells_lock(false);
    EXECUTE format($q$
    WITH x AS MATERIALIZED (SELECT DISTINCT n.partition, n.customer_key,
        (c.acquired_at AT TIME ZONE $1)::date AS day,
        COALESCE(c.channel, '') AS channel,
        rpt_retention_k(rpt_retention_week(c.acquired_at, $1),
        n.occurred_at, $1) AS k
        FROM new_rows n JOIN rpt_customers c USING (partition, customer_key)
        WHERE %s AND n.occurred_at >= c.acquired_at),
    y AS MATERIALIZED (SELECT x.* FROM x LEFT JOIN rpt_retention_weeks s
        USING (partition, customer_key) WHERE x.k < 104
        AND (s.weeks IS NULL OR get_bit(s.weeks, x.k) = 0)),
    keep AS (INSERT INTO rpt_retention_weeks AS s SELECT partition,
        customer_key, day, channel, bit_or(set_bit(B'0'::bit(104), k, 1))
        FROM y GROUP BY 1, 2, 3, 4
        ON CONFLICT (partition, customer_key) DO UPDATE SET
        weeks = s.weeks | EXCLUDED.weeks)
    SELECT rpt_cells_add(ARRAY(SELECT ('retention', day, channel, k,
        partition, count(*), 0, 0, 0)::rpt_cells_delta FROM y
        GROUP BY day, channel, k, partition))$q$, TG_ARGV[0]) USING tz;
    PERFORM rpt_rollup_seen(array_agg(p), array_agg(t)) FROM (SELECT
        partition, max(occurred_at) FROM new_rows GROUP BY 1) x(p, t);
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_retention_orders AFTER INSERT ON rpt_orders
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_retention_facts_trg('n.paid');
CREATE TRIGGER rpt_retention_activity AFTER INSERT ON rpt_activity
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_retention_facts_trg('true');

-- rpt_retention_hits is the weeks k < 104 of customers (p, ck) from all
-- their paid orders and interactions at or after the acquisition that
-- rpt_customers holds now, with its day and channel (none without one).
-- Per customer, by its index ranges (a WHERE in a UNION ALL branch would
-- keep the planner from pushing the customer into it), its weeks made
-- distinct there (not in one sort of every fact of a bulk load).
CREATE FUNCTION rpt_retention_hits(p int[], ck text[], tz text)
RETURNS TABLE (partition int, customer_key text, day date, channel text,
    k int)
LANGUAGE sql STABLE AS $$
    WITH c AS MATERIALIZED (SELECT c.partition, c.customer_key,
        c.acquired_at, (c.acquired_at AT TIME ZONE tz)::date AS day,
        COALESCE(c.channel, '') AS channel,
        rpt_retention_week(c.acquired_at, tz) AS week
        FROM (SELECT DISTINCT * FROM unnest(p, ck)) u(partition,
        customer_key) JOIN rpt_customers c USING (partition, customer_key)
        WHERE c.acquired_at IS NOT NULL)
    SELECT c.partition, c.customer_key, c.day, c.channel, w.k FROM c,
        LATERAL (SELECT DISTINCT rpt_retention_k(c.week, f.occurred_at, tz)
        AS k FROM (SELECT o.occurred_at FROM rpt_orders o
        WHERE o.partition = c.partition AND o.customer_key = c.customer_key
        AND o.paid AND o.occurred_at >= c.acquired_at
        UNION ALL SELECT a.occurred_at FROM rpt_activity a
        WHERE a.partition = c.partition AND a.customer_key = c.customer_key
        AND a.occurred_at >= c.acquired_at) f) w
        WHERE w.k < 104
$$;

-- rpt_retention_settle moves the customers (p, ck): their bits leave the
-- day and channel they were counted under, and are recomputed from all
-- their paid orders and interactions under the acquisition rpt_customers
-- holds now (none without one).
CREATE FUNCTION rpt_retention_settle(p int[], ck text[], tz text)
RETURNS void LANGUAGE sql AS $$
    SELECT rpt_cells_add(ARRAY(SELECT ('retention', s.day, s.channel, b.k,
        s.partition, -count(*), 0, 0, 0)::rpt_cells_delta
        FROM unnest(p, ck) u(partition, customer_key)
        JOIN rpt_retention_weeks s USING (partition, customer_key),
        generate_series(0, 103) b(k) WHERE get_bit(s.weeks, b.k) = 1
        GROUP BY s.day, s.channel, b.k, s.partition));
    DELETE FROM rpt_retention_weeks s USING unnest(p, ck)
        u(partition, customer_key) WHERE s.partition = u.partition
        AND s.customer_key = u.customer_key;
    WITH now AS MATERIALIZED (SELECT * FROM rpt_retention_hits(p, ck, tz)),
    keep AS (INSERT INTO rpt_retention_weeks SELECT partition,
        customer_key, day, channel, bit_or(set_bit(B'0'::bit(104), k, 1))
        FROM now GROUP BY 1, 2, 3, 4)
    SELECT rpt_cells_add(ARRAY(SELECT ('retention', day, channel, k,
        partition, count(*), 0, 0, 0)::rpt_cells_delta FROM now
        GROUP BY day, channel, k, partition));
$$;

CREATE FUNCTION rpt_retention_customers_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
BEGIN
    tz := rpt_cells_lock(false);
    IF TG_OP = 'INSERT' THEN
        PERFORM rpt_retention_settle(array_agg(partition),
            array_agg(customer_key), tz) FROM new_rows
            WHERE acquired_at IS NOT NULL;
    ELSE
        PERFORM rpt_retention_settle(array_agg(o.partition),
            array_agg(o.customer_key), tz) FROM old_rows o
            JOIN new_rows n USING (partition, customer_key)
            WHERE (o.acquired_at, o.channel) IS DISTINCT FROM
            (n.acquired_at, n.channel);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_retention_customers_ins AFTER INSERT ON rpt_customers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_retention_customers_trg();
CREATE TRIGGER rpt_retention_customers_upd AFTER UPDATE ON rpt_customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_retention_customers_trg();

-- rpt_retention_rebuild recomputes the retention cells and every
-- customer's weeks from the facts in zone: each customer is moved from
-- nothing to its weeks.
CREATE FUNCTION rpt_retention_rebuild(zone text) RETURNS void
LANGUAGE sql AS $$
    SELECT rpt_cells_lock(true);
    DELETE FROM rpt_cells WHERE cell = 'retention';
    DELETE FROM rpt_retention_weeks;
    SELECT rpt_retention_settle(array_agg(partition),
        array_agg(customer_key), zone) FROM rpt_customers
        WHERE acquired_at IS NOT NULL;
$$;

-- Chained (0008 and later migrations): the rebuild of every cell in a
-- zone ends with the retention's, and the facts' horizon includes the
-- interactions (rpt_cells_rebuild and rpt_rollups_rebuild call it).
ALTER FUNCTION rpt_cells_rebuild(text) RENAME TO rpt_cells_rebuild_before_0010;
CREATE FUNCTION rpt_cells_rebuild(zone text) RETURNS void
LANGUAGE sql AS $$
    SELECT rpt_cells_rebuild_before_0010(zone);
    SELECT rpt_retention_rebuild(zone);
$$;

ALTER FUNCTION rpt_cells_seen_facts() RENAME TO rpt_cells_seen_facts_before_0010;
CREATE FUNCTION rpt_cells_seen_facts() RETURNS void LANGUAGE sql AS $$
    SELECT rpt_cells_seen_facts_before_0010();
    SELECT rpt_rollup_seen(array_agg(p), array_agg(t)) FROM (
        SELECT partition, max(occurred_at) FROM rpt_activity GROUP BY 1)
        x(p, t);
$$;

SELECT rpt_retention_rebuild((SELECT tz FROM rpt_cells_zone));
SELECT rpt_cells_seen_facts();

-- The reporting role may use the new table (0005_roles: rpt_%).
SELECT pond_grant_roles();
