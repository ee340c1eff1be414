-- 0007_reporting_rollups: what makes the reports fast on a large history
-- (BENCHMARKS.md, "Report latency"): covering indexes on the period
-- columns, and rollups of the figures that count over every customer
-- "as of now" (lifecycle, the portrait by region, industry, channel and
-- lifecycle, lifetime repurchase).
--
-- The rollups are kept by triggers on the fact tables, so they change in
-- the very transaction of the consumer batch that changes the facts, and
-- they hold for every order of arrival: each trigger recomputes the
-- customer's value from the facts and moves one count from the value it
-- counted before (kept in rpt_rollup_customers) to the new one.
--
-- A rollup is the exact answer at as_of when every fact time it depends
-- on is before as_of: rpt_rollup_horizon keeps, per partition, the latest
-- such time. A report at an as_of at or before the horizon (the past, or
-- facts dated in the future) takes the exact slow path over the facts.

-- Periods: index-only range scans of the orders of a period, and of a
-- customer's orders from its acquisition on.
CREATE INDEX rpt_orders_time_cover ON rpt_orders (occurred_at)
    INCLUDE (partition, customer_key, paid, amount_fen);
DROP INDEX rpt_orders_time;
CREATE INDEX rpt_orders_customer_time_cover
    ON rpt_orders (partition, customer_key, occurred_at)
    INCLUDE (paid, amount_fen);
DROP INDEX rpt_orders_customer_time;
CREATE INDEX rpt_touch_changes_selected ON rpt_touch_changes (selected_at)
    WHERE selected_at IS NOT NULL;

-- Counts per partition (one consumer writes a partition at a time, so
-- two batches never wait on the same count): dim is 'stage' (every
-- customer, by lifecycle stage), 'buyers' ('1': has a paid order, '2':
-- has two), 'channel', 'region', 'industry' (customers with a value; the
-- rest have none).
CREATE TABLE rpt_rollup_counts (
    partition int    NOT NULL,
    dim       text   NOT NULL,
    value     text   NOT NULL,
    n         bigint NOT NULL,
    PRIMARY KEY (partition, dim, value)
);

CREATE TABLE rpt_rollup_horizon (
    partition int         PRIMARY KEY,
    latest    timestamptz NOT NULL
);

-- The region and industry each customer is counted under.
CREATE TABLE rpt_rollup_customers (
    partition    int  NOT NULL,
    customer_key text NOT NULL,
    region       text,
    industry     text,
    PRIMARY KEY (partition, customer_key)
);

