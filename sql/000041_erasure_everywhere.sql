-- Erasure reaches what was computed from the learner and where their id was
-- logged (contract section 5: "removes their events, progress and analytics
-- everywhere"):
--
-- 1. The org's admin analytics, the analytics of instructors of the learner's
--    courses, and the org's cohorts are aggregates over its learners (average
--    scores, started learners, daily active users, archetype counts and
--    centroids), stored and served as fresh for up to STALE_AFTER_MS. They kept
--    the erased learner's share until then. They are now deleted with the
--    learner, so the next read computes them from what remains (status
--    `calculating`); every API instance drops its cached analytics (the delete
--    trigger of sql/000038), cohorts are not cached. A cohort discovery running
--    meanwhile is waited for.
-- 2. worker_runs kept each analytics recompute's summary, which names the
--    user, for good. Those runs go too (the erasure job no longer names the
--    user in its own run; its receipt does).
--
-- The receipt counts them as org_aggregate_analytics (analytics rows and cohort
-- runs) and worker_runs.

-- Recompute runs name their user in summary; erasure finds them by it.
create index worker_runs_by_user on worker_runs ((summary ->> 'userId')) where summary ? 'userId';

create or replace function erase_learner(p_org text, p_user text, p_requested_by text default null,
                                         p_job_id text default null, p_requested_at timestamptz default null)
returns jsonb
language plpgsql as $$
declare
  v_removed jsonb;
  v_aggregates bigint;
  v_runs bigint;
begin
  perform pg_advisory_xact_lock(analytics_org_lock_key(p_org));
  -- A cohort discovery of the org stages every learner's traits and stores
  -- them in one transaction under this lock (sql/000027): wait for it, or it
  -- would store the erased learner's traits after this commits.
  perform pg_advisory_xact_lock(19531, hashtext(p_org));
  v_removed := erase_learner_unlocked(p_org, p_user, p_requested_by, p_job_id, p_requested_at);

  -- The admins' figures are org-wide; an instructor's cover the courses they
  -- teach, so only those who teach a course the learner was assigned to
  -- (assignments are kept) lose theirs.
  with analytics as (
         delete from learner_analytics a
         where a.org_id = p_org
           and (a.role = 'admin'
                or (a.role = 'instructor' and exists (
                      select 1 from assignments taught
                      join assignments learnt on learnt.org_id = taught.org_id and learnt.course_id = taught.course_id
                      where taught.org_id = p_org and taught.user_id = a.user_id and taught.role = 'instructor'
                        and learnt.user_id = p_user)))
         returning 1),
       cohorts as (delete from cohort_runs where org_id = p_org returning 1)
  select (select count(*) from analytics) + (select count(*) from cohorts) into v_aggregates;
  with gone as (delete from worker_runs where summary ? 'userId' and summary ->> 'userId' = p_user and summary ->> 'orgId' = p_org returning 1)
  select count(*) into v_runs from gone;

  v_removed := v_removed || jsonb_build_object('org_aggregate_analytics', v_aggregates, 'worker_runs', v_runs);
  update erasure_receipts set rows_removed = v_removed
  where id = (select max(id) from erasure_receipts where org_id = p_org and user_id = p_user);
  return v_removed;
end $$;
