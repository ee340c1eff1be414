-- 0011_reporting_repeat: day cells (0008_reporting_cells.sql) for the
-- repurchase and fission reports, so that a period over whole local days
-- reads a few hundred cells instead of every order, share and new
-- customer of the period.
--
-- Repurchase (API.md: buyers = customers with >= 1 paid order in T,
-- repeat_buyers = >= 2). Order a customer's paid orders by (occurred_at,
-- event_id, publisher); prev1(o) and prev2(o) are the paid order before o
-- and the one before that. A customer with m >= 1 paid orders in T has
-- m - 1 of them whose prev1 is in T and max(m - 2, 0) whose prev2 is; so
-- with N the paid orders in T, A those whose prev1 is in T and B those
-- whose prev2 is, summed over the customers:
--     buyers = N - A,  repeat_buyers = A - B.
-- For whole local days d1 <= day < d2, a previous order (never after the
-- order) is in T iff its local day is >= d1. The cells 'repeat' count the
-- paid orders by (order day, key, k): key '0' with k = 0 (every paid
-- order), '1' with k = order day - prev1's day, '2' with k = order day -
-- prev2's day. A period sums, for each of its days d, the rows of day d
-- with k <= d - d1: about (days^2) / 2 rows of each key.
--
-- Fission (API.md sections 4 and 6), the same trick for "distinct":
--   'share'       (share day, campaign id or '', 0): invite_shared events;
--   'share_again' (share day, '', k = day - the day of the customer's
--                 previous share) and (share day, campaign id, k = day -
--                 the day of the customer's previous share of that
--                 campaign): inviters in T = shares in T - shares whose
--                 previous share is in T (k <= d - d1);
--   'invitee'     (acquisition day, [campaign id, inviter key] as JSON
--                 text, 0): new customers whose acquiring contact_added has
--                 an inviter_key, so a period's rows give the invitees of
--                 each inviter (successful_inviters, top_inviters).
-- Every figure is in n. Ties on a share's time break by seq: the counts
-- depend only on the days, which ties share.
--
-- Kept, as 0008's cells, by statement triggers (set-based, a few
-- statements each), exact after every statement whatever the order of
-- arrival:
--   rpt_orders:    for the statement's customers, the 'repeat' rows of all
--                  their paid orders (lag over each customer's orders) with
--                  and without the statement's rows; the difference is
--                  added. A late order with an earlier time changes the
--                  prev1 and prev2 of the later ones: both sides see it.
--   rpt_invites:   the same for 'share_again'; 'share' adds the new rows;
--                  the shares' times reach the horizon (rpt_rollup_seen),
--                  which 0008 did not need.
--   rpt_customers: a customer leaves the 'invitee' cell of its old
--                  acquisition (time, inviter, campaign) for the new one --
--                  a late add with an earlier time moves it.
-- The 'repeat' cells depend on order times, already in the horizon
-- (0008), and 'invitee' on acquired_at (0007). Nothing here reads two
-- streams: all are facts of the events stream of the customer's partition.

CREATE FUNCTION rpt_repeat_orders_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
BEGIN
    tz := rpt_cells_lock(false);
    PERFORM rpt_cells_add(ARRAY(
        WITH o AS (SELECT o.partition, o.customer_key, o.occurred_at,
            o.event_id, o.publisher, (o.occurred_at AT TIME ZONE tz)::date
            AS day, n.seq IS NOT NULL AS is_new
            FROM (SELECT DISTINCT partition, customer_key FROM new_rows
            WHERE paid) s JOIN rpt_orders o USING (partition, customer_key)
            LEFT JOIN new_rows n ON n.partition = o.partition
            AND n.customer_key = o.customer_key AND n.seq = o.seq
            WHERE o.paid),
        v AS (SELECT partition, day, 1 AS s, lag(day, 1) OVER w AS p1,
            lag(day, 2) OVER w AS p2 FROM o
            WINDOW w AS (PARTITION BY partition, customer_key
            ORDER BY occurred_at, event_id, publisher)
            UNION ALL
            SELECT partition, day, -1, lag(day, 1) OVER w, lag(day, 2)
            OVER w FROM o WHERE NOT is_new
            WINDOW w AS (PARTITION BY partition, customer_key
            ORDER BY occurred_at, event_id, publisher))
        SELECT ('repeat', v.day, x.key, x.k, v.partition, sum(v.s)::bigint,
            0::bigint, 0::bigint, 0::bigint)::rpt_cells_delta
            FROM v, LATERAL (VALUES ('0', 0), ('1', v.day - v.p1),
            ('2', v.day - v.p2)) x(key, k)
            WHERE x.k IS NOT NULL
            GROUP BY v.day, x.key, x.k, v.partition));
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_repeat_orders AFTER INSERT ON rpt_orders
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_repeat_orders_trg();

-- Every share's time reaches the horizon on a rebuild too (and this
-- migration on an existing install): rpt_cells_seen_facts, which
-- rpt_cells_rebuild and rpt_rollups_rebuild call, is chained as 0010 does.
ALTER FUNCTION rpt_cells_seen_facts() RENAME TO rpt_cells_seen_facts_before_0011;
CREATE FUNCTION rpt_cells_seen_facts() RETURNS void LANGUAGE sql AS $$
    SELECT rpt_cells_seen_facts_before_0011();
    SELECT rpt_rollup_seen(array_agg(p), array_agg(t)) FROM (
        SELECT partition, max(occurred_at) FROM rpt_invites GROUP BY 1)
        x(p, t);
