-- Passkey (WebAuthn) ceremonies between their two steps: the challenge and the state webauthn-rs
-- needs to check the browser's answer. Kept here rather than in memory so that any replica can
-- finish what another started. A ceremony is deleted when it is finished (single use) and lives
-- five minutes; expired rows are removed whenever a new ceremony starts.
CREATE TABLE core.webauthn_ceremonies (
    id         uuid PRIMARY KEY,
    kind       text NOT NULL CHECK (kind IN ('registration', 'sign_in')),
    -- Who is registering a passkey; NULL for a sign-in, where nobody is known yet.
    user_id    uuid REFERENCES core.users (id) ON DELETE CASCADE,
    state      jsonb NOT NULL,
    expires_at timestamptz NOT NULL,
    CHECK ((kind = 'registration') = (user_id IS NOT NULL))
);
CREATE INDEX webauthn_ceremonies_expires ON core.webauthn_ceremonies (expires_at);
