-- The job loop claims the due 至急 notices and pushes before the digests. After a schedule
-- run thousands of digests are pending and due, and on `jobs_due` alone that claim walked
-- past every one of them (reading each row for its kind) to find that nothing else was due.
-- This index holds only what is not a digest, so the claim is one short descent. The claim's
-- text names the kind as a literal, as the planner needs to use a partial index.
CREATE INDEX jobs_due_prompt ON core.jobs (run_at, id)
    WHERE state = 'pending' AND kind <> 'notify.digest';
