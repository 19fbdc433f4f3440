-- Association policy, set by its administrators.
CREATE TABLE settings (
    singleton                boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    require_second_factor    boolean NOT NULL DEFAULT false,
    session_idle_minutes     integer NOT NULL DEFAULT 60 CHECK (session_idle_minutes BETWEEN 5 AND 1440),
    session_absolute_hours   integer NOT NULL DEFAULT 12 CHECK (session_absolute_hours BETWEEN 1 AND 720),
    audit_retention_years    integer NOT NULL DEFAULT 5 CHECK (audit_retention_years BETWEEN 1 AND 30),
    updated_at               timestamptz NOT NULL DEFAULT now()
);
INSERT INTO settings DEFAULT VALUES;
