-- 0001_spine: streams, consumer cursors, publishers, API tokens, the event
-- log and what ingest owns (event ids, order ids, aliases, rejects).
--
-- Distribution (deploy/citus): customer-owned tables carry partition and
-- customer_key; publishers, api_tokens, stream_heads and consumer_cursors
-- are small reference tables.

CREATE TABLE pond_settings (
    key   text PRIMARY KEY,
    value text NOT NULL
);

-- One row per (stream, partition). head is the last seq handed out; the
-- producer's UPDATE ... RETURNING on this row is what orders a partition.
CREATE TABLE stream_heads (
    stream    text   NOT NULL,
    partition int    NOT NULL,
    head      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, partition)
);

-- A consumer's position: every record with seq <= this has been applied.
CREATE TABLE consumer_cursors (
    consumer   text        NOT NULL,
    stream     text        NOT NULL,
    partition  int         NOT NULL,
    seq        bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, stream, partition)
);

CREATE TABLE publishers (
    id         bigserial   PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    token_hash bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

CREATE TABLE api_tokens (
    id         bigserial   PRIMARY KEY,
    name       text        NOT NULL UNIQUE,
    role       text        NOT NULL CHECK (role IN ('read', 'admin')),
    token_hash bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- The events stream. payload is the pond.Event as accepted, with
-- customer_key resolved; the other columns are copies for queries.
CREATE TABLE events (
    partition    int         NOT NULL,
    seq          bigint      NOT NULL,
    customer_key text        NOT NULL,
    publisher_id bigint      NOT NULL,
    event_id     text        NOT NULL,
    type         text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    payload      bytea       NOT NULL,
    PRIMARY KEY (partition, seq)
);
CREATE INDEX events_customer ON events (customer_key, occurred_at);

-- Idempotency: an (publisher, event_id) is stored once; a rejected event is
-- not remembered here, so a fixed re-send is validated afresh.
CREATE TABLE event_ids (
    publisher_id bigint NOT NULL,
    event_id     text   NOT NULL,
    PRIMARY KEY (publisher_id, event_id)
);

-- An order_id counts once per publisher (API.md section 6).
CREATE TABLE order_ids (
    publisher_id bigint NOT NULL,
    order_id     text   NOT NULL,
    PRIMARY KEY (publisher_id, order_id)
);

-- Aliases link another identity to a customer; the first link wins.
CREATE TABLE customer_aliases (
    kind         text        NOT NULL,
    value        text        NOT NULL,
    customer_key text        NOT NULL,
    linked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, value)
);

-- Every rejected event, with the bytes as they arrived (protobuf or JSON).
CREATE TABLE rejected_events (
    id           bigserial   PRIMARY KEY,
    publisher_id bigint,
    event_id     text,
    code         text        NOT NULL,
    reason       text        NOT NULL,
    format       text        NOT NULL CHECK (format IN ('protobuf', 'json')),
    raw          bytea       NOT NULL,
    received_at  timestamptz NOT NULL,
    replayed_at  timestamptz
);
CREATE INDEX rejected_events_code ON rejected_events (code, received_at);
