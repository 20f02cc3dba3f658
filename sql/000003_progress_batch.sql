-- The progress write path: one call, one transaction, per batch.
--
-- p_events is a JSON array of validated events:
--   { i, event_id, occurred_at, user_id, org_hint, course_id, lesson_id, type,
--     progress, time_spent_ms, score, clock_skew_ms }
-- `i` is the caller's index of the event; org_hint (the token's org) restricts
-- which org the event may resolve to.
--
-- Returns one outcome letter per distinct `i`, in order of `i`:
--   a = accepted (newly stored), d = duplicate (already stored, or repeated in
--   this batch), q = deferred (no assignment yet: held in dead_letter_events).
--
-- Deadlocks: within each table rows are written in key order, and the course
-- aggregate is guarded by per-(org, user, course) advisory locks taken in hash
-- order after all row writes but the course rows themselves.
create function upsert_progress_batch(p_events json)
returns text
language plpgsql as $$
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
  outcomes as (
    select x.i,
           case when f.i <> x.i then 'd'
                when ins.event_id is not null then 'a'
                when def.event_id is not null then 'q'
                else 'd' end as outcome
    from (select distinct on (i) i, event_id, occurred_at from input order by i) x
    join firsts f using (event_id, occurred_at)
    left join inserted ins using (event_id, occurred_at)
    left join deferred def using (event_id, occurred_at)
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

-- Recomputes user_course_progress for the given (org, user, course) triples
-- from their lesson rows. Writers of one triple are serialised by an advisory
-- lock so that the aggregate, read after the lock is held, includes every
-- committed lesson update (READ COMMITTED takes a new snapshot per statement).
create function recompute_course_progress(p_orgs text[], p_users text[], p_courses text[])
returns void
language plpgsql as $$
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
  join user_lesson_progress l on l.org_id = t.o and l.user_id = t.u and l.course_id = t.c
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
