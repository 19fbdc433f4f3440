-- A membership may end by itself (a substitute nurse for two weeks, a student on placement):
-- after `until` the membership is removed by the server's sweep, within a minute.
ALTER TABLE core.group_members ADD COLUMN until timestamptz;
CREATE INDEX group_members_until ON core.group_members (until) WHERE until IS NOT NULL;
