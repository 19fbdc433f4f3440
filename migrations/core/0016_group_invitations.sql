-- An invitation a group's owner hands to someone who has no account yet (a link or its QR
-- code): accepting it registers them in the association, as an administrator's invitation
-- does, and makes them a member of that group.
ALTER TABLE core.invitations
    ADD COLUMN group_id uuid REFERENCES core.groups (id) ON DELETE CASCADE;
