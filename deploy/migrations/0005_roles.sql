-- 0005_roles: one PostgreSQL role per service, with only the grants it needs.
--
-- The migrator (`pond migrate`, connecting as the schema owner) owns every
-- table. Each service logs in as a role that is a member of its group role
-- below, so a bug or an injection in one service can read or change only
-- that service's tables (docs/security.md):
--
--   CREATE ROLE ingest_1 LOGIN PASSWORD '...' IN ROLE pond_ingest;
--
-- The group roles are NOLOGIN; roles are cluster-wide, so they are made once
-- per cluster (a second database, or two migrators at once, find them there).
--
-- What each role may do is data, in role_grants: a row grants privileges
-- on every table whose name is LIKE table_like. pond_grant_roles() applies
-- the rows to the tables that exist when it runs, plus USAGE on the
-- sequences behind the serial columns of tables a role may INSERT into.
-- A later migration that adds tables (0003_scheduler, 0004_reporting, ...)
-- adds its rows if needed and ends with SELECT pond_grant_roles(); this one
-- already has rows for the scheduler's and reporting's tables and runs
-- after them.

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['pond_ingest', 'pond_tagging', 'pond_scheduler',
                             'pond_reporting']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL; -- another migrator made it meanwhile
            END;
        END IF;
    END LOOP;
END
$$;

CREATE TABLE role_grants (
    role       text NOT NULL CHECK (role IN ('pond_ingest', 'pond_tagging',
                                              'pond_scheduler',
                                              'pond_reporting')),
    table_like text NOT NULL,
    -- "SELECT, INSERT", or with columns: "SELECT (id, name)".
    privileges text NOT NULL
               CHECK (privileges ~ '^[A-Z]+( \([a-z_, ]+\))?(, [A-Z]+( \([a-z_, ]+\))?)*$'),
    PRIMARY KEY (role, table_like)
);

