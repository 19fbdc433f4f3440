-- The tenant registry: one row per medical association (医師会). Schema names are generated
-- from the id at creation and never taken from input.
CREATE TABLE core.associations (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9-]{1,38}[a-z0-9]$'),
    name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    schema_name text NOT NULL UNIQUE CHECK (schema_name ~ '^assoc_[0-9a-f]{32}$'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
