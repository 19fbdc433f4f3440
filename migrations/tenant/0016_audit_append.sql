-- An audit record in one statement. Appending took two: the log's lock, then the chain's head
-- read and the record written together; between them the transaction held the lock while its
-- server waited for a core to send the second. Appenders of a log serialize on the lock, so
-- that wait was everyone's.
--
-- VOLATILE on purpose: in READ COMMITTED each statement of a volatile function takes a new
-- snapshot, so the INSERT, which starts after the lock is granted, sees every append committed
-- before it (one statement taking the lock and reading the head would read with a snapshot
-- from before the lock). The hash is the one crates/db/src/audit.rs computes and docs/audit.md
-- specifies: sha256(prev_hash || version || seq || at || rest). `audit_log` and the lock's name
-- come from the caller's search_path, as they did from the two statements.
CREATE FUNCTION audit_append(
    genesis bytea, version bytea, actor uuid, label text, act text, obj_type text,
    obj_id text, from_ip text, agent text, info jsonb, rest bytea, lock_class integer)
RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    appended bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(lock_class,
                                  hashtext(coalesce(current_schema(), '') || '.audit_log'));
    WITH head AS (
        SELECT coalesce(l.seq, 0) + 1 AS seq, coalesce(l.hash, genesis) AS prev,
               date_trunc('microseconds', clock_timestamp()) AS at
        FROM (SELECT 1) AS one
        LEFT JOIN LATERAL (SELECT a.seq, a.hash FROM audit_log a ORDER BY a.seq DESC LIMIT 1) AS l
            ON true)
    INSERT INTO audit_log (seq, at, actor_id, actor_label, action, object_type, object_id, ip,
                           user_agent, detail, prev_hash, hash)
    SELECT h.seq, h.at, actor, label, act, obj_type, obj_id, from_ip, agent, info, h.prev,
           sha256(h.prev || version || int8send(h.seq)
                  || int8send((extract(epoch FROM h.at) * 1000000)::bigint) || rest)
    FROM head h
    RETURNING audit_log.seq INTO appended;
    RETURN appended;
END
$$;