INSERT INTO role_grants (role, table_like, privileges) VALUES
    -- Every service checks the schema, its settings and API tokens, and
    -- keeps its own consumer cursors (the cursor rows carry the consumer's
    -- name; PostgreSQL grants by table, so the split is by convention).
    ('pond_ingest',    'schema_migrations', 'SELECT'),
    ('pond_tagging',   'schema_migrations', 'SELECT'),
    ('pond_scheduler', 'schema_migrations', 'SELECT'),
    ('pond_reporting', 'schema_migrations', 'SELECT'),
    ('pond_ingest',    'pond_settings', 'SELECT'),
    ('pond_tagging',   'pond_settings', 'SELECT, UPDATE'),
    ('pond_scheduler', 'pond_settings', 'SELECT'),
    ('pond_reporting', 'pond_settings', 'SELECT'),
    ('pond_ingest',    'api_tokens', 'SELECT'),
    ('pond_tagging',   'api_tokens', 'SELECT'),
    ('pond_scheduler', 'api_tokens', 'SELECT'),
    ('pond_reporting', 'api_tokens', 'SELECT'),
    ('pond_ingest',    'stream_heads', 'SELECT, UPDATE'),
    ('pond_tagging',   'stream_heads', 'SELECT, UPDATE'),
    ('pond_scheduler', 'stream_heads', 'SELECT, UPDATE'),
    ('pond_reporting', 'stream_heads', 'SELECT'),
    ('pond_tagging',   'consumer_cursors', 'SELECT, INSERT, UPDATE'),
    ('pond_scheduler', 'consumer_cursors', 'SELECT, INSERT, UPDATE'),
    ('pond_reporting', 'consumer_cursors', 'SELECT, INSERT, UPDATE'),
    -- ingest: the event log and what it owns. Publishers are read only
    -- (`pond publishers add` writes them as the owner).
    ('pond_ingest', 'publishers', 'SELECT'),
    ('pond_ingest', 'events', 'SELECT, INSERT'),
    ('pond_ingest', 'event_ids', 'SELECT, INSERT'),
    ('pond_ingest', 'order_ids', 'SELECT, INSERT'),
    ('pond_ingest', 'customer_aliases', 'SELECT, INSERT'),
    ('pond_ingest', 'rejected_events', 'SELECT, INSERT, UPDATE'),
    -- tagging: reads events; owns profiles, tags, rules, tag_changes.
    ('pond_tagging', 'events', 'SELECT'),
    ('pond_tagging', 'customer_profiles', 'SELECT, INSERT, UPDATE, DELETE'),
    ('pond_tagging', 'customer_tags', 'SELECT, INSERT, UPDATE, DELETE'),
    ('pond_tagging', 'tag_rules', 'SELECT, INSERT, UPDATE, DELETE'),
    ('pond_tagging', 'tag_changes', 'SELECT, INSERT'),
    -- scheduler (0003): reads events and tag_changes; owns campaigns, its
    -- customers, the frequency ledger, fission invitees, touches.
    ('pond_scheduler', 'events', 'SELECT'),
    ('pond_scheduler', 'tag_changes', 'SELECT'),
    ('pond_scheduler', 'campaigns', 'SELECT, INSERT, UPDATE, DELETE'),
    ('pond_scheduler', 'sched\_%', 'SELECT, INSERT, UPDATE, DELETE'),
    ('pond_scheduler', 'freq_ledger', 'SELECT, INSERT, UPDATE, DELETE'),
    ('pond_scheduler', 'fission_invitees', 'SELECT, INSERT, UPDATE, DELETE'),
    ('pond_scheduler', 'touches', 'SELECT, INSERT, UPDATE, DELETE'),
    ('pond_scheduler', 'touch_changes', 'SELECT, INSERT'),
    -- reporting (0004): reads the three streams and the campaigns; owns
    -- its rollups (rpt_*).
    ('pond_reporting', 'events', 'SELECT'),
    -- Ties break by publisher name (API.md section 6): the name, never
    -- the token hash.
    ('pond_reporting', 'publishers', 'SELECT (id, name)'),
    ('pond_reporting', 'tag_changes', 'SELECT'),
    ('pond_reporting', 'touch_changes', 'SELECT'),
    ('pond_reporting', 'touches', 'SELECT'),
    ('pond_reporting', 'campaigns', 'SELECT'),
    ('pond_reporting', 'rpt\_%', 'SELECT, INSERT, UPDATE, DELETE');

-- pond_grant_roles applies role_grants to the tables of the current schema
-- and returns how many grants it made. It is idempotent (GRANT is).
CREATE FUNCTION pond_grant_roles() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    g record;
    s record;
    n int := 0;
BEGIN
    FOR g IN
        SELECT rg.role, rg.privileges, t.tablename
          FROM role_grants rg
          JOIN pg_tables t ON t.schemaname = current_schema()
                          AND t.tablename LIKE rg.table_like
    LOOP
        EXECUTE format('GRANT %s ON TABLE %I TO %I', g.privileges,
                       g.tablename, g.role);
        n := n + 1;
        IF g.privileges LIKE '%INSERT%' THEN
            FOR s IN
                SELECT pg_get_serial_sequence(quote_ident(g.tablename),
                                              a.attname) AS seq
                  FROM pg_attribute a
                 WHERE a.attrelid = quote_ident(g.tablename)::regclass
                   AND a.attnum > 0 AND NOT a.attisdropped
                   AND pg_get_serial_sequence(quote_ident(g.tablename),
                                              a.attname) IS NOT NULL
            LOOP
                EXECUTE format('GRANT USAGE, SELECT ON SEQUENCE %s TO %I',
                               s.seq, g.role);
            END LOOP;
        END IF;
    END LOOP;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO pond_ingest, pond_tagging, '
                   'pond_scheduler, pond_reporting', current_schema());
    RETURN n;
END
$$;

SELECT pond_grant_roles();
