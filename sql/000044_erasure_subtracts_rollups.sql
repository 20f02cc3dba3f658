-- Erasure takes the learner's share out of the org's rollups instead of
-- rebuilding their days from the raw events that remain.
--
-- The rebuild deleted every bucket of each day the learner had rolled-up
-- events on, in either event table, and added back what both tables still
-- held. A day whose partition was gone from one table but not the other (a
-- retention snapshot of one table restored, one table's partition deferred by
-- retention, or detached by an interrupted run) lost everyone's counts from
-- the missing table: erasing one learner wiped the other learners' analytics
-- events of that day. It also read every event of the org on those days,
-- holding the org's rollup lock all the while.
--
-- Now, under the same lock and mark (rows below the mark are the ones the
-- rollups hold, sql/000010):
-- - the counters (progress events, time spent, analytics events, events by
--   name) lose exactly the learner's rolled-up events that are still stored;
-- - lessons started and completed and active learners lose exactly the
--   learner's members of each bucket (org_rollup_lessons, org_rollup_learners),
--   on any day, since those sets name the learner;
-- - a bucket left with nothing in it goes, as if the learner had never been.
-- On a day whose raw events retention dropped, the anonymous counts stay, as
-- before (docs/workers.md). Nobody else's figures are touched.

create or replace function erasure_handled_tables()
returns text[]
language sql immutable as $$
  select array['progress_events', 'analytics_events', 'dead_letter_events', 'assignments',
               'erasure_receipts', 'org_rollup_learners', 'org_rollup_lessons']
$$;

-- The learner's rolled-up events (below p_mark) taken out of the org's
-- counters; returns how many buckets changed.
create function rollup_subtract_learner(p_org text, p_user text, p_mark xid8)
returns integer
language sql as $$
  with events as (
    select e.course_id, e.occurred_at, 1 as is_progress, e.time_spent_ms::bigint as time_spent, null::text as name
    from progress_events e
    where e.org_id = p_org and e.user_id = p_user and e.ingest_xid < p_mark
    union all
    select e.course_id, e.occurred_at, 0, 0, e.name
    from analytics_events e
    where e.org_id = p_org and e.user_id = p_user and e.ingest_xid < p_mark
  ),
  -- The same bucketing as rollup_add (sql/000040): each event counts in its
  -- hour and its day, for its course and for the org ('').
  expanded as materialized (
    select g.granularity, date_trunc(g.granularity, e.occurred_at, 'UTC') as bucket, s.course_id,
           e.is_progress, e.time_spent, e.name
    from events e
    cross join (values ('hour'), ('day')) as g (granularity)
    cross join lateral (select '' as course_id
                        union all
                        select e.course_id where e.course_id is not null) s
  ),
  share as (
    select granularity, bucket, course_id, sum(is_progress) as progress_events, sum(time_spent) as time_spent,
           count(name) as analytics_events
    from expanded group by 1, 2, 3
  ),
  by_name as (
    select granularity, bucket, course_id, name, count(*) as events
    from expanded where name is not null group by 1, 2, 3, 4
  ),
  counters as (
    update org_rollups r
    set progress_events  = greatest(0, r.progress_events - s.progress_events),
        time_spent_ms    = greatest(0, r.time_spent_ms - s.time_spent),
        analytics_events = greatest(0, r.analytics_events - s.analytics_events),
        updated_at       = now()
    from share s
    where r.org_id = p_org and r.granularity = s.granularity and r.bucket = s.bucket and r.course_id = s.course_id
    returning 1
  ),
  -- Disjoint rows of one table: a name the learner alone sent goes, the others shrink.
  names_gone as (
    delete from org_rollup_event_names n
    using by_name b
    where n.org_id = p_org and n.granularity = b.granularity and n.bucket = b.bucket and n.course_id = b.course_id
      and n.name = b.name and n.events <= b.events
    returning 1
  ),
  names_left as (
    update org_rollup_event_names n
    set events = n.events - b.events
    from by_name b
    where n.org_id = p_org and n.granularity = b.granularity and n.bucket = b.bucket and n.course_id = b.course_id
      and n.name = b.name and n.events > b.events
    returning 1
  )
  -- (names_gone and names_left run whether read or not, as every data-modifying WITH does)
  select count(*)::integer from counters
$$;

create or replace function erase_learner_unlocked(p_org text, p_user text, p_requested_by text default null,
                                                  p_job_id text default null, p_requested_at timestamptz default null)
returns jsonb
language plpgsql as $$
declare
  v_mark xid8;
  v_removed jsonb := '{}';
  v_count bigint;
  v_table record;
