-- Web push (RFC 8030/8291/8292): the browsers a person asked to be notified on. A push says only
-- that something new arrived (never patient information); its endpoint is the push service's
-- address for that browser, checked against an allow-list of push services before it is kept.
CREATE TABLE core.push_subscriptions (
    id              uuid PRIMARY KEY,
    user_id         uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    -- One browser's subscription belongs to whoever subscribed it last.
    endpoint        text NOT NULL UNIQUE CHECK (char_length(endpoint) BETWEEN 12 AND 1024),
    -- The browser's P-256 public key (uncompressed point) and its 16-byte auth secret.
    p256dh          bytea NOT NULL CHECK (length(p256dh) = 65),
    auth            bytea NOT NULL CHECK (length(auth) = 16),
    -- A short label for the settings page ("iPhone / Safari"), not the whole User-Agent.
    user_agent      text NOT NULL DEFAULT '' CHECK (char_length(user_agent) <= 64),
    created_at      timestamptz NOT NULL,
    last_success_at timestamptz,
    -- Deliveries that failed since the last one that went through.
    failures        integer NOT NULL DEFAULT 0 CHECK (failures >= 0)
);
CREATE INDEX push_subscriptions_user ON core.push_subscriptions (user_id, created_at);

-- The deployment's VAPID key (P-256 private scalar) when none is configured: generated once,
-- shared by every replica. A single row.
CREATE TABLE core.vapid_keys (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    private_key bytea NOT NULL CHECK (length(private_key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