$$;

CREATE FUNCTION rpt_repeat_invites_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
BEGIN
    tz := rpt_cells_lock(false);
    PERFORM rpt_cells_add(ARRAY(
        WITH i AS (SELECT i.partition, i.customer_key, i.campaign_id,
            i.occurred_at, i.seq, (i.occurred_at AT TIME ZONE tz)::date
            AS day, n.seq IS NOT NULL AS is_new
            FROM (SELECT DISTINCT partition, customer_key FROM new_rows) s
            JOIN rpt_invites i USING (partition, customer_key)
            LEFT JOIN new_rows n ON n.partition = i.partition
            AND n.customer_key = i.customer_key AND n.seq = i.seq),
        v AS (SELECT partition, day, '' AS key, 1 AS s, lag(day) OVER (
            PARTITION BY partition, customer_key ORDER BY occurred_at, seq)
            AS p FROM i
            UNION ALL SELECT partition, day, '', -1, lag(day) OVER (
            PARTITION BY partition, customer_key ORDER BY occurred_at, seq)
            FROM i WHERE NOT is_new
            UNION ALL SELECT partition, day, campaign_id, 1, lag(day) OVER (
            PARTITION BY partition, customer_key, campaign_id
            ORDER BY occurred_at, seq) FROM i WHERE campaign_id IS NOT NULL
            UNION ALL SELECT partition, day, campaign_id, -1, lag(day) OVER (
            PARTITION BY partition, customer_key, campaign_id
            ORDER BY occurred_at, seq) FROM i
            WHERE campaign_id IS NOT NULL AND NOT is_new)
        SELECT ('share_again', day, key, day - p, partition, sum(s)::bigint,
            0::bigint, 0::bigint, 0::bigint)::rpt_cells_delta
            FROM v WHERE p IS NOT NULL GROUP BY day, key, day - p, partition
        UNION ALL
        SELECT ('share', day, key, 0, partition, n, 0::bigint, 0::bigint,
            0::bigint)::rpt_cells_delta FROM (SELECT
            (occurred_at AT TIME ZONE tz)::date AS day,
            COALESCE(campaign_id, '') AS key, partition, count(*) AS n
            FROM new_rows GROUP BY 1, 2, 3) x));
    PERFORM rpt_rollup_seen(array_agg(p), array_agg(t)) FROM (SELECT
        partition, max(occurred_at) FROM new_rows GROUP BY 1) x(p, t);
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_repeat_invites AFTER INSERT ON rpt_invites
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_repeat_invites_trg();

-- rpt_repeat_invitees is the 'invitee' deltas of customers (partition,
-- acquired_at, inviter_key, campaign_id) counted with the signs s.
CREATE FUNCTION rpt_repeat_invitees(p int[], acq timestamptz[],
    inviter text[], camp text[], s int[], tz text)
RETURNS SETOF rpt_cells_delta LANGUAGE sql STABLE AS $$
    SELECT ('invitee', day, key, 0, partition, n, 0::bigint, 0::bigint,
        0::bigint)::rpt_cells_delta FROM (SELECT
        (u.acq AT TIME ZONE tz)::date AS day,
        jsonb_build_array(u.camp, u.inviter)::text AS key, u.p AS partition,
        sum(u.s)::bigint AS n
        FROM unnest(p, acq, inviter, camp, s) u(p, acq, inviter, camp, s)
        WHERE u.acq IS NOT NULL AND u.inviter IS NOT NULL
        GROUP BY 1, 2, 3) x WHERE n <> 0
$$;

