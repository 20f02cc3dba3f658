-- An erasure removes the learner's assignments in the org too.
--
-- They were kept as the org's enrolment records, for an admin to remove; but
-- the API has no route that removes one, so an erased learner stayed on the
-- roster for good: counted by the next cohort discovery (as a learner with no
-- activity), and their id kept in a table the contract's "everywhere" covers.
-- They now go last, after the instructors' analytics that they locate (an
-- instructor of a course the learner took loses theirs), and the receipt
-- counts them. An LMS that assigns the learner again makes a new, empty
-- enrolment.
--
-- No lock is added: upsert_assignments holds its lock for its own statement
-- and takes none of the erasure's, so the two queue on the rows and cannot
-- deadlock.
create or replace function erase_learner(p_org text, p_user text, p_requested_by text default null,
                                         p_job_id text default null, p_requested_at timestamptz default null)
returns jsonb
language plpgsql as $$
declare
  v_removed jsonb;
  v_aggregates bigint;
  v_runs bigint;
  v_assignments bigint;
begin
  perform pg_advisory_xact_lock(analytics_org_lock_key(p_org));
  -- A cohort discovery of the org stages every learner's traits and stores
  -- them in one transaction under this lock (sql/000027): wait for it, or it
  -- would store the erased learner's traits after this commits.
  perform pg_advisory_xact_lock(19531, hashtext(p_org));
  v_removed := erase_learner_unlocked(p_org, p_user, p_requested_by, p_job_id, p_requested_at);

  -- The admins' figures are org-wide; an instructor's cover the courses they
  -- teach, so only those who teach a course the learner was assigned to lose theirs.
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
  with gone as (delete from assignments where org_id = p_org and user_id = p_user returning 1)
  select count(*) into v_assignments from gone;

  v_removed := v_removed || jsonb_build_object('org_aggregate_analytics', v_aggregates, 'worker_runs', v_runs, 'assignments', v_assignments);
  update erasure_receipts set rows_removed = v_removed
  where id = (select max(id) from erasure_receipts where org_id = p_org and user_id = p_user);
  return v_removed;
end $$;
