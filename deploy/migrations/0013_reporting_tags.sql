-- 0013_reporting_tags: the portrait by tag, and with tag=T, from rollups
-- (BENCHMARKS.md, "Report latency": 5.4 s and 3.5 s at 1 M customers, a
-- lookup of every customer's tag changes).
--
-- Two tables, kept by statement triggers like the rollups of 0007:
--   rpt_rollup_tag_state: per customer and tag, its latest change by
--     (changed_at, seq) -- the one that decides whether the tag is on,
--     whatever the order in which the changes arrive. A tag that went off
--     keeps its row: an earlier add that arrives after the removal must
--     lose to it;
--   rpt_rollup_tags (tag, dim, value, partition, n): over the population
--     (the customers with an rpt_customers row) with their tags on now,
--       (T, 'tagged', '')  customers with tag T on;
--       (T, 'tag', T2)     ... with T and T2 on (T2 = T included);
--       (T, d, v)          ... with T on and value v of d, for d in region,
--                          industry (rpt_rollup_customers), channel and
--                          stage (rpt_rollup_dims), NULL values not kept;
--     and for tag '' (no tag is '': apply.c skips an empty tag), over every
--     customer: ('', 'tagged', '') customers with any tag on, ('', 'tag',
--     T2) customers with T2 on. A portrait with tag=T and any group_by is
--     a sum over the rows (T, dim, *) of the 16 partitions; by tag without
--     tag=T over ('', 'tag', *); the null row is what 'tagged' leaves.
--
-- The invariant: rpt_rollup_tags = f(rpt_customers, rpt_rollup_customers,
-- rpt_rollup_tag_state) after every statement. Each of the three changes
-- in a statement of its own (apply.c writes an events batch as the
-- customers, then the facts, whose profile facts change
-- rpt_rollup_customers in 0007's trigger), and a trigger moves a
-- customer's whole contribution, rpt_rollup_tags_of(tags on, region,
-- industry, channel, stage), from the old value of the table it watches
-- to the new one, the other two read as they are:
--   rpt_tag_changes (the tag_changes consumer): the state takes the later
--     change per tag; a customer whose set of tags on changed, and which
--     is in the population, moves from its old set to its new one;
--   rpt_customers (the events consumer): a new customer comes in with its
--     tags; a changed stage or channel moves its tags' counts;
--   rpt_rollup_customers (0007's profile trigger): a changed region or
--     industry does the same.
-- The tags come from one consumer and the customers from another, in two
-- transactions that do not see each other's rows. Each trigger takes
-- rpt_partition_lock (0009) of its partitions before it reads the other
-- stream's tables, in a statement of its own, so the two spans from
-- trigger to commit never overlap and the later one sees the earlier one
-- committed: a tag that arrives before its customer's first event is
-- counted by the customer's insert, a customer that arrives first by the
-- tag's change, never both, never neither. Both streams carry the same
-- partition for a customer (FNV-1a of the customer key mod P; pond-tagging
-- writes a tag change in the partition of the event that caused it). The
-- events side takes the lock only for a statement that moves a count (a
-- new customer, or a changed stage, channel, region or industry), so the
-- many batches that change none of them pay nothing.
--
-- The horizon (rpt_rollup_horizon) takes every tag change's changed_at: a
-- request whose as_of is not after it takes the fact path.

CREATE TABLE rpt_rollup_tag_state (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    tag          text        NOT NULL,
    changed_at   timestamptz NOT NULL,
    seq          bigint      NOT NULL,
    added        boolean     NOT NULL,
    PRIMARY KEY (partition, customer_key, tag)
);

CREATE TABLE rpt_rollup_tags (
    tag       text   NOT NULL,
    dim       text   NOT NULL,
    value     text   NOT NULL,
    partition int    NOT NULL,
    n         bigint NOT NULL,
    PRIMARY KEY (tag, dim, value, partition)
);

-- rpt_rollup_tags_of is the contribution (sign s) of a customer of
-- partition p with the tags on (NULL or empty: none, no contribution) and
-- the values region, industry, channel and stage (NULL: none). Inlined
-- into the triggers' set-based statements (a LATERAL in FROM).
CREATE FUNCTION rpt_rollup_tags_of(p int, tags text[], region text,
    industry text, channel text, stage text, s int)
RETURNS SETOF rpt_rollup_tags LANGUAGE sql IMMUTABLE AS $$
    SELECT f.tag, x.dim, x.value, p, s::bigint
        FROM unnest('{""}'::text[] || tags) f(tag),
        LATERAL (SELECT 'tagged', '' UNION ALL
            SELECT 'tag', t FROM unnest(tags) t UNION ALL
            SELECT y.d, y.v FROM (VALUES ('region', region),
            ('industry', industry), ('channel', channel),
            ('stage', stage)) y(d, v)
            WHERE f.tag <> '' AND y.v IS NOT NULL) x(dim, value)
        WHERE cardinality(tags) > 0
$$;

-- rpt_rollup_tags_add adds deltas, summed per count by the caller (one
-- row update per count a statement changes).
CREATE FUNCTION rpt_rollup_tags_add(d rpt_rollup_tags[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO rpt_rollup_tags AS c SELECT * FROM unnest(d) x
        WHERE x.n <> 0
        ON CONFLICT (tag, dim, value, partition) DO UPDATE SET
        n = c.n + EXCLUDED.n
$$;

-- rpt_rollup_tags_on is a customer's tags on now, in order (NULL: none).
CREATE FUNCTION rpt_rollup_tags_on(p int, k text)
RETURNS TABLE (tags text[]) LANGUAGE sql STABLE AS $$
    SELECT array_agg(s.tag ORDER BY s.tag) FROM rpt_rollup_tag_state s
        WHERE s.partition = p AND s.customer_key = k AND s.added
$$;

-- rpt_rollup_tags_values is the channel and stage a customer row is
-- counted under (0007's rpt_rollup_dims).
CREATE FUNCTION rpt_rollup_tags_values(c rpt_customers)
RETURNS TABLE (channel text, stage text) LANGUAGE sql IMMUTABLE AS $$
    SELECT max(v) FILTER (WHERE d = 'channel'),
        max(v) FILTER (WHERE d = 'stage') FROM rpt_rollup_dims(c)
$$;

-- A batch of tag changes: the state takes each tag's latest change; a
-- customer of the population whose set of tags on changed moves from the
-- old set to the new one under its values as they are.
CREATE FUNCTION rpt_rollup_tags_changes_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    done text;
BEGIN
    PERFORM rpt_partition_lock(ARRAY(SELECT DISTINCT partition
        FROM new_rows));
    WITH l AS (SELECT DISTINCT ON (partition, customer_key, tag)
        partition, customer_key, tag, changed_at, seq, added FROM new_rows
        ORDER BY partition, customer_key, tag, changed_at DESC, seq DESC),
    was AS MATERIALIZED (SELECT s.* FROM rpt_rollup_tag_state s
        WHERE (s.partition, s.customer_key) IN (SELECT partition,
        customer_key FROM l)),
    later AS MATERIALIZED (SELECT l.* FROM l LEFT JOIN was w
        USING (partition, customer_key, tag) WHERE w.tag IS NULL
        OR (l.changed_at, l.seq) > (w.changed_at, w.seq)),
    keep AS (INSERT INTO rpt_rollup_tag_state SELECT * FROM later
        ON CONFLICT (partition, customer_key, tag) DO UPDATE SET
        changed_at = EXCLUDED.changed_at, seq = EXCLUDED.seq,
        added = EXCLUDED.added),
    sets AS (SELECT partition, customer_key,
        array_agg(tag ORDER BY tag) FILTER (WHERE w.added) AS was_on,
        array_agg(tag ORDER BY tag) FILTER (WHERE COALESCE(n.added,
        w.added)) AS now_on
        FROM was w FULL JOIN later n USING (partition, customer_key, tag)
        GROUP BY 1, 2)
    SELECT rpt_rollup_tags_add(ARRAY(SELECT (x.tag, x.dim, x.value,
        x.partition, sum(x.n))::rpt_rollup_tags
        FROM sets st JOIN rpt_customers c USING (partition, customer_key)
        LEFT JOIN rpt_rollup_customers r USING (partition, customer_key),
        rpt_rollup_tags_values(c) v,
        LATERAL (VALUES (st.was_on, -1), (st.now_on, 1)) m(tags, s),
        rpt_rollup_tags_of(c.partition, m.tags, r.region, r.industry,
        v.channel, v.stage, m.s) x
        WHERE st.was_on IS DISTINCT FROM st.now_on
        GROUP BY x.tag, x.dim, x.value, x.partition
        HAVING sum(x.n) <> 0))::text INTO done;
    PERFORM rpt_rollup_seen(array_agg(p), array_agg(t)) FROM (SELECT
        partition, max(changed_at) FROM new_rows GROUP BY 1) x(p, t);
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_rollup_tags_changes AFTER INSERT ON rpt_tag_changes
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_rollup_tags_changes_trg();

-- A new customer comes into the population with its tags on; a customer
-- whose channel or stage changed moves its tags' counts. A statement that
-- does neither (most batches of events: a later order, an interaction)
-- takes no lock and reads nothing more.
CREATE FUNCTION rpt_rollup_tags_customers_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        -- An upsert of customers that all exist fires this with none.
        IF NOT EXISTS (SELECT 1 FROM new_rows) THEN
            RETURN NULL;
        END IF;
        PERFORM rpt_partition_lock(ARRAY(SELECT DISTINCT partition
            FROM new_rows));
        PERFORM rpt_rollup_tags_add(ARRAY(SELECT (x.tag, x.dim, x.value,
            x.partition, sum(x.n))::rpt_rollup_tags FROM new_rows c
            LEFT JOIN rpt_rollup_customers r USING (partition, customer_key),
            rpt_rollup_tags_on(c.partition, c.customer_key) t,
            rpt_rollup_tags_values(c) v,
            rpt_rollup_tags_of(c.partition, t.tags, r.region, r.industry,
            v.channel, v.stage, 1) x
            GROUP BY x.tag, x.dim, x.value, x.partition));
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM old_rows o
        JOIN new_rows n USING (partition, customer_key),
        rpt_rollup_tags_values(o) ov, rpt_rollup_tags_values(n) nv
        WHERE (ov.channel, ov.stage) IS DISTINCT FROM
        (nv.channel, nv.stage)) THEN
        RETURN NULL;
    END IF;
    PERFORM rpt_partition_lock(ARRAY(SELECT DISTINCT partition
        FROM new_rows));
    PERFORM rpt_rollup_tags_add(ARRAY(SELECT (x.tag, x.dim, x.value,
        x.partition, sum(x.n))::rpt_rollup_tags FROM old_rows o
        JOIN new_rows n USING (partition, customer_key)
        LEFT JOIN rpt_rollup_customers r USING (partition, customer_key),
        rpt_rollup_tags_values(o) ov, rpt_rollup_tags_values(n) nv,
        rpt_rollup_tags_on(n.partition, n.customer_key) t,
        LATERAL (VALUES (ov.channel, ov.stage, -1),
        (nv.channel, nv.stage, 1)) m(channel, stage, s),
        rpt_rollup_tags_of(n.partition, t.tags, r.region, r.industry,
        m.channel, m.stage, m.s) x
        WHERE (ov.channel, ov.stage) IS DISTINCT FROM (nv.channel, nv.stage)
        GROUP BY x.tag, x.dim, x.value, x.partition
        HAVING sum(x.n) <> 0));
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_rollup_tags_customers_ins AFTER INSERT ON rpt_customers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_rollup_tags_customers_trg();
CREATE TRIGGER rpt_rollup_tags_customers_upd AFTER UPDATE ON rpt_customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_rollup_tags_customers_trg();

-- A customer whose region or industry changed (0007's profile trigger
-- upserts rpt_rollup_customers) moves its tags' counts, if it is in the
-- population. The changed rows are few (a batch's profile updates) and
-- pass through one array, as (partition, customer_key, region, industry)
-- with a sign.
CREATE TYPE rpt_rollup_tags_place AS (
    partition    int,
    customer_key text,
    region       text,
    industry     text,
    s            int
);

CREATE FUNCTION rpt_rollup_tags_places_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    m rpt_rollup_tags_place[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        m := ARRAY(SELECT x.m FROM new_rows n,
            LATERAL (VALUES ((n.partition, n.customer_key, NULL, NULL,
            -1)::rpt_rollup_tags_place), ((n.partition, n.customer_key,
            n.region, n.industry, 1)::rpt_rollup_tags_place)) x(m)
            WHERE n.region IS NOT NULL OR n.industry IS NOT NULL);
    ELSE
        m := ARRAY(SELECT x.m FROM old_rows o
            JOIN new_rows n USING (partition, customer_key),
            LATERAL (VALUES ((o.partition, o.customer_key, o.region,
            o.industry, -1)::rpt_rollup_tags_place), ((n.partition,
            n.customer_key, n.region, n.industry,
            1)::rpt_rollup_tags_place)) x(m)
            WHERE (o.region, o.industry) IS DISTINCT FROM
            (n.region, n.industry));
    END IF;
    IF cardinality(m) = 0 THEN
        RETURN NULL;
    END IF;
    PERFORM rpt_partition_lock(ARRAY(SELECT DISTINCT u.partition
        FROM unnest(m) u));
    PERFORM rpt_rollup_tags_add(ARRAY(SELECT (x.tag, x.dim, x.value,
        x.partition, sum(x.n))::rpt_rollup_tags FROM unnest(m) u
        JOIN rpt_customers c USING (partition, customer_key),
        rpt_rollup_tags_on(u.partition, u.customer_key) t,
        rpt_rollup_tags_values(c) v,
        rpt_rollup_tags_of(u.partition, t.tags, u.region, u.industry,
        v.channel, v.stage, u.s) x
        GROUP BY x.tag, x.dim, x.value, x.partition
        HAVING sum(x.n) <> 0));
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_rollup_tags_places_ins AFTER INSERT
    ON rpt_rollup_customers REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_rollup_tags_places_trg();
CREATE TRIGGER rpt_rollup_tags_places_upd AFTER UPDATE
    ON rpt_rollup_customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_rollup_tags_places_trg();

-- rpt_rollup_tags_rebuild recomputes the state and the counts from the
-- facts in one set-based pass (not through the triggers' functions): the
-- migration of an existing install, and a check in the tests.
CREATE FUNCTION rpt_rollup_tags_rebuild() RETURNS void LANGUAGE sql AS $$
    DELETE FROM rpt_rollup_tag_state;
    INSERT INTO rpt_rollup_tag_state
        SELECT DISTINCT ON (partition, customer_key, tag) partition,
        customer_key, tag, changed_at, seq, added FROM rpt_tag_changes
        ORDER BY partition, customer_key, tag, changed_at DESC, seq DESC;
    DELETE FROM rpt_rollup_tags;
    WITH t AS (SELECT s.partition, s.customer_key, s.tag
        FROM rpt_rollup_tag_state s JOIN rpt_customers c
        USING (partition, customer_key) WHERE s.added),
    v AS (SELECT c.partition, c.customer_key, x.d, x.v FROM rpt_customers c,
        rpt_rollup_dims(c) x WHERE x.d IN ('channel', 'stage')
        UNION ALL SELECT partition, customer_key, 'region', region
        FROM rpt_rollup_customers
        UNION ALL SELECT partition, customer_key, 'industry', industry
        FROM rpt_rollup_customers)
    INSERT INTO rpt_rollup_tags SELECT tag, dim, value, partition, count(*)
        FROM (SELECT '', 'tagged', '', partition FROM t
            GROUP BY partition, customer_key
        UNION ALL SELECT '', 'tag', tag, partition FROM t
        UNION ALL SELECT tag, 'tagged', '', partition FROM t
        UNION ALL SELECT a.tag, 'tag', b.tag, a.partition FROM t a
            JOIN t b USING (partition, customer_key)
        UNION ALL SELECT t.tag, v.d, v.v, t.partition FROM t
            JOIN v USING (partition, customer_key) WHERE v.v IS NOT NULL)
        s(tag, dim, value, partition) GROUP BY 1, 2, 3, 4;
    SELECT rpt_rollup_seen(array_agg(p), array_agg(t)) FROM (SELECT
        partition, max(changed_at) FROM rpt_tag_changes GROUP BY 1) x(p, t);
$$;

-- rpt_rollups_rebuild recomputes these too (chained: the rebuild before
-- this migration, then the tags').
ALTER FUNCTION rpt_rollups_rebuild() RENAME TO rpt_rollups_rebuild_before_0013;
CREATE FUNCTION rpt_rollups_rebuild() RETURNS void LANGUAGE sql AS $$
    SELECT rpt_rollups_rebuild_before_0013();
    SELECT rpt_rollup_tags_rebuild();
$$;

SELECT rpt_rollup_tags_rebuild();

-- The reporting role may use the new tables (0005_roles: rpt_%).
SELECT pond_grant_roles();
