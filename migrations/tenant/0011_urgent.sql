-- 至急: a comment that asks named people (or, in a patient group, the attending doctor) to
-- acknowledge it. Unacknowledged after the association's time it is notified again, and after
-- twice that time it goes to the doctor on duty from the calendar. Every step is kept and
-- shown on the comment.
ALTER TABLE settings ADD COLUMN urgent_ack_minutes integer NOT NULL DEFAULT 15
    CHECK (urgent_ack_minutes BETWEEN 5 AND 240);

CREATE TABLE urgent_requests (
    comment_id      uuid PRIMARY KEY REFERENCES comments (id) ON DELETE CASCADE,
    group_id        uuid NOT NULL,
    topic_id        uuid NOT NULL,
    author_id       uuid NOT NULL,
    created_at      timestamptz NOT NULL,
    -- asked → reminded → escalated, or acknowledged at any point.
    stage           text NOT NULL DEFAULT 'asked'
                    CHECK (stage IN ('asked', 'reminded', 'escalated', 'acknowledged')),
    remind_at       timestamptz NOT NULL,
    escalate_at     timestamptz NOT NULL,
    acknowledged_by uuid,
    acknowledged_at timestamptz,
    CHECK (escalate_at > remind_at AND remind_at > created_at)
);
CREATE INDEX urgent_requests_topic ON urgent_requests (topic_id);
-- What the schedule looks for: requests still waiting.
CREATE INDEX urgent_requests_waiting ON urgent_requests (remind_at)
    WHERE stage IN ('asked', 'reminded');

-- Who is asked: named by the author, the attending doctor, or the doctor on duty (escalation).
CREATE TABLE urgent_recipients (
    comment_id uuid NOT NULL REFERENCES urgent_requests (comment_id) ON DELETE CASCADE,
    user_id    uuid NOT NULL,
    reason     text NOT NULL CHECK (reason IN ('named', 'attending', 'on_call')),
    added_at   timestamptz NOT NULL,
    PRIMARY KEY (comment_id, user_id)
);

-- The timeline shown on the comment.
CREATE TABLE urgent_steps (
    id         bigserial PRIMARY KEY,
    comment_id uuid NOT NULL REFERENCES urgent_requests (comment_id) ON DELETE CASCADE,
    step       text NOT NULL CHECK (step IN ('asked', 'reminded', 'escalated', 'no_one_on_call',
                                            'acknowledged')),
    user_id    uuid,
    at         timestamptz NOT NULL
);
CREATE INDEX urgent_steps_comment ON urgent_steps (comment_id, id);
