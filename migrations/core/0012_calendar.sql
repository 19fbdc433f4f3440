-- A person's absences (不在): about the person, not about a patient, and the same for every group
-- they are in, so they live here with the directory. Whoever shares an active group with the
-- person sees them on that group's calendar and next to their name on its duty rotation.
-- Days are Asia/Tokyo dates; a half day (`am`, `pm`) blocks day duty but not night duty.
CREATE TABLE core.absences (
    id         uuid PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    first_day  date NOT NULL,
    last_day   date NOT NULL,
    part       text NOT NULL DEFAULT 'all' CHECK (part IN ('all', 'am', 'pm')),
    note       text NOT NULL DEFAULT '' CHECK (char_length(note) <= 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (last_day >= first_day AND last_day - first_day < 366),
    -- Half days are single days.
    CHECK (part = 'all' OR first_day = last_day)
);
CREATE INDEX absences_user ON core.absences (user_id, last_day);

-- Personal iCalendar feeds: a secret address per feed (only its hash is kept), revocable.
-- Patient names appear in a feed only when its owner chose so for that feed.
CREATE TABLE core.calendar_feeds (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    token_hash         bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    with_patient_names boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    last_used_at       timestamptz,
    revoked_at         timestamptz
);
CREATE INDEX calendar_feeds_user ON core.calendar_feeds (user_id) WHERE revoked_at IS NULL;
