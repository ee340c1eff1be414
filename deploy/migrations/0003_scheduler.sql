-- 0003_scheduler: what the scheduler owns -- campaigns, the per-customer
-- facts its rules need, the frequency ledger, fission invitees, the
-- touches with their due queue, and the touches stream (touch_changes).
--
-- Distribution (deploy/citus): campaigns is a reference table; every other
-- table is distributed on customer_key and carries partition first in its
-- keys.

CREATE TABLE campaigns (
    id                 text        PRIMARY KEY,
    name               text        NOT NULL,
    spec               jsonb       NOT NULL,
    trigger_kind       text        NOT NULL
        CHECK (trigger_kind IN ('event', 'tag_added', 'tag_removed', 'at')),
    trigger_value      text        NOT NULL,
    quota              bigint,
    -- Touches taken from the quota; raised under the row lock in the
    -- transaction that creates the touch, so replicas never exceed quota.
    used               bigint      NOT NULL DEFAULT 0,
    paused             boolean     NOT NULL DEFAULT false,
    -- One-shot ({at: TIME}) campaigns: the last customer done and whether
    -- the whole audience has been gone through.
    at_cursor_part     int         NOT NULL DEFAULT -1,
    at_cursor_key      text        NOT NULL DEFAULT '',
    at_done            boolean     NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now()
);

-- The facts the touch rules read, kept from the events stream in the
-- consumer's transaction (never read from another service's tables, so
-- the outcome does not depend on which service ran first).
-- consent: {"sms": {"out": true, "at": <usec>}, "all": ...}; per channel the
-- latest opt_out / opt_in by occurred_at wins (as in customer_profiles), and
-- opted_out lists the channels out. removed follows the latest
-- contact_added / contact_removed by occurred_at (contact_changed_at).
CREATE TABLE sched_customers (
    partition          int         NOT NULL,
    customer_key       text        NOT NULL,
    consent            jsonb       NOT NULL DEFAULT '{}',
    opted_out          text[]      NOT NULL DEFAULT '{}',
    removed            boolean     NOT NULL DEFAULT false,
    contact_changed_at timestamptz,
    PRIMARY KEY (partition, customer_key)
);

-- The frequency ledger: marketing touches per customer per business day
-- (POND_TZ) of their due time.
CREATE TABLE freq_ledger (
    partition    int    NOT NULL,
    customer_key text   NOT NULL,
    day          date   NOT NULL,
    touches      int    NOT NULL DEFAULT 0,
    PRIMARY KEY (partition, customer_key, day)
);

-- Fission: each invitee counted once per inviter and campaign (the row
-- lives in the inviter's partition).
CREATE TABLE fission_invitees (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    campaign_id  text        NOT NULL,
    invitee_key  text        NOT NULL,
    added_at     timestamptz NOT NULL,
    PRIMARY KEY (partition, customer_key, campaign_id, invitee_key)
);

-- A touch, from selection to its last receipt. touch_id is derived from its
-- cause (campaign, trigger record, customer), so a replay cannot make a
-- second one. The due queue is state IN ('scheduled', 'deferred') with
-- due_at <= now and no live lease.
CREATE TABLE touches (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    touch_id     text        NOT NULL,
    campaign_id  text        NOT NULL,
    channel      text        NOT NULL,
    template     text        NOT NULL DEFAULT '',
    params       jsonb       NOT NULL DEFAULT '{}',
    kind         text        NOT NULL DEFAULT 'marketing',
    state        text        NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    selected_at  timestamptz NOT NULL,
    due_at       timestamptz,
    lease_until  timestamptz,
    attempts     int         NOT NULL DEFAULT 0,
    sent_at      timestamptz,
    delivered_at timestamptz,
    rewarded     boolean     NOT NULL DEFAULT false,
    cost_fen     bigint      NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition, customer_key, touch_id)
);
CREATE INDEX touches_due ON touches (due_at)
    WHERE state IN ('scheduled', 'deferred');
CREATE INDEX touches_delivered ON touches (partition, customer_key, delivered_at)
    WHERE delivered_at IS NOT NULL;

-- The touches stream: payload is a packed pond.TouchChange; the other
-- columns are copies for queries.
CREATE TABLE touch_changes (
    partition    int         NOT NULL,
    seq          bigint      NOT NULL,
    customer_key text        NOT NULL,
    touch_id     text        NOT NULL,
    campaign_id  text        NOT NULL,
    state        text        NOT NULL,
    reason       text        NOT NULL DEFAULT '',
    changed_at   timestamptz NOT NULL,
    payload      bytea       NOT NULL,
    PRIMARY KEY (partition, seq)
);
CREATE INDEX touch_changes_touch ON touch_changes (customer_key, touch_id);

-- The dispatcher sends each touch with its customer's aliases (the phone
-- an SMS gateway needs): look them up by customer.
CREATE INDEX customer_aliases_customer ON customer_aliases (customer_key);
