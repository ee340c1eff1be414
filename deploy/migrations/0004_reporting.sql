-- 0004_reporting: what the reporting service owns -- per-customer facts
-- shaped for the reports of API.md section 4, built from the three streams
-- by pond-reporting (consumer name "reporting"), and the SMART goals.
--
-- A request reads only these tables, never the events table. Every fact
-- keeps its event time (occurred_at), so any as_of in the past is answered
-- exactly from the facts with occurred_at < as_of, whatever the order in
-- which the events arrived.
--
-- Distribution (deploy/citus): every rpt_ table but rpt_spend and
-- rpt_goals is distributed on customer_key and carries partition;
-- rpt_spend (per channel, no customer) and rpt_goals are reference tables.

-- One row per customer: when it was first seen (any event), its
-- milestones, and its acquisition, the first contact_added by occurred_at,
-- ties by event_id in byte order, then publisher name. A late add with an
-- earlier time takes the acquisition over (the apply compares the three).
-- The milestones are exact for any as_of: first_paid holds the times of
-- the customer's three earliest paid orders (ascending), so the stage at
-- as_of is member_at < as_of, else how many of them are < as_of.
CREATE TABLE rpt_customers (
    partition      int         NOT NULL,
    customer_key   text        NOT NULL,
    first_event_at timestamptz NOT NULL,
    member_at      timestamptz,
    first_paid     timestamptz[] NOT NULL DEFAULT '{}',
    acquired_at    timestamptz,
    acq_event_id   text COLLATE "C",
    acq_publisher  text COLLATE "C",
    channel        text,
    guide_id       text,
    store_id       text,
    inviter_key    text,
    campaign_id    text,
    PRIMARY KEY (partition, customer_key)
);
CREATE INDEX rpt_customers_acquired ON rpt_customers (acquired_at)
    INCLUDE (channel);
CREATE INDEX rpt_customers_first_event ON rpt_customers (first_event_at);
CREATE INDEX rpt_customers_buyer ON rpt_customers ((first_paid[1]));
CREATE INDEX rpt_customers_repeat_buyer ON rpt_customers ((first_paid[2]));

-- Paid orders (paid) and refunds (NOT paid), at their own occurred_at.
CREATE TABLE rpt_orders (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    seq          bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    event_id     text COLLATE "C" NOT NULL,
    publisher    text COLLATE "C" NOT NULL,
    paid         boolean     NOT NULL,
    amount_fen   bigint      NOT NULL,
    PRIMARY KEY (partition, customer_key, seq)
);
CREATE INDEX rpt_orders_customer_time
    ON rpt_orders (partition, customer_key, occurred_at);
CREATE INDEX rpt_orders_time ON rpt_orders (occurred_at);

CREATE TABLE rpt_rewards (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    seq          bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    amount_fen   bigint      NOT NULL,
    campaign_id  text,
    PRIMARY KEY (partition, customer_key, seq)
);
CREATE INDEX rpt_rewards_campaign ON rpt_rewards (campaign_id)
    WHERE campaign_id IS NOT NULL;

-- Interactions (retention counts these and paid orders as activity).
CREATE TABLE rpt_activity (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    seq          bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (partition, customer_key, seq)
);
CREATE INDEX rpt_activity_customer_time
    ON rpt_activity (partition, customer_key, occurred_at);

CREATE TABLE rpt_members (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    seq          bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (partition, customer_key, seq)
);

CREATE TABLE rpt_invites (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    seq          bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    campaign_id  text,
    PRIMARY KEY (partition, customer_key, seq)
);
CREATE INDEX rpt_invites_time ON rpt_invites (occurred_at);

-- profile_updated facts: a field the event does not carry is NULL with
-- its has_ flag false ("changes only the fields it carries").
CREATE TABLE rpt_profile_facts (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    seq          bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    event_id     text COLLATE "C" NOT NULL,
    publisher    text COLLATE "C" NOT NULL,
    has_region   boolean     NOT NULL,
    region       text,
    has_industry boolean     NOT NULL,
    industry     text,
    PRIMARY KEY (partition, customer_key, seq)
);

CREATE INDEX rpt_profile_facts_customer_time
    ON rpt_profile_facts (partition, customer_key, occurred_at);

-- channel_spend: no customer, so keyed by the stream record.
CREATE TABLE rpt_spend (
    partition   int         NOT NULL,
    seq         bigint      NOT NULL,
    channel     text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    amount_fen  bigint      NOT NULL,
    PRIMARY KEY (partition, seq)
);
CREATE INDEX rpt_spend_time ON rpt_spend (occurred_at) INCLUDE (channel,
    amount_fen);

-- The tag_changes stream as it was applied: a tag is on at t when its
-- latest change with changed_at < t was an add.
CREATE TABLE rpt_tag_changes (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    seq          bigint      NOT NULL,
    tag          text        NOT NULL,
    added        boolean     NOT NULL,
    changed_at   timestamptz NOT NULL,
    PRIMARY KEY (partition, customer_key, seq)
);
CREATE INDEX rpt_tag_changes_tag ON rpt_tag_changes (tag, changed_at);
CREATE INDEX rpt_tag_changes_customer_tag
    ON rpt_tag_changes (partition, customer_key, tag, changed_at);

-- The touches stream (pond.TouchChange): one row per touch state entered.
CREATE TABLE rpt_touch_changes (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    seq          bigint      NOT NULL,
    touch_id     text        NOT NULL,
    campaign_id  text        NOT NULL,
    channel      text        NOT NULL,
    state        text        NOT NULL,
    reason       text,
    at           timestamptz,
    selected_at  timestamptz,
    cost_fen     bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (partition, customer_key, seq)
);
CREATE INDEX rpt_touch_changes_campaign ON rpt_touch_changes (campaign_id,
    state);

-- At most three SMART goals (API.md section 4); the limit is checked by
-- the PUT in the same transaction that inserts.
CREATE TABLE rpt_goals (
    id         text        PRIMARY KEY,
    goal       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
