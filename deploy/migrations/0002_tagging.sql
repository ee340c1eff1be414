-- 0002_tagging: what the tagging service owns -- customer profiles, their
-- tags, the tag rules, and the tag_changes stream (DESIGN.md, "Streams").
--
-- Distribution (deploy/citus): customer_profiles, customer_tags and
-- tag_changes are distributed on customer_key and carry partition (every
-- primary key includes the distribution column); tag_rules is a reference
-- table.

-- One row per customer, rebuilt from the events stream by pond-tagging.
-- Acquisition is the first contact_added by occurred_at (ties by event_id,
-- then publisher name); acq_event_id, acq_publisher and acquired_at are kept
-- so that a late event with an earlier time can take it over.
CREATE TABLE customer_profiles (
    partition           int         NOT NULL,
    customer_key        text        NOT NULL,
    acquired_at         timestamptz,
    acq_event_id        text,
    acq_publisher       text,
    channel             text,
    guide_id            text,
    store_id            text,
    inviter_key         text,
    campaign_id         text,
    region              text,
    industry            text,
    birthday            text,
    attributes          jsonb       NOT NULL DEFAULT '{}',
    orders              bigint      NOT NULL DEFAULT 0,
    net_revenue_fen     bigint      NOT NULL DEFAULT 0,
    rewards_fen         bigint      NOT NULL DEFAULT 0,
    invitees            bigint      NOT NULL DEFAULT 0,
    last_order_at       timestamptz,
    last_order_cycle_days int,
    last_interaction_at timestamptz,
    member              boolean     NOT NULL DEFAULT false,
    member_tier         text,
    -- consent: {"sms": {"out": true, "at": <usec>}, "all": ...}; the latest
    -- opt_out / opt_in of a channel by occurred_at wins.
    consent             jsonb       NOT NULL DEFAULT '{}',
    -- The channels opted out of, derived from consent, for readers.
    opted_out           text[]      NOT NULL DEFAULT '{}',
    contact_removed     boolean     NOT NULL DEFAULT false,
    contact_changed_at  timestamptz,
    lifecycle           text        NOT NULL DEFAULT 'potential',
    first_event_at      timestamptz,
    last_event_at       timestamptz,
    -- The next moment a time-based condition of this customer may flip
    -- (NULL: none); the sweeper re-evaluates rows with due_at <= now.
    due_at              timestamptz,
    -- The tag_rules version the tags were last evaluated with; rows behind
    -- the current version are re-evaluated in batches after a rule change.
    rules_version       bigint      NOT NULL DEFAULT 0,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partition, customer_key)
);
CREATE INDEX customer_profiles_due ON customer_profiles (due_at)
    WHERE due_at IS NOT NULL;
CREATE INDEX customer_profiles_rules_version
    ON customer_profiles (rules_version);
CREATE INDEX customer_profiles_inviter ON customer_profiles (inviter_key)
    WHERE inviter_key IS NOT NULL;

-- The tags a customer has now (built-in and rule tags).
CREATE TABLE customer_tags (
    partition    int         NOT NULL,
    customer_key text        NOT NULL,
    tag          text        NOT NULL,
    since        timestamptz NOT NULL,
    PRIMARY KEY (partition, customer_key, tag)
);
CREATE INDEX customer_tags_tag ON customer_tags (tag);

-- Operator-defined rules: the tag is on exactly while condition holds.
CREATE TABLE tag_rules (
    tag        text        PRIMARY KEY,
    condition  jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Bumped with every change of tag_rules, in the same transaction.
INSERT INTO pond_settings (key, value) VALUES ('tag_rules_version', '0');

-- The tag_changes stream: payload is a packed pond.TagChange; the other
-- columns are copies for queries. cause is 'event' (cause_seq is the seq of
-- the events record, same partition), 'time' (the sweeper, for an age or an
-- invitee) or 'rule' (the sweeper, after a rule change).
CREATE TABLE tag_changes (
    partition    int         NOT NULL,
    seq          bigint      NOT NULL,
    customer_key text        NOT NULL,
    tag          text        NOT NULL,
    added        boolean     NOT NULL,
    cause        text        NOT NULL,
    cause_seq    bigint,
    changed_at   timestamptz NOT NULL,
    payload      bytea       NOT NULL,
    PRIMARY KEY (partition, seq)
);
CREATE INDEX tag_changes_customer ON tag_changes (customer_key, partition, seq);