-- An update subtracts every old row's invitee cell and adds every new
-- row's: a customer whose acquisition did not change cancels out.
CREATE FUNCTION rpt_repeat_customers_trg() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    tz text;
BEGIN
    tz := rpt_cells_lock(false);
    IF TG_OP = 'INSERT' THEN
        PERFORM rpt_cells_add(ARRAY(SELECT rpt_repeat_invitees(
            array_agg(partition), array_agg(acquired_at),
            array_agg(inviter_key), array_agg(campaign_id),
            array_agg(1), tz) FROM new_rows
            WHERE inviter_key IS NOT NULL AND acquired_at IS NOT NULL));
    ELSE
        PERFORM rpt_cells_add(ARRAY(SELECT rpt_repeat_invitees(
            array_agg(partition), array_agg(acquired_at),
            array_agg(inviter_key), array_agg(campaign_id),
            array_agg(s), tz) FROM (
            SELECT partition, acquired_at, inviter_key, campaign_id, 1
            FROM new_rows UNION ALL
            SELECT partition, acquired_at, inviter_key, campaign_id, -1
            FROM old_rows) c(partition, acquired_at, inviter_key,
            campaign_id, s)
            WHERE inviter_key IS NOT NULL AND acquired_at IS NOT NULL));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER rpt_repeat_customers_ins AFTER INSERT ON rpt_customers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_repeat_customers_trg();
CREATE TRIGGER rpt_repeat_customers_upd AFTER UPDATE ON rpt_customers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION rpt_repeat_customers_trg();

-- rpt_repeat_rebuild recomputes this migration's cells from the facts in
-- zone, set by set (not through the triggers' functions), after the
-- earlier rebuild deleted every cell; and the shares' horizon.
CREATE FUNCTION rpt_repeat_rebuild(zone text) RETURNS void
LANGUAGE sql AS $$
    WITH o AS (SELECT partition, (occurred_at AT TIME ZONE zone)::date
        AS day, lag(occurred_at, 1) OVER w AS t1, lag(occurred_at, 2)
        OVER w AS t2 FROM rpt_orders WHERE paid
        WINDOW w AS (PARTITION BY partition, customer_key
        ORDER BY occurred_at, event_id, publisher)),
    i AS (SELECT partition, campaign_id, (occurred_at AT TIME ZONE zone)::date
        AS day, (lag(occurred_at) OVER (PARTITION BY partition,
        customer_key ORDER BY occurred_at, seq) AT TIME ZONE zone)::date
        AS any_day, CASE WHEN campaign_id IS NOT NULL THEN (lag(occurred_at)
        OVER (PARTITION BY partition, customer_key, campaign_id
        ORDER BY occurred_at, seq) AT TIME ZONE zone)::date END AS camp_day
        FROM rpt_invites)
    INSERT INTO rpt_cells SELECT cell, day, key, k, partition, count(*),
        0, 0, 0 FROM (
        SELECT 'repeat', day, '0', 0, partition FROM o
        UNION ALL SELECT 'repeat', day, '1',
            day - (t1 AT TIME ZONE zone)::date, partition FROM o
            WHERE t1 IS NOT NULL
        UNION ALL SELECT 'repeat', day, '2',
            day - (t2 AT TIME ZONE zone)::date, partition FROM o
            WHERE t2 IS NOT NULL
        UNION ALL SELECT 'share', day, COALESCE(campaign_id, ''), 0,
            partition FROM i
        UNION ALL SELECT 'share_again', day, '', day - any_day, partition
            FROM i WHERE any_day IS NOT NULL
        UNION ALL SELECT 'share_again', day, campaign_id, day - camp_day,
            partition FROM i WHERE camp_day IS NOT NULL
        UNION ALL SELECT 'invitee', (acquired_at AT TIME ZONE zone)::date,
            jsonb_build_array(campaign_id, inviter_key)::text, 0, partition
            FROM rpt_customers
            WHERE acquired_at IS NOT NULL AND inviter_key IS NOT NULL)
        s(cell, day, key, k, partition) GROUP BY 1, 2, 3, 4, 5;
$$;

-- Chained, as the rules of 0008 ask: the earlier rebuild (which deletes
-- every cell and takes the cells' lock exclusive to the end of the
-- transaction), then this migration's cells.
ALTER FUNCTION rpt_cells_rebuild(text) RENAME TO rpt_cells_rebuild_before_0011;
CREATE FUNCTION rpt_cells_rebuild(zone text) RETURNS void
LANGUAGE sql AS $$
    SELECT rpt_cells_rebuild_before_0011(zone);
    SELECT rpt_repeat_rebuild(zone);
$$;


SELECT rpt_repeat_rebuild((SELECT tz FROM rpt_cells_zone));
SELECT rpt_cells_seen_facts();
