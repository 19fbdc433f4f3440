-- A person's groups are read on every home page, badge and live subscription. The table is
-- ordered by group, so a person's rows sit on as many pages as they have groups: cover the
-- columns read so the index alone answers.
CREATE INDEX group_members_user_directory
    ON core.group_members (user_id, status) INCLUDE (group_id, role);
DROP INDEX core.group_members_user;
