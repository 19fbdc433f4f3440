-- An invitation by e-mail address must not tell the inviter whether the address has an
-- account: the invitation it may create is kept out of the owners' member list (the invitee
-- still finds it on their home page) until it is accepted.
ALTER TABLE core.group_members ADD COLUMN invited_by_email boolean NOT NULL DEFAULT false;
