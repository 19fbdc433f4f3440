-- The register's list filters by the registering facility, and its filter offers the
-- facilities that appear in the register: both read this index (a loose scan over its
-- distinct values stays cheap with 100,000 entries).
CREATE INDEX patients_facility ON patients (facility_id) WHERE facility_id IS NOT NULL;

-- 「最近の動きの順」 over a whole register walks the groups by activity instead of sorting every
-- entry (31 ms for 100,000 entries without it). It costs each new comment one more index
-- entry for its group's row.
CREATE INDEX groups_last_activity ON groups (last_activity_at);

-- The register's name search looks up patients' entries of the search index alone: a small
-- index of its own keeps that lookup off the comments' entries, which outnumber them.
CREATE INDEX search_docs_patient_grams ON search_docs USING gin (grams) WHERE kind = 'patient';
