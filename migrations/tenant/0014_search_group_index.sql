-- A search reads only the documents of the person's groups that hold the words. Through the
-- group index alone, every document of those groups was read from the table to test its
-- grams (about 3,000 for someone in 57 groups); through the grams alone, a common word's
-- whole association. This index holds each document's grams and a token of its group, so
-- that GIN intersects the words with the person's groups before the table is read.
--
-- The token is the group id's last 28 bits (random in version 4 and 7 ids, whose first bits
-- are a timestamp that groups made the same hour share), placed above every code point
-- (characters are code points, pairs are negative): it never equals a gram. Two groups may
-- still share a token; the query's exact group condition drops the other's documents.
-- Never change this function in place: the index keeps tokens computed by its body (and
-- servers cache it), so another token needs another function and another index.
CREATE FUNCTION search_group_token(g uuid) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT ('x' || right(g::text, 7))::bit(28)::integer + 2097152 $$;

CREATE INDEX search_docs_grams_group ON search_docs
    USING gin ((grams || search_group_token(group_id)));

-- Replaced by the index above (the register's name search keeps its own,
-- search_docs_patient_grams).
DROP INDEX search_docs_grams;
