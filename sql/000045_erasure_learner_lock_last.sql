-- An erasure takes its learner lock last, after the org's locks.
--
-- sql/000042 had it take the exclusive per-learner write lock first and then
-- wait for the org's locks: its analytics recomputes (sql/000038), a cohort
-- discovery (sql/000041) and a rollup chunk (the org's rollup row,
-- sql/000010). Those can take seconds, and the learner locks are 64 keys
-- shared by every org's batches, so meanwhile every batch naming a learner
-- hashed to that key waited, in any org, and with group commit so did the
-- batches coalesced with it: an admin of one org erasing a made-up user held
-- up other orgs' ingestion for as long as their own org's work ran.
--
-- Batches take no org lock, so taking the org's locks first cannot deadlock
-- with them; the erasure then holds the learner lock only while it deletes.
-- erase_learner_everywhere takes the same org locks again, which its own
-- transaction already holds.
create or replace function erase_learner(p_org text, p_user text, p_requested_by text default null,
                                         p_job_id text default null, p_requested_at timestamptz default null)
returns jsonb
language plpgsql as $$
begin
  perform pg_advisory_xact_lock(analytics_org_lock_key(p_org));
  perform pg_advisory_xact_lock(19531, hashtext(p_org));
  perform rollup_lock_org(p_org);
  perform pg_advisory_xact_lock(learner_write_lock_class(), learner_write_lock(p_user));
  return erase_learner_everywhere(p_org, p_user, p_requested_by, p_job_id, p_requested_at);
end $$;
