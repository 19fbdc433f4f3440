-- Group calendars and the on-call duty rotation (当番). Events follow their group's rules: its
-- members see them, and a patient group's events are patient information. Days and times are
-- Asia/Tokyo wall time (no daylight saving since 1951): plain `date` and `time` columns.

CREATE TABLE calendar_events (
    id         uuid PRIMARY KEY,
    group_id   uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    -- 不在, 当番, 訪問, 担当者会議, その他 (absences proper are core.absences; this category is for
    -- a clinic's closure and the like).
    category   text NOT NULL CHECK (category IN ('absence', 'duty', 'visit', 'conference', 'other')),
    title      text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 100),
    -- The (first) occurrence's days, inclusive.
    first_day  date NOT NULL,
    last_day   date NOT NULL,
    -- NULL: all day.
    starts_at  time,
    ends_at    time,
    -- A recurrence rule (RFC 5545 RRULE, the subset musubi_calendar::recurrence knows), and
    -- the last day an occurrence may start (NULL: no end) so that a month's query finds
    -- series without expanding them.
    rrule      text CHECK (char_length(rrule) <= 500),
    until_day  date,
    place      text NOT NULL DEFAULT '' CHECK (char_length(place) <= 200),
    notes      text NOT NULL DEFAULT '' CHECK (char_length(notes) <= 2000),
    created_by uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version    integer NOT NULL DEFAULT 1,
    CHECK (last_day >= first_day AND last_day - first_day < 366),
    CHECK ((starts_at IS NULL) = (ends_at IS NULL)),
    CHECK (starts_at IS NULL OR first_day < last_day OR ends_at > starts_at),
    CHECK (rrule IS NOT NULL OR until_day IS NULL)
);
CREATE INDEX calendar_events_group ON calendar_events (group_id, first_day);
CREATE INDEX calendar_events_series ON calendar_events (group_id, until_day) WHERE rrule IS NOT NULL;

-- Occurrences of a series that were cancelled (EXDATE).
CREATE TABLE calendar_exceptions (
    event_id uuid NOT NULL REFERENCES calendar_events (id) ON DELETE CASCADE,
    day      date NOT NULL,
    PRIMARY KEY (event_id, day)
);

-- The shape of a group's duty: which kinds (day, night) exist on weekdays and on weekends and
-- holidays; a group has a rotation once this row exists.
CREATE TABLE duty_settings (
    group_id            uuid PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    weekday_kinds       text[] NOT NULL DEFAULT '{night}',
    weekend_kinds       text[] NOT NULL DEFAULT '{day,night}',
    saturday_is_weekend boolean NOT NULL DEFAULT true,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (weekday_kinds <@ '{day,night}' AND weekend_kinds <@ '{day,night}')
);

-- Who takes part, and what they asked for. Weekdays are bit sets, Monday = 1 … Sunday = 64.
CREATE TABLE duty_participants (
    group_id             uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id              uuid NOT NULL,
    unavailable_weekdays smallint NOT NULL DEFAULT 0 CHECK (unavailable_weekdays BETWEEN 0 AND 127),
    preferred_weekdays   smallint NOT NULL DEFAULT 0 CHECK (preferred_weekdays BETWEEN 0 AND 127),
    max_per_month        smallint CHECK (max_per_month BETWEEN 1 AND 62),
    no_nights            boolean NOT NULL DEFAULT false,
    -- How the doctor on duty is reached (shown with "today's on-call doctor").
    contact              text NOT NULL DEFAULT '' CHECK (char_length(contact) <= 40),
    PRIMARY KEY (group_id, user_id)
);

-- A month's rotation: a draft seen by the group's owners, then published to everyone.
CREATE TABLE duty_months (
    group_id     uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    month        date NOT NULL CHECK (extract(day FROM month) = 1),
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
    -- Where the month is discussed (「連携の日程調整」).
    topic_id     uuid REFERENCES topics (id) ON DELETE SET NULL,
    published_at timestamptz,
    published_by uuid,
    version      integer NOT NULL DEFAULT 1,
    PRIMARY KEY (group_id, month)
);

-- One row per slot of a month; `user_id` NULL is a slot nobody covers (shown loudly).
CREATE TABLE duties (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    day      date NOT NULL,
    kind     text NOT NULL CHECK (kind IN ('day', 'night')),
    class    text NOT NULL CHECK (class IN ('weekday', 'weekend', 'holiday')),
    user_id  uuid,
    PRIMARY KEY (group_id, day, kind)
);
CREATE INDEX duties_user ON duties (user_id, day) WHERE user_id IS NOT NULL;

-- A doctor asks a colleague to take a slot (or to exchange it for one of theirs).
CREATE TABLE duty_swaps (
    id          uuid PRIMARY KEY,
    group_id    uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    day         date NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('day', 'night')),
    from_user   uuid NOT NULL,
    to_user     uuid NOT NULL,
    -- The colleague's slot taken in exchange, if any.
    other_day   date,
    other_kind  text CHECK (other_kind IN ('day', 'night')),
    status      text NOT NULL DEFAULT 'requested'
                CHECK (status IN ('requested', 'accepted', 'declined', 'cancelled')),
    note        text NOT NULL DEFAULT '' CHECK (char_length(note) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    decided_at  timestamptz,
    CHECK (from_user <> to_user),
    CHECK ((other_day IS NULL) = (other_kind IS NULL))
);
-- One open request per slot.
CREATE UNIQUE INDEX duty_swaps_open ON duty_swaps (group_id, day, kind) WHERE status = 'requested';
CREATE INDEX duty_swaps_to ON duty_swaps (to_user) WHERE status = 'requested';
