-- The platform audit log: operator and cross-association events (MHLW guideline 6.0).
-- Append-only and hash-chained: see docs/audit.md for the canonical encoding. Rows are written
-- only by musubi_db::audit::append_platform, which serializes appenders with an advisory lock.
CREATE TABLE core.platform_audit_log (
    seq         bigint PRIMARY KEY CHECK (seq > 0),
    -- The database's clock_timestamp() when the record was appended; never a client's clock.
    at          timestamptz NOT NULL,
    actor_id    uuid,
    -- The actor's name at the time, or 'system'.
    actor_label text NOT NULL,
    -- A stable dotted code such as auth.sign_in or patient.read.
    action      text NOT NULL,
    object_type text,
    object_id   text,
    ip          text NOT NULL DEFAULT '',
    user_agent  text NOT NULL DEFAULT '',
    -- Ids and codes only: never patient free text.
    detail      jsonb NOT NULL DEFAULT '{}',
    prev_hash   bytea NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash        bytea NOT NULL CHECK (octet_length(hash) = 32)
);
CREATE INDEX platform_audit_log_at ON core.platform_audit_log (at);
CREATE INDEX platform_audit_log_actor ON core.platform_audit_log (actor_id, seq)
    WHERE actor_id IS NOT NULL;
-- text_pattern_ops serves both `action = …` and the prefix filter `action LIKE 'auth.%'`.
CREATE INDEX platform_audit_log_action
    ON core.platform_audit_log (action text_pattern_ops, seq);
CREATE INDEX platform_audit_log_object ON core.platform_audit_log (object_type, object_id, seq)
    WHERE object_type IS NOT NULL;

-- Refuses every UPDATE and DELETE, except a DELETE in a transaction that has set
-- musubi.audit_purge to 'on' locally: the retention purge, and nothing else, does that.
CREATE FUNCTION core.platform_audit_log_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('musubi.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER platform_audit_log_append_only
    BEFORE UPDATE OR DELETE ON core.platform_audit_log
    FOR EACH ROW EXECUTE FUNCTION core.platform_audit_log_guard();
CREATE TRIGGER platform_audit_log_no_truncate
    BEFORE TRUNCATE ON core.platform_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION core.platform_audit_log_guard();
