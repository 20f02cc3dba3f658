-- Assignments are dated in the order they commit.
--
-- An event whose token names no org goes to the user's oldest matching
-- assignment (sql/000039), so that a retry lands where the first send did.
-- But assigned_at was now(), the time its transaction began: an assignment
-- of org A begun first and committed after one of org B was still the older.
-- An event sent between the two commits was stored under B (the only one
-- visible), and its retry after A's commit under A: one event, stored and
-- counted twice.
--
-- upsert_assignments takes one lock for all assignment writes, held to
-- commit, and dates each new row after taking it (clock_timestamp()), so a
-- later-dated assignment is never visible before an earlier-dated one. The
-- writes are admins' bulk uploads, one statement each: they queue behind one
-- another for that statement's length, never behind ingestion.
create function assignments_write_lock_key()
returns bigint
language sql immutable as $$ select 19533::bigint $$;

create function upsert_assignments(p_org text, p_assignments json)
returns integer
language plpgsql as $$
declare
  v_count integer;
begin
  perform pg_advisory_xact_lock(assignments_write_lock_key());
  insert into assignments as a (org_id, user_id, course_id, role, assigned_at)
  select p_org, x."userId", x."courseId", coalesce(x.role, 'learner'), clock_timestamp()
  from json_to_recordset(p_assignments) as x("userId" text, "courseId" text, role text)
  order by x."userId", x."courseId"
  on conflict (org_id, user_id, course_id) do update set role = excluded.role;
  get diagnostics v_count = row_count;
  return v_count;
end $$;
