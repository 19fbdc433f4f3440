-- Each association schema's migration version, kept where the shared connections can read it:
-- they may not read the association schemas themselves.
ALTER TABLE core.associations ADD COLUMN schema_version integer NOT NULL DEFAULT 0;
