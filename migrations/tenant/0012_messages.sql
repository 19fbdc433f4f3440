-- Direct messages are groups of kind 'direct' (see core migration 0015).
ALTER TABLE groups DROP CONSTRAINT groups_kind_check;
ALTER TABLE groups ADD CONSTRAINT groups_kind_check CHECK (kind IN ('general', 'patient', 'direct'));
