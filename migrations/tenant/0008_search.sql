-- Free-word search: one row per thing that can be found (a topic's title, a comment, a file's
-- name and text, a patient's name and reading), written from Rust in the same transaction as
-- the thing itself, so that it is findable once committed and never after it is deleted.
--
-- `folded` is musubi_types::japanese::fold of the text (segments joined by a line break, which
-- fold removes from queries, so nothing matches across two segments). `grams` are the folded
-- text's characters and pairs of adjacent characters as integers (japanese::grams): a query's
-- grams must all be there (GIN, `@>`), then `folded LIKE '%word%'` rechecks each word, which
-- makes phrases, longer words and the rare hash collision exact. See docs/search.md.
--
-- Who may find a row is decided in the query from the columns copied here: the group (its
-- active members), the topic's scope and author (as for reading the topic).

CREATE TABLE search_docs (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('topic', 'comment', 'file', 'patient')),
    group_id     uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    -- The topic of a title, a comment or an attachment; NULL for shared files and patients.
    topic_id     uuid REFERENCES topics (id) ON DELETE CASCADE,
    scope        smallint NOT NULL DEFAULT 7 CHECK (scope BETWEEN 1 AND 7),
    topic_author uuid,
    author_id    uuid,
    at           timestamptz NOT NULL,
    folded       text NOT NULL,
    grams        integer[] NOT NULL
);
CREATE INDEX search_docs_grams ON search_docs USING gin (grams);
CREATE INDEX search_docs_group_at ON search_docs (group_id, at DESC, id DESC);
CREATE INDEX search_docs_topic ON search_docs (topic_id) WHERE topic_id IS NOT NULL;

-- Set once `musubi migrate` has written the documents of what existed before search (so later
-- start-ups do not look for them again).
ALTER TABLE settings ADD COLUMN search_backfilled boolean NOT NULL DEFAULT false;