begin
  -- Holds the org's rollup row lock to commit: no rollup chunk of this org
  -- interleaves, and v_mark says which of the learner's rows the rollups hold.
  v_mark := rollup_lock_org(p_org);
  -- The learner's write lock, after every lock of the org (sql/000045 says why).
  perform pg_advisory_xact_lock(learner_write_lock_class(), learner_write_lock(p_user));
  -- Before their events go: the counters lose what those events added.
  v_removed := jsonb_build_object('rollup_buckets_adjusted', rollup_subtract_learner(p_org, p_user, v_mark));

  with gone as (delete from progress_events where org_id = p_org and user_id = p_user returning 1)
  select count(*) into v_count from gone;
  v_removed := v_removed || jsonb_build_object('progress_events', v_count);

  with gone as (delete from analytics_events where org_id = p_org and user_id = p_user returning 1)
  select count(*) into v_count from gone;
  v_removed := v_removed || jsonb_build_object('analytics_events', v_count);

  -- A dead letter names no org until its assignment exists; one without a
  -- hint may be this learner's in this org, so it goes too.
  with gone as (delete from dead_letter_events
                where user_id = p_user and (org_hint is null or org_hint = p_org) returning 1)
  select count(*) into v_count from gone;
  v_removed := v_removed || jsonb_build_object('dead_letter_events', v_count);

  -- Every other table holding learner rows: progress, learner analytics (also
  -- those added by later migrations). Scoped to the org where the table has one.
  for v_table in
    select c.relname::text as name,
           exists (select 1 from pg_attribute a
                   where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped) as has_org
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = current_schema()
      and c.relkind in ('r', 'p')
      and not c.relispartition
      and c.relname <> all (erasure_handled_tables())
      and exists (select 1 from pg_attribute a
                  where a.attrelid = c.oid and a.attname = 'user_id' and not a.attisdropped)
    order by c.relname
  loop
    if v_table.has_org then
      execute format('with gone as (delete from %I where org_id = $1 and user_id = $2 returning 1) select count(*) from gone',
                     v_table.name) into v_count using p_org, p_user;
    else
      execute format('with gone as (delete from %I where user_id = $1 returning 1) select count(*) from gone',
                     v_table.name) into v_count using p_user;
    end if;
    v_removed := v_removed || jsonb_build_object(v_table.name, v_count);
  end loop;

  -- The distinct counts: the learner's members of each bucket go, and the
  -- counts with them, on every day (these sets outlive the raw events).
  with gone as (
    delete from org_rollup_lessons where org_id = p_org and user_id = p_user
    returning granularity, bucket, course_id, completed
  ),
  per_bucket as (
    select granularity, bucket, course_id,
           count(*) filter (where not completed) as started, count(*) filter (where completed) as completed
    from gone group by 1, 2, 3
  ),
  updated as (
    update org_rollups r
    set lessons_started   = greatest(0, r.lessons_started - p.started),
        lessons_completed = greatest(0, r.lessons_completed - p.completed),
        updated_at        = now()
    from per_bucket p
    where r.org_id = p_org and r.granularity = p.granularity and r.bucket = p.bucket and r.course_id = p.course_id
    returning 1
  )
  select (select count(*) from gone) into v_count;
  v_removed := v_removed || jsonb_build_object('org_rollup_lessons', v_count);

  with gone as (
    delete from org_rollup_learners where org_id = p_org and user_id = p_user
    returning granularity, bucket, course_id
  ),
  per_bucket as (
    select granularity, bucket, course_id, count(*) as n from gone group by 1, 2, 3
  ),
  updated as (
    update org_rollups r set active_learners = greatest(0, r.active_learners - p.n), updated_at = now()
    from per_bucket p
    where r.org_id = p_org and r.granularity = p.granularity and r.bucket = p.bucket and r.course_id = p.course_id
    returning 1
  )
  select (select count(*) from gone) into v_count;
  v_removed := v_removed || jsonb_build_object('org_rollup_learners', v_count);

  -- A bucket that only the learner filled is gone, as if they had never been.
  delete from org_rollups
  where org_id = p_org and active_learners = 0 and progress_events = 0 and lessons_started = 0
    and lessons_completed = 0 and time_spent_ms = 0 and analytics_events = 0;

  insert into erasure_receipts (org_id, user_id, requested_by, job_id, requested_at, rows_removed)
  values (p_org, p_user, p_requested_by, p_job_id, p_requested_at, v_removed);
  return v_removed;
end $$;

-- Erasure was its only caller.
drop function rollup_recompute_days(text, date[], xid8);
