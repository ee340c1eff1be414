-- 0006_collate_c: identifiers compare byte by byte.
--
-- Ids are opaque strings: API.md section 6 breaks ties on occurred_at "by
-- event_id in byte order", and nothing about an id is language. With the
-- cluster's default collation (a glibc locale) every comparison of these
-- columns went through strcoll, which led PostgreSQL's profile of ingest's
-- id claims and alias lookups. COLLATE "C" compares bytes (memcmp): the
-- order the spec asks for, and cheaper. Later migrations declare their id
-- columns COLLATE "C" from the start.

ALTER TABLE events
    ALTER COLUMN customer_key TYPE text COLLATE "C",
    ALTER COLUMN event_id TYPE text COLLATE "C";
ALTER TABLE event_ids ALTER COLUMN event_id TYPE text COLLATE "C";
ALTER TABLE order_ids ALTER COLUMN order_id TYPE text COLLATE "C";
ALTER TABLE customer_aliases
    ALTER COLUMN kind TYPE text COLLATE "C",
    ALTER COLUMN value TYPE text COLLATE "C",
    ALTER COLUMN customer_key TYPE text COLLATE "C";
ALTER TABLE customer_profiles
    ALTER COLUMN customer_key TYPE text COLLATE "C",
    ALTER COLUMN acq_event_id TYPE text COLLATE "C",
    ALTER COLUMN inviter_key TYPE text COLLATE "C";
ALTER TABLE customer_tags
    ALTER COLUMN customer_key TYPE text COLLATE "C",
    ALTER COLUMN tag TYPE text COLLATE "C";
ALTER TABLE tag_changes
    ALTER COLUMN customer_key TYPE text COLLATE "C",
    ALTER COLUMN tag TYPE text COLLATE "C";
