-- The home page, the badges and live subscriptions ask which associations host a person's
-- groups. Keeping the host on the membership row lets the directory index answer that alone,
-- without visiting every group. A group never changes host, so a trigger keeps it right and
-- writers need not know.
ALTER TABLE core.group_members ADD COLUMN association_id uuid;

UPDATE core.group_members gm SET association_id = g.association_id
FROM core.groups g WHERE g.id = gm.group_id;

ALTER TABLE core.group_members ALTER COLUMN association_id SET NOT NULL;

CREATE FUNCTION core.group_members_host() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT g.association_id INTO STRICT NEW.association_id
    FROM core.groups g WHERE g.id = NEW.group_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER group_members_host
    BEFORE INSERT OR UPDATE OF group_id, association_id ON core.group_members
    FOR EACH ROW EXECUTE FUNCTION core.group_members_host();

CREATE INDEX group_members_user_hosts
    ON core.group_members (user_id, status) INCLUDE (group_id, role, association_id);
DROP INDEX core.group_members_user_directory;
