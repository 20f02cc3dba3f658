-- Which org an event belongs to, decided the same way for both streams and
-- the same way every time it is sent. Bodies as in 000035; only the org
-- lookups change (and enable_seqscan, set by 000036, is restated because
-- replacing a function replaces its settings).
--
-- 1. Stable: when no token org narrows it, an event went to the first
--    matching assignment by org id. A learner whose token has no org_id and
--    who was later assigned by a second org (an id sorting first) had a
--    retried event stored again under that org: counted twice. The oldest
--    assignment now decides, and assignments are only ever added (a PUT keeps
--    assigned_at), so a retry lands where the first send did.
-- 2. Analytics events needed no assignment when the token named an org: any
--    user id a service sent, or a learner of no course, was counted in the
--    org's rollups (active learners), while the same user's progress events
--    were deferred. Both streams now defer until an assignment links the user
--    to the org: for analytics, one of that course if the event names one
--    the user is assigned to, else any of the user's in the org.

create or replace function upsert_progress_batch(p_events json)
returns text
language plpgsql
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
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
      order by s.assigned_at, s.org_id
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

create or replace function upsert_analytics_batch(p_events json)
returns text
language plpgsql
set plan_cache_mode = force_generic_plan
set enable_seqscan = off
as $$
declare
  v_outcomes text;
begin
  with input as materialized (
    select x.*, coalesce(by_course.org_id, by_user.org_id) as org_id
    from json_to_recordset(p_events) as x(
      i integer, event_id uuid, occurred_at timestamptz, user_id text, org_hint text,
      name text, course_id text, lesson_id text, session_id text, properties jsonb,
      clock_skew_ms integer)
    left join lateral (
      select s.org_id from assignments s
      where x.course_id is not null and s.user_id = x.user_id and s.course_id = x.course_id
        and (x.org_hint is null or s.org_id = x.org_hint)
      order by s.assigned_at, s.org_id
      limit 1
    ) by_course on true
    left join lateral (
      select s.org_id from assignments s
      where by_course.org_id is null and s.user_id = x.user_id
        and (x.org_hint is null or s.org_id = x.org_hint)
      order by s.assigned_at, s.org_id
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
