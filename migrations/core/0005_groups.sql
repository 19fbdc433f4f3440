-- The directory of groups: which association hosts each group, and who belongs to it.
-- Group content (topics, comments, footprints, unread) lives in the host association's schema;
-- membership lives here because a group may have members from several associations, and a
-- person's home page must find all their groups without asking every schema.

CREATE TABLE core.groups (
    id             uuid PRIMARY KEY,
    association_id uuid NOT NULL REFERENCES core.associations (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('general', 'patient')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX groups_association ON core.groups (association_id);

CREATE TABLE core.group_members (
    group_id   uuid NOT NULL REFERENCES core.groups (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    role       text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'owner')),
    -- invited: waits for the person to accept; requested: waits for an owner to approve.
    status     text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'invited', 'requested')),
    invited_by uuid REFERENCES core.users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    joined_at  timestamptz,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON core.group_members (user_id, status);

-- The class a person belongs to for topic visibility scopes, as one bit:
-- 1 co-medical staff, 2 collaborating (clinic) doctors, 4 hospital doctors.
-- users.doctor_kind is set exactly for physicians and dentists (a CHECK on core.users).
CREATE FUNCTION core.scope_bit(doctor_kind text) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE doctor_kind WHEN 'clinic' THEN 2 WHEN 'hospital' THEN 4 ELSE 1 END::smallint
$$;

-- Live-update events, written in the same transaction as the change they announce and published
-- after commit; a client that reconnects catches up from here. Ids only, never patient text.
CREATE TABLE core.events (
    id              bigserial PRIMARY KEY,
    association_id  uuid NOT NULL,
    group_id        uuid NOT NULL,
    topic_id        uuid,
    kind            text NOT NULL,
    scope           smallint NOT NULL DEFAULT 7,
    actor_id        uuid NOT NULL,
    topic_author_id uuid,
    comment_ids     uuid[] NOT NULL DEFAULT '{}',
    user_id         uuid,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_group ON core.events (group_id, id);
CREATE INDEX events_created ON core.events (created_at);
