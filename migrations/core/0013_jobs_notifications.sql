-- Background work that must survive restarts and replicas: one queue for the deployment.
-- Workers claim due jobs with FOR UPDATE SKIP LOCKED and hold them for a lease; a job whose
-- lease ran out was interrupted (the process died). It runs again, unless it had begun to act
-- on the outside world (`effects_started_at`: a mail handed to the mail server) and its kind is
-- not safe to repeat: then it fails, so that a mail is never sent twice.
CREATE TABLE core.jobs (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 64),
    -- The same key is enqueued once: replicas scheduling the same work agree on one job.
    dedupe_key   text UNIQUE CHECK (char_length(dedupe_key) <= 200),
    payload      jsonb NOT NULL DEFAULT '{}',
    state        text NOT NULL DEFAULT 'pending'
                 CHECK (state IN ('pending', 'running', 'done', 'failed')),
    run_at       timestamptz NOT NULL,
    attempts     integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    locked_until timestamptz,
    effects_started_at timestamptz,
    last_error   text CHECK (char_length(last_error) <= 500),
    created_at   timestamptz NOT NULL,
    finished_at  timestamptz
);
CREATE INDEX jobs_due ON core.jobs (run_at) WHERE state = 'pending';
CREATE INDEX jobs_leased ON core.jobs (locked_until) WHERE state = 'running';
CREATE INDEX jobs_finished ON core.jobs (finished_at) WHERE state IN ('done', 'failed');

-- How a person wants to hear of unread comments by e-mail. No row: the defaults.
CREATE TABLE core.notification_settings (
    user_id       uuid PRIMARY KEY REFERENCES core.users (id) ON DELETE CASCADE,
    email_mode    text NOT NULL DEFAULT 'immediate'
                  CHECK (email_mode IN ('immediate', 'hourly', 'daily', 'off')),
    -- For `daily`: the time of day, Asia/Tokyo.
    daily_at      time NOT NULL DEFAULT '18:00',
    -- Unread comments up to this moment have been told of (or were there before the person
    -- chose to be told); a digest speaks of what came after.
    told_until    timestamptz NOT NULL,
    -- Set when something new arrived that no digest has spoken of yet.
    pending_since timestamptz,
    last_sent_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_settings_pending ON core.notification_settings (pending_since)
    WHERE pending_since IS NOT NULL;

-- Groups a person hears nothing about by e-mail (they still count on the home page).
CREATE TABLE core.notification_mutes (
    user_id    uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    group_id   uuid NOT NULL REFERENCES core.groups (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, group_id)
);

-- What was sent to a person and when (their in-app list). The text is kept so that a retry
-- after a refused delivery sends exactly the same mail; it never holds patient information.
CREATE TABLE core.notifications (
    id         bigserial PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    job_id     bigint UNIQUE,
    channel    text NOT NULL CHECK (channel IN ('email', 'push')),
    kind       text NOT NULL CHECK (char_length(kind) BETWEEN 1 AND 32),
    -- sending: handed to the mail server (or about to be); interrupted: the process died
    -- meanwhile, so it may or may not have gone, and is not sent again.
    state      text NOT NULL CHECK (state IN ('sending', 'sent', 'retrying', 'failed', 'interrupted')),
    subject    text NOT NULL DEFAULT '',
    body       text NOT NULL DEFAULT '',
    unread     integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    sent_at    timestamptz
);
CREATE INDEX notifications_user ON core.notifications (user_id, id DESC);

-- Per association: group activity up to this moment has been looked at for notifications.
CREATE TABLE core.notification_cursors (
    association_id uuid PRIMARY KEY REFERENCES core.associations (id) ON DELETE CASCADE,
    seen_until     timestamptz NOT NULL
);
