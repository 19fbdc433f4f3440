-- Groups, topics, comments, footprints and unread counters of the groups this association hosts.
-- Ids of people refer to core.users; membership is core.group_members.

-- How readers of a comment are shown: footprints (who read, when), acknowledgement only
-- (a 「確認しました」 button), or nothing. The association's default; a group may override it.
ALTER TABLE settings ADD COLUMN receipt_mode text NOT NULL DEFAULT 'footprints'
    CHECK (receipt_mode IN ('footprints', 'ack', 'off'));

CREATE TABLE groups (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL CHECK (kind IN ('general', 'patient')),
    name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    description      text NOT NULL DEFAULT '' CHECK (char_length(description) <= 2000),
    -- Patient groups are by invitation only; a general group may accept requests to join.
    join_policy      text NOT NULL DEFAULT 'invite' CHECK (join_policy IN ('invite', 'request')),
    receipt_mode     text CHECK (receipt_mode IN ('footprints', 'ack', 'off')),
    created_by       uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_activity_at timestamptz NOT NULL DEFAULT now(),
    CHECK (kind = 'general' OR join_policy = 'invite')
);

CREATE TABLE topics (
    id              uuid PRIMARY KEY,
    group_id        uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    author_id       uuid NOT NULL,
    title           text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    -- Who may see it, as bits (see core.scope_bit); 7 is everyone in the group.
    scope           smallint NOT NULL DEFAULT 7 CHECK (scope BETWEEN 1 AND 7),
    pinned          boolean NOT NULL DEFAULT false,
    closed          boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The topic's body is its comment number 1; comments are numbered in order.
    last_seq        integer NOT NULL DEFAULT 0,
    last_comment_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX topics_group ON topics (group_id, pinned DESC, last_comment_at DESC);

CREATE TABLE comments (
    id         uuid PRIMARY KEY,
    topic_id   uuid NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    group_id   uuid NOT NULL,
    seq        integer NOT NULL CHECK (seq > 0),
    author_id  uuid NOT NULL,
    body       text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 10000),
    important  boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    edited_at  timestamptz,
    version    integer NOT NULL DEFAULT 1,
    -- A deleted comment keeps its row (for the audit trail) and shows a "deleted" mark.
    deleted_at timestamptz,
    deleted_by uuid,
    UNIQUE (topic_id, seq)
);

-- Earlier versions of edited comments, shown as history.
CREATE TABLE comment_versions (
    comment_id uuid NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    version    integer NOT NULL,
    body       text NOT NULL,
    important  boolean NOT NULL,
    written_at timestamptz NOT NULL,
    PRIMARY KEY (comment_id, version)
);

-- 足跡: when each person first read each comment.
CREATE TABLE footprints (
    comment_id uuid NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL,
    read_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (comment_id, user_id)
);

-- 「確認しました」 in groups whose read-receipt mode is acknowledgement.
CREATE TABLE acknowledgements (
    comment_id uuid NOT NULL REFERENCES comments (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL,
    at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (comment_id, user_id)
);

-- Unread counters: one row per person and topic with something unread, kept up to date on
-- every write, so counts and the home page never scan comments.
CREATE TABLE unread (
    user_id   uuid NOT NULL,
    topic_id  uuid NOT NULL REFERENCES topics (id) ON DELETE CASCADE,
    group_id  uuid NOT NULL,
    count     integer NOT NULL CHECK (count > 0),
    -- The first comment this person has not read.
    first_seq integer NOT NULL,
    last_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, topic_id)
);
CREATE INDEX unread_user_group ON unread (user_id, group_id);
