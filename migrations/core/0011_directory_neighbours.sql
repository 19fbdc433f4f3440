-- Neighbouring associations (a district and the one across its border) agree to share their
-- directories: a member of either may find and invite the other's people to a group. The
-- operator records the agreement; one row per direction keeps the lookups simple.
CREATE TABLE core.association_neighbours (
    association_id uuid NOT NULL REFERENCES core.associations (id) ON DELETE CASCADE,
    neighbour_id   uuid NOT NULL REFERENCES core.associations (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (association_id, neighbour_id),
    CHECK (association_id <> neighbour_id)
);

-- The directory is searched by name, kana and facility ignoring width, kana kind and spaces.
-- The folded text is written by the application (one normalization, in Rust), never computed
-- here, so that PostgreSQL's Unicode tables cannot disagree with it. Rows written before this
-- migration are filled in when the server migrates.
ALTER TABLE core.users ADD COLUMN search_key text;
ALTER TABLE core.facilities ADD COLUMN search_key text;
