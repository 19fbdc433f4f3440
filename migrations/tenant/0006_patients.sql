-- The patient register (患者台帳): one entry per patient group, in the fixed format of the
-- registration form. The `*_folded` columns hold `musubi_types::japanese::fold` of their
-- source, written by Musubi (never computed in SQL, so that Rust's and PostgreSQL's Unicode
-- tables cannot disagree about a match).

CREATE TABLE patients (
    id              uuid PRIMARY KEY,
    group_id        uuid NOT NULL UNIQUE REFERENCES groups (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 60),
    name_kana       text NOT NULL CHECK (char_length(name_kana) BETWEEN 1 AND 60),
    -- fold(name) || E'\n' || fold(name_kana): searched by substring (fold removes line breaks,
    -- so no query can match across the two).
    name_folded     text NOT NULL,
    -- fold(name_kana): the order of the register.
    kana_folded     text NOT NULL,
    birth_date      date NOT NULL CHECK (birth_date >= DATE '1868-01-25'),
    sex             text NOT NULL CHECK (sex IN ('male', 'female', 'other')),
    postal_code     text NOT NULL DEFAULT '' CHECK (postal_code ~ '^([0-9]{3}-[0-9]{4})?$'),
    address         text NOT NULL DEFAULT '' CHECK (char_length(address) <= 200),
    -- The town (町名) part of the address, for the town filter.
    town            text NOT NULL DEFAULT '' CHECK (char_length(town) <= 60),
    town_folded     text NOT NULL DEFAULT '',
    phone           text NOT NULL DEFAULT '' CHECK (char_length(phone) <= 30),
    -- 主治医: a person (core.users), a member of the group when chosen.
    physician_id    uuid,
    diagnoses       text NOT NULL DEFAULT '' CHECK (char_length(diagnoses) <= 500),
    care_level      text NOT NULL DEFAULT 'none' CHECK (care_level IN (
                        'none', 'applying', 'support1', 'support2',
                        'care1', 'care2', 'care3', 'care4', 'care5')),
    key_person      text NOT NULL DEFAULT '' CHECK (char_length(key_person) <= 100),
    family_contact  text NOT NULL DEFAULT '' CHECK (char_length(family_contact) <= 200),
    care_manager    text NOT NULL DEFAULT '' CHECK (char_length(care_manager) <= 100),
    nurse_station   text NOT NULL DEFAULT '' CHECK (char_length(nurse_station) <= 100),
    pharmacy        text NOT NULL DEFAULT '' CHECK (char_length(pharmacy) <= 100),
    status          text NOT NULL DEFAULT 'home'
                        CHECK (status IN ('home', 'hospital', 'facility', 'ended')),
    status_since    date,
    end_reason      text CHECK (end_reason IN ('death', 'moved', 'other')),
    notes           text NOT NULL DEFAULT '' CHECK (char_length(notes) <= 2000),
    -- The patient's consent to sharing: needed before anyone from outside the registrant's
    -- facility joins the group.
    consent_date    date,
    consent_by      text NOT NULL DEFAULT '' CHECK (char_length(consent_by) <= 100),
    consent_scope   text NOT NULL DEFAULT '' CHECK (char_length(consent_scope) <= 500),
    -- The registrant's facility in this association (core.facilities), when they had one.
    facility_id     uuid,
    registered_by   uuid NOT NULL,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- Edits name the version they started from; a stale one is refused, not overwritten.
    version         integer NOT NULL DEFAULT 1,
    CHECK ((status = 'ended') = (end_reason IS NOT NULL)),
    CHECK ((consent_date IS NULL) = (consent_by = ''))
);

-- A patient group whose care has ended is kept read-only: its members still read it, nobody
-- writes in it; reopened if the status changes back.
ALTER TABLE groups ADD COLUMN archived_at timestamptz;

-- Keyset pages in each order the list offers.
CREATE INDEX patients_kana ON patients (kana_folded, id);
CREATE INDEX patients_birth ON patients (birth_date, id);
CREATE INDEX patients_registered ON patients (registered_at, id);
CREATE INDEX patients_physician ON patients (physician_id) WHERE physician_id IS NOT NULL;
