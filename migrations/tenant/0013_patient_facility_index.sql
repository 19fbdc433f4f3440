-- The register's list filters by the registering facility, and its filter offers the
-- facilities that appear in the register: both read this index (a loose scan over its
-- distinct values stays cheap with 100,000 entries).
CREATE INDEX patients_facility ON patients (facility_id) WHERE facility_id IS NOT NULL;
