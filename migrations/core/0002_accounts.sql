-- People, the facilities they work at, and their memberships in associations.
-- One global account per person: a hospital doctor is one person in several associations.

CREATE TABLE core.users (
    id                  uuid PRIMARY KEY,
    email               text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    name                text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    name_kana           text NOT NULL CHECK (char_length(name_kana) BETWEEN 1 AND 100),
    profession          text NOT NULL CHECK (profession IN (
                            'physician', 'dentist', 'pharmacist', 'nurse', 'assistant_nurse',
                            'public_health_nurse', 'physical_therapist', 'occupational_therapist',
                            'speech_therapist', 'dietitian', 'care_manager', 'social_worker',
                            'care_worker', 'clerk', 'other')),
    -- For physicians and dentists: a collaborating clinic doctor (連携医) or a hospital doctor.
    doctor_kind         text CHECK (doctor_kind IN ('clinic', 'hospital')),
    password_hash       text,
    password_changed_at timestamptz,
    totp_secret         bytea,
    totp_enabled_at     timestamptz,
    -- Last TOTP time step accepted: a code is never accepted twice.
    totp_last_step      bigint,
    status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    platform_operator   boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CHECK ((profession IN ('physician', 'dentist')) = (doctor_kind IS NOT NULL))
);
CREATE UNIQUE INDEX users_email_key ON core.users (lower(email));

CREATE TABLE core.recovery_codes (
    user_id   uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL,
    used_at   timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE core.passkeys (
    id           bytea PRIMARY KEY,
    user_id      uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    name         text NOT NULL DEFAULT '',
    credential   jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);
CREATE INDEX passkeys_user ON core.passkeys (user_id);

CREATE TABLE core.facilities (
    id             uuid PRIMARY KEY,
    association_id uuid NOT NULL REFERENCES core.associations (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    kind           text NOT NULL CHECK (kind IN (
                       'clinic', 'hospital', 'visiting_nurse_station', 'care_management_office',
                       'pharmacy', 'care_facility', 'other')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (association_id, name)
);

CREATE TABLE core.memberships (
    user_id        uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    association_id uuid NOT NULL REFERENCES core.associations (id) ON DELETE CASCADE,
    role           text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin')),
    facility_id    uuid REFERENCES core.facilities (id) ON DELETE SET NULL,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'deactivated')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, association_id)
);
CREATE INDEX memberships_association ON core.memberships (association_id, status);

-- Sessions: web (cookie) and API (bearer). Only a hash of the token is stored.
CREATE TABLE core.sessions (
    id                  uuid PRIMARY KEY,
    token_hash          bytea NOT NULL UNIQUE,
    user_id             uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    kind                text NOT NULL CHECK (kind IN ('web', 'api')),
    -- A password alone opens a half session that may only complete the second factor.
    second_factor_done  boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz NOT NULL DEFAULT now(),
    -- The idle timeout in force when the session began (the strictest of the person's associations).
    idle_seconds        integer NOT NULL CHECK (idle_seconds > 0),
    idle_expires_at     timestamptz NOT NULL,
    absolute_expires_at timestamptz NOT NULL,
    ip                  text NOT NULL DEFAULT '',
    user_agent          text NOT NULL DEFAULT '',
    revoked_at          timestamptz
);
CREATE INDEX sessions_user ON core.sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE core.invitations (
    id             uuid PRIMARY KEY,
    token_hash     bytea NOT NULL UNIQUE,
    association_id uuid NOT NULL REFERENCES core.associations (id) ON DELETE CASCADE,
    email          text,
    role           text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin')),
    facility_id    uuid REFERENCES core.facilities (id) ON DELETE SET NULL,
    invited_by     uuid REFERENCES core.users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    accepted_at    timestamptz,
    accepted_by    uuid REFERENCES core.users (id) ON DELETE SET NULL,
    revoked_at     timestamptz
);

CREATE TABLE core.password_resets (
    token_hash bytea PRIMARY KEY,
    user_id    uuid NOT NULL REFERENCES core.users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
