-- Direct messages: a conversation is a group of kind 'direct' with one topic, hosted by the
-- association of the person who started it. Its people hold the role 'participant', which may
-- read and reply but neither open topics nor invite as a group's members do.
ALTER TABLE core.groups DROP CONSTRAINT groups_kind_check;
ALTER TABLE core.groups ADD CONSTRAINT groups_kind_check
    CHECK (kind IN ('general', 'patient', 'direct'));

ALTER TABLE core.group_members DROP CONSTRAINT group_members_role_check;
ALTER TABLE core.group_members ADD CONSTRAINT group_members_role_check
    CHECK (role IN ('member', 'owner', 'participant'));

-- Whether an association's members may exchange messages with people of other associations.
-- Kept in core (not in the association's settings) because a conversation's rule is decided
-- by every association its people belong to. No row: allowed.
CREATE TABLE core.message_policies (
    association_id     uuid PRIMARY KEY REFERENCES core.associations (id) ON DELETE CASCADE,
    cross_association  boolean NOT NULL,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- A one-to-one conversation's two people ("<smaller id>:<larger id>"): one conversation per
-- pair, whoever starts it and wherever it is hosted; the unique index settles two people
-- starting it at the same moment.
ALTER TABLE core.groups ADD COLUMN pair_key text;
CREATE UNIQUE INDEX groups_pair_key ON core.groups (pair_key) WHERE pair_key IS NOT NULL;
