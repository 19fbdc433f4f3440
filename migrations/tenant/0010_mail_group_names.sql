-- Whether notification mails may name the association's groups. Patient groups are never
-- named in a mail (their name is the patient's); this allows the names of the others.
ALTER TABLE settings ADD COLUMN mail_group_names boolean NOT NULL DEFAULT false;
