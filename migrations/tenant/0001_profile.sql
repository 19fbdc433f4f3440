-- What an association says about itself on the landing page (one row per schema).
CREATE TABLE profile (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    area        text NOT NULL DEFAULT '' CHECK (char_length(area) <= 100),
    description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 2000),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO profile DEFAULT VALUES;
