-- Plans of the write procedures, made robust to what the planner cannot know
-- (measured with auto_explain; see docs/performance.md, "Plans"). Behaviour is
-- unchanged: same outcomes, same rows; only the shape of two queries moves.
--
-- 1. recompute_course_progress: before the first ANALYZE of
--    user_lesson_progress, the (org, course) index looked as cheap as the
--    primary key and was chosen, scanning every learner of the course: 4 ms of
--    a 6 ms call with 1,600 lesson rows, and growing with the table.
-- 2. The outcome string of both batch procedures: json_to_recordset and every
--    CTE are estimated at 100 rows and their joins at 1, so the planner used
--    nested loops that scan `deferred` once per event: quadratic, 0.74 s for a
--    3,000-event batch of unassigned users. Now hashed subplans, linear.
-- 3. Re-planning on every call: PL/pgSQL caches each statement's plan, but the
--    plan cache compares a generic plan's estimate with custom ones, and for
--    statements over unnest(array parameters) the custom plan (which knows the
--    array length) always looks cheaper, so the recompute statements were
--    planned afresh each call: recompute_course_progress took 0.55 ms a call
--    (pg_stat_user_functions), 0.21 ms with the generic plan. The plans are
--    the same shape for any batch size (per-row index lookups, hashed CTEs),
--    so these functions always take the generic one.

create or replace function upsert_progress_batch(p_events json)
returns text
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_outcomes text;
  v_orgs text[];
  v_users text[];
  v_courses text[];
begin
  with input as materialized (
    select x.*, a.org_id
    from json_to_recordset(p_events) as x(
      i integer, event_id uuid, occurred_at timestamptz, user_id text, org_hint text,
      course_id text, lesson_id text, type text, progress smallint,
      time_spent_ms integer, score numeric, clock_skew_ms integer)
    left join lateral (
      select s.org_id from assignments s
      where s.user_id = x.user_id and s.course_id = x.course_id
        and (x.org_hint is null or s.org_id = x.org_hint)
      order by s.org_id
      limit 1
    ) a on true
  ),
  -- Within a batch, the first occurrence of a key speaks for it; later ones are duplicates.
  firsts as materialized (
    select distinct on (event_id, occurred_at) *
    from input
    order by event_id, occurred_at, i
  ),
  inserted as (
    insert into progress_events as e (org_id, event_id, occurred_at, user_id, course_id, lesson_id,
                                      type, progress, time_spent_ms, score, clock_skew_ms)
    select org_id, event_id, occurred_at, user_id, course_id, lesson_id,
           type, progress, coalesce(time_spent_ms, 0), score, clock_skew_ms
    from firsts
    where org_id is not null
    order by org_id, event_id, occurred_at
    on conflict do nothing
    returning e.*
  ),
  lessons as (
    insert into user_lesson_progress as l (org_id, user_id, course_id, lesson_id, status, progress_pct,
                                           best_score, time_spent_ms, first_event_at, last_event_at,
                                           completed_at, event_count)
    select org_id, user_id, course_id, lesson_id,
           max(case type when 'lesson_completed' then 'completed'::lesson_status
                         when 'lesson_progress' then 'in_progress'::lesson_status
                         else 'started'::lesson_status end),
           max(case when type = 'lesson_completed' then 100 else coalesce(progress, 0) end),
           max(score),
           sum(time_spent_ms),
           min(occurred_at),
           max(occurred_at),
           min(occurred_at) filter (where type = 'lesson_completed'),
           count(*)
    from inserted
    group by org_id, user_id, course_id, lesson_id
    order by org_id, user_id, course_id, lesson_id
    on conflict (org_id, user_id, course_id, lesson_id) do update set
      status         = greatest(l.status, excluded.status),
      progress_pct   = greatest(l.progress_pct, excluded.progress_pct),
      best_score     = greatest(l.best_score, excluded.best_score),
      time_spent_ms  = l.time_spent_ms + excluded.time_spent_ms,
      first_event_at = least(l.first_event_at, excluded.first_event_at),
      last_event_at  = greatest(l.last_event_at, excluded.last_event_at),
      completed_at   = least(l.completed_at, excluded.completed_at),
      event_count    = l.event_count + excluded.event_count,
      updated_at     = now()
    returning l.org_id, l.user_id, l.course_id
  ),
  deferred as (
    insert into dead_letter_events as d (stream, event_id, occurred_at, user_id, course_id, org_hint, event)
    select 'progress', event_id, occurred_at, user_id, course_id, org_hint,
           jsonb_build_object('event_id', event_id, 'occurred_at', occurred_at, 'user_id', user_id,
                              'org_hint', org_hint, 'course_id', course_id, 'lesson_id', lesson_id,
                              'type', type, 'progress', progress, 'time_spent_ms', time_spent_ms,
                              'score', score, 'clock_skew_ms', clock_skew_ms)
    from firsts
    where org_id is null
    order by event_id, occurred_at
    on conflict do nothing
    returning d.event_id, d.occurred_at
  ),
  -- One letter per distinct i. The first i of each key comes from a window
  -- rather than a join to `firsts`, and the stored/deferred checks are hashed
  -- subplans: the planner takes every CTE for 100 rows, and with join
  -- estimates of 1 row it chose nested loops that re-scanned `deferred` once
  -- per event, quadratic in a large (coalesced) batch.
  outcomes as (
    select x.i,
           case when x.first_i <> x.i then 'd'
                when (x.event_id, x.occurred_at) in (select event_id, occurred_at from inserted) then 'a'
                when (x.event_id, x.occurred_at) in (select event_id, occurred_at from deferred) then 'q'
                else 'd' end as outcome
    from (select distinct on (i) i, event_id, occurred_at, first_i
          from (select i, event_id, occurred_at, min(i) over (partition by event_id, occurred_at) as first_i from input) w
          order by i) x
  ),
  touched as (
    select distinct org_id, user_id, course_id from lessons
  )
  select (select coalesce(string_agg(outcome, '' order by i), '') from outcomes),
         (select array_agg(org_id order by org_id, user_id, course_id) from touched),
         (select array_agg(user_id order by org_id, user_id, course_id) from touched),
         (select array_agg(course_id order by org_id, user_id, course_id) from touched)
  into v_outcomes, v_orgs, v_users, v_courses;

  if v_orgs is not null then
    perform recompute_course_progress(v_orgs, v_users, v_courses);
  end if;
  return v_outcomes;