-- rpt_rollup_add adds the deltas (partition, dim, value, delta) of one
-- statement, summed by the caller (a bulk statement of millions of rows
-- must not build a JSON array per row), one row update per count.
CREATE FUNCTION rpt_rollup_add(deltas jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO rpt_rollup_counts AS c
        SELECT p, d, v, sum(n) FROM jsonb_to_recordset(deltas)
        AS x(p int, d text, v text, n bigint)
        WHERE v IS NOT NULL GROUP BY 1, 2, 3 HAVING sum(n) <> 0
        ON CONFLICT (partition, dim, value) DO UPDATE SET n = c.n + EXCLUDED.n
$$;

-- The stage of a customer once every one of its milestones is past (the
-- STAGE_EXPR of services/reporting/cohorts.c at an as_of after them), and
-- its other counted values: (dim, value) pairs, value NULL for none.
CREATE FUNCTION rpt_rollup_dims(c rpt_customers)
RETURNS TABLE (d text, v text) LANGUAGE sql IMMUTABLE AS $$
    VALUES ('stage', CASE WHEN c.member_at IS NOT NULL THEN 'member'
        WHEN c.first_paid[3] IS NOT NULL THEN 'loyal'
        WHEN c.first_paid[2] IS NOT NULL THEN 'repurchase'
        WHEN c.first_paid[1] IS NOT NULL THEN 'first_purchase'
        ELSE 'potential' END),
        ('channel', CASE WHEN c.acquired_at IS NOT NULL THEN c.channel END),
        ('buyers', CASE WHEN c.first_paid[1] IS NOT NULL THEN '1' END),
        ('buyers2', CASE WHEN c.first_paid[2] IS NOT NULL THEN '2' END)
$$;

-- The latest time a customer's rollup values depend on.
CREATE FUNCTION rpt_rollup_time(c rpt_customers) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(c.first_event_at, c.member_at, c.acquired_at,
        c.first_paid[1], c.first_paid[2], c.first_paid[3])
$$;

CREATE FUNCTION rpt_rollup_seen(p int[], t timestamptz[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO rpt_rollup_horizon AS h
        SELECT x.p, max(x.t) FROM unnest(p, t) AS x(p, t)
        WHERE x.t IS NOT NULL GROUP BY 1
        ON CONFLICT (partition) DO UPDATE SET latest = EXCLUDED.latest
        WHERE h.latest < EXCLUDED.latest
$$;

-- Statement triggers with transition tables: one batch of the consumer
-- is one statement, so its changes to a count are summed into one update.
CREATE FUNCTION rpt_rollup_customers_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM rpt_rollup_add((SELECT jsonb_agg(jsonb_build_object('p',
            p, 'd', d, 'v', v, 'n', n)) FROM (SELECT c.partition AS p, x.d,
            x.v, count(*) AS n FROM new_rows c, rpt_rollup_dims(c) x
            WHERE x.v IS NOT NULL GROUP BY 1, 2, 3) s));
    ELSE
        PERFORM rpt_rollup_add((SELECT jsonb_agg(jsonb_build_object('p',
            p, 'd', d, 'v', v, 'n', n)) FROM (SELECT p, d, v, sum(n) AS n
            FROM (SELECT c.partition, x.d, x.v, 1 FROM new_rows c,
            rpt_rollup_dims(c) x UNION ALL SELECT c.partition, x.d, x.v, -1
            FROM old_rows c, rpt_rollup_dims(c) x) u(p, d, v, n)
            WHERE v IS NOT NULL GROUP BY 1, 2, 3 HAVING sum(n) <> 0) s));
    END IF;
    PERFORM rpt_rollup_seen((SELECT array_agg(partition) FROM new_rows),
        (SELECT array_agg(rpt_rollup_time(c)) FROM new_rows c));
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_rollup_customers_ins AFTER INSERT ON rpt_customers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_rollup_customers_trg();
CREATE TRIGGER rpt_rollup_customers_upd AFTER UPDATE ON rpt_customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_rollup_customers_trg();

-- The latest value of a field of a customer, as cohorts.c's LATEST_FACT.
CREATE FUNCTION rpt_rollup_latest(p int, k text, field text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN field = 'region' THEN (SELECT f.region
        FROM rpt_profile_facts f WHERE f.partition = p
        AND f.customer_key = k AND f.has_region
        ORDER BY f.occurred_at DESC, f.event_id DESC, f.publisher DESC
        LIMIT 1)
    ELSE (SELECT f.industry FROM rpt_profile_facts f WHERE f.partition = p
        AND f.customer_key = k AND f.has_industry
        ORDER BY f.occurred_at DESC, f.event_id DESC, f.publisher DESC
        LIMIT 1) END
$$;

-- A profile fact: each customer of the statement's facts gets its
-- region and industry again from all of its facts; its counts move from
-- what rpt_rollup_customers says was counted to that.
CREATE FUNCTION rpt_rollup_profile_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    done text;
BEGIN
    WITH v AS MATERIALIZED (SELECT k.partition, k.customer_key,
        rpt_rollup_latest(k.partition, k.customer_key, 'region') AS region,
        rpt_rollup_latest(k.partition, k.customer_key, 'industry')
        AS industry, c.region AS was_region, c.industry AS was_industry
        FROM (SELECT DISTINCT partition, customer_key FROM new_rows) k
        LEFT JOIN rpt_rollup_customers c USING (partition, customer_key)),
    u AS (INSERT INTO rpt_rollup_customers SELECT partition, customer_key,
        region, industry FROM v
        ON CONFLICT (partition, customer_key) DO UPDATE SET
        region = EXCLUDED.region, industry = EXCLUDED.industry)
    SELECT rpt_rollup_add((SELECT jsonb_agg(jsonb_build_object('p',
        p, 'd', d, 'v', v, 'n', n)) FROM (SELECT v.partition AS p, x.d, x.v,
        sum(x.n) AS n FROM v, LATERAL (VALUES ('region', region, 1),
        ('region', was_region, -1), ('industry', industry, 1),
        ('industry', was_industry, -1)) x(d, v, n) WHERE x.v IS NOT NULL
        GROUP BY 1, 2, 3 HAVING sum(x.n) <> 0) s))::text INTO done;
    PERFORM rpt_rollup_seen((SELECT array_agg(partition) FROM new_rows),
        (SELECT array_agg(occurred_at) FROM new_rows));
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_rollup_profile AFTER INSERT ON rpt_profile_facts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_rollup_profile_trg();

-- rpt_rollups_rebuild recomputes every rollup from the facts (the
-- migration of an existing install; a check in the tests).
CREATE FUNCTION rpt_rollups_rebuild() RETURNS void LANGUAGE sql AS $$
    DELETE FROM rpt_rollup_counts;
    DELETE FROM rpt_rollup_horizon;
    DELETE FROM rpt_rollup_customers;
    INSERT INTO rpt_rollup_customers SELECT partition, customer_key,
        rpt_rollup_latest(partition, customer_key, 'region'),
        rpt_rollup_latest(partition, customer_key, 'industry')
        FROM (SELECT DISTINCT partition, customer_key
        FROM rpt_profile_facts) f;
    INSERT INTO rpt_rollup_counts SELECT partition, d, v, count(*)
        FROM (SELECT c.partition, x.d, x.v FROM rpt_customers c,
        rpt_rollup_dims(c) x
        UNION ALL SELECT partition, 'region', region FROM rpt_rollup_customers
        UNION ALL SELECT partition, 'industry', industry
        FROM rpt_rollup_customers) s(partition, d, v)
        WHERE v IS NOT NULL GROUP BY 1, 2, 3;
    INSERT INTO rpt_rollup_horizon SELECT partition, max(t) FROM (
        SELECT partition, rpt_rollup_time(c) FROM rpt_customers c
        UNION ALL SELECT partition, occurred_at FROM rpt_profile_facts)
        s(partition, t) GROUP BY 1;
$$;

SELECT rpt_rollups_rebuild();

-- The reporting role may use the new tables (0005_roles: rpt_%).
SELECT pond_grant_roles();
