-- Learner erasure (contract section 5): one transaction removes a learner's
-- events from every partition, their progress, learner-analytics rows and
-- dead letters, rebuilds the org's rollups for the days they were active, and
-- leaves a receipt. Receipts hold no event data; restoring a retention
-- snapshot skips the rows of every learner with a receipt.

create table erasure_receipts (
  id            bigint generated always as identity primary key,
  org_id        text not null,
  user_id       text not null,
  requested_by  text,
  job_id        text,
  requested_at  timestamptz,
  erased_at     timestamptz not null default now(),
  rows_removed  jsonb not null
);
create index erasure_receipts_by_user on erasure_receipts (org_id, user_id);

-- Tables this function treats on its own, or must keep: assignments are the
-- org's enrolment records (an admin removes those), receipts are the proof.
create function erasure_handled_tables()
returns text[]
language sql immutable as $$
  select array['progress_events', 'analytics_events', 'dead_letter_events', 'assignments',
               'erasure_receipts', 'org_rollup_learners']
$$;

create function erase_learner(p_org text, p_user text, p_requested_by text default null,
                              p_job_id text default null, p_requested_at timestamptz default null)
returns jsonb
language plpgsql as $$
declare
  v_mark xid8;
  v_days date[];
  v_removed jsonb := '{}';
  v_count bigint;
  v_table record;
begin
  -- Holds the org's rollup row lock to commit: no rollup chunk of this org
  -- interleaves, and v_mark says which of the learner's rows the rollups hold.
  v_mark := rollup_lock_org(p_org);

  select array_agg(distinct d) into v_days
  from (select (occurred_at at time zone 'UTC')::date as d from progress_events
        where org_id = p_org and user_id = p_user and ingest_xid < v_mark
        union
        select (occurred_at at time zone 'UTC')::date from analytics_events
        where org_id = p_org and user_id = p_user and ingest_xid < v_mark) days;

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

  -- Rollups: days with raw events are rebuilt from what remains; on days whose
  -- partitions retention has already dropped, only the learner's membership
  -- goes (and with it their share of the active-learner counts).
  select count(*) into v_count from org_rollup_learners where org_id = p_org and user_id = p_user;
  v_removed := v_removed || jsonb_build_object('org_rollup_learners', v_count,
                                               'rollup_days_recomputed', coalesce(cardinality(v_days), 0));
  if v_days is not null then
    perform rollup_recompute_days(p_org, v_days, v_mark);
  end if;
  with gone as (
    delete from org_rollup_learners where org_id = p_org and user_id = p_user
    returning granularity, bucket, course_id
  ),
  per_bucket as (
    select granularity, bucket, course_id, count(*) as n from gone group by 1, 2, 3
  ),
  updated as (
    update org_rollups r set active_learners = r.active_learners - p.n, updated_at = now()
    from per_bucket p
    where r.org_id = p_org and r.granularity = p.granularity and r.bucket = p.bucket and r.course_id = p.course_id
    returning 1
  )
  select count(*) into v_count from updated;

  insert into erasure_receipts (org_id, user_id, requested_by, job_id, requested_at, rows_removed)
  values (p_org, p_user, p_requested_by, p_job_id, p_requested_at, v_removed);
  return v_removed;
end $$;