end $$;

create or replace function recompute_course_progress(p_orgs text[], p_users text[], p_courses text[])
returns void
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
begin
  perform pg_advisory_xact_lock(19525, k)
  from (select distinct hashtext(o || chr(31) || u || chr(31) || c) as k
        from unnest(p_orgs, p_users, p_courses) as t(o, u, c)) keys
  order by k;

  insert into user_course_progress as c (org_id, user_id, course_id, lessons_started, lessons_completed,
                                         time_spent_ms, started_at, last_activity_at,
                                         last_lesson_completed_at)
  select l.org_id, l.user_id, l.course_id,
         count(*),
         count(*) filter (where l.status = 'completed'),
         sum(l.time_spent_ms),
         min(l.first_event_at),
         max(l.last_event_at),
         max(l.completed_at)
  from (select distinct o, u, c from unnest(p_orgs, p_users, p_courses) as t(o, u, c)) t
  -- `|| ''` keeps course_id out of the index condition on purpose. Until the
  -- lesson table is first analyzed (a new database, the first minute of
  -- load) both (org, user, course) on the primary key and (org, course) on
  -- user_lesson_progress_by_course are estimated at 1 row, and the smaller
  -- by_course index wins: it reads every learner's lessons of the course. Left
  -- with (org, user), only the primary key fits: a learner's own lessons.
  join user_lesson_progress l on l.org_id = t.o and l.user_id = t.u and l.course_id || '' = t.c
  group by l.org_id, l.user_id, l.course_id
  order by l.org_id, l.user_id, l.course_id
  on conflict (org_id, user_id, course_id) do update set
    lessons_started          = excluded.lessons_started,
    lessons_completed        = excluded.lessons_completed,
    time_spent_ms            = excluded.time_spent_ms,
    started_at               = excluded.started_at,
    last_activity_at         = excluded.last_activity_at,
    last_lesson_completed_at = excluded.last_lesson_completed_at,
    updated_at               = now();
end $$;

create or replace function upsert_analytics_batch(p_events json)
returns text
language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_outcomes text;
begin
  with input as materialized (
    select x.*, coalesce(x.org_hint, by_course.org_id, by_user.org_id) as org_id
    from json_to_recordset(p_events) as x(
      i integer, event_id uuid, occurred_at timestamptz, user_id text, org_hint text,
      name text, course_id text, lesson_id text, session_id text, properties jsonb,
      clock_skew_ms integer)
    left join lateral (
      select s.org_id from assignments s
      where x.org_hint is null and x.course_id is not null
        and s.user_id = x.user_id and s.course_id = x.course_id
      order by s.org_id
      limit 1
    ) by_course on true
    left join lateral (
      select s.org_id from assignments s
      where x.org_hint is null and s.user_id = x.user_id
      order by s.org_id
      limit 1
    ) by_user on true
  ),
  firsts as materialized (
    select distinct on (event_id, occurred_at) *
    from input
    order by event_id, occurred_at, i
  ),
  inserted as (
    insert into analytics_events as e (org_id, event_id, occurred_at, user_id, name, course_id,
                                       lesson_id, session_id, properties, clock_skew_ms)
    select org_id, event_id, occurred_at, user_id, name, course_id,
           lesson_id, session_id, coalesce(properties, '{}'), clock_skew_ms
    from firsts
    where org_id is not null
    order by org_id, event_id, occurred_at
    on conflict do nothing
    returning e.event_id, e.occurred_at
  ),
  deferred as (
    insert into dead_letter_events as d (stream, event_id, occurred_at, user_id, course_id, org_hint, event)
    select 'analytics', event_id, occurred_at, user_id, course_id, org_hint,
           jsonb_build_object('event_id', event_id, 'occurred_at', occurred_at, 'user_id', user_id,
                              'org_hint', org_hint, 'name', name, 'course_id', course_id,
                              'lesson_id', lesson_id, 'session_id', session_id,
                              'properties', properties, 'clock_skew_ms', clock_skew_ms)
    from firsts
    where org_id is null
    order by event_id, occurred_at
    on conflict do nothing
    returning d.event_id, d.occurred_at
  )
  -- As in upsert_progress_batch: no joins that can turn into per-event loops.
  select coalesce(string_agg(
           case when x.first_i <> x.i then 'd'
                when (x.event_id, x.occurred_at) in (select event_id, occurred_at from inserted) then 'a'
                when (x.event_id, x.occurred_at) in (select event_id, occurred_at from deferred) then 'q'
                else 'd' end, '' order by x.i), '')
  into v_outcomes
  from (select distinct on (i) i, event_id, occurred_at, first_i
        from (select i, event_id, occurred_at, min(i) over (partition by event_id, occurred_at) as first_i from input) w
        order by i) x;
  return v_outcomes;
end $$;
