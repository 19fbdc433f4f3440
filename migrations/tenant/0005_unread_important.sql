-- How many of a person's unread comments in a topic are marked 重要, kept with the counter so
-- that the home page can put important news first without looking at comments.
ALTER TABLE unread ADD COLUMN important integer NOT NULL DEFAULT 0 CHECK (important >= 0);

UPDATE unread ur SET important = (
    SELECT count(*) FROM comments c
    WHERE c.topic_id = ur.topic_id AND c.seq >= ur.first_seq AND c.important
      AND c.deleted_at IS NULL AND c.author_id <> ur.user_id
      AND NOT EXISTS (SELECT 1 FROM footprints f WHERE f.comment_id = c.id AND f.user_id = ur.user_id)
);

-- The newest important unread comment of a topic, found without reading the others.
CREATE INDEX comments_important ON comments (topic_id, seq) WHERE important AND deleted_at IS NULL;
