-- Files in a group: its shared files, and attachments of comments (a topic's body is its first
-- comment). An attachment is uploaded first (`pending`, seen by its uploader only) and belongs
-- to its comment once the comment is posted; it is then seen by whoever sees the topic.
-- The bytes live in the file store under `object_key` (`a/<association id>/<random id>`:
-- nothing about the patient); a row is written only after its object was stored.

CREATE TABLE files (
    id           uuid PRIMARY KEY,
    group_id     uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    topic_id     uuid REFERENCES topics (id) ON DELETE CASCADE,
    comment_id   uuid REFERENCES comments (id) ON DELETE CASCADE,
    -- What the seed's shared documents are: 検査結果, 処方内容, 情報提供書, ケアプラン, 画像, その他.
    kind         text NOT NULL CHECK (kind IN (
                     'test_result', 'prescription', 'referral', 'care_plan', 'image', 'other')),
    name         text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 120),
    content_type text NOT NULL CHECK (char_length(content_type) <= 100),
    size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
    sha256       bytea NOT NULL CHECK (length(sha256) = 32),
    object_key   text NOT NULL UNIQUE,
    uploaded_by  uuid NOT NULL,
    uploaded_at  timestamptz NOT NULL DEFAULT now(),
    -- Deleting hides a file at once; its object is removed by the sweeper.
    deleted_at   timestamptz,
    deleted_by   uuid,
    -- Uploaded for a comment not posted yet.
    pending      boolean NOT NULL DEFAULT false,
    -- Photos: their pixel size, and whether `<object_key>.p` (preview) and `.t` (thumbnail)
    -- exist.
    width        integer,
    height       integer,
    has_preview  boolean NOT NULL DEFAULT false,
    -- Text extracted from PDFs and text files, for search.
    text_content text,
    CHECK (comment_id IS NULL OR topic_id IS NOT NULL),
    CHECK (NOT (pending AND comment_id IS NOT NULL))
);
CREATE INDEX files_group ON files (group_id, uploaded_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX files_deleted ON files (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX files_comment ON files (comment_id) WHERE comment_id IS NOT NULL;
CREATE INDEX files_pending ON files (uploaded_at) WHERE pending;

-- Objects being written whose row is not committed yet. A crash or a failed commit leaves the
-- intent behind; the sweeper removes its object (if any) after a grace period.
CREATE TABLE file_uploads (
    object_key text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now()
);
