-- An erasure removes the learner's assignments in the org too.
--
-- They were kept as the org's enrolment records, for an admin to remove; but
-- the API has no route that removes one, so an erased learner stayed on the
-- roster for good: counted by the next cohort discovery (as a learner with no
-- activity), and their id kept in a table the contract's "everywhere" covers.
-- They now go last, after the instructors' analytics that they locate (an
-- instructor of a course the learner took loses theirs), in the same
-- transaction and under the same locks, and the receipt counts them. An LMS
-- that assigns the learner again makes a new, empty enrolment.
--
-- A wrapper, as in sql/000038: the erasure as it was runs first, whole. No
-- lock is added: upsert_assignments holds its lock for its own statement and
-- takes none of the erasure's, so the two queue on the rows and cannot deadlock.
alter function erase_learner(text, text, text, text, timestamptz) rename to erase_learner_keeping_assignments;

create function erase_learner(p_org text, p_user text, p_requested_by text default null,
                              p_job_id text default null, p_requested_at timestamptz default null)
returns jsonb
language plpgsql as $$
declare
  v_removed jsonb;
  v_assignments bigint;
begin
  v_removed := erase_learner_keeping_assignments(p_org, p_user, p_requested_by, p_job_id, p_requested_at);
  with gone as (delete from assignments where org_id = p_org and user_id = p_user returning 1)
  select count(*) into v_assignments from gone;

  v_removed := v_removed || jsonb_build_object('assignments', v_assignments);
  update erasure_receipts set rows_removed = v_removed
  where id = (select max(id) from erasure_receipts where org_id = p_org and user_id = p_user);
  return v_removed;
end $$;
