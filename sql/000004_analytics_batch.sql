-- The analytics twin of upsert_progress_batch: one call, one transaction, per batch.
--
-- p_events is a JSON array of validated events:
--   { i, event_id, occurred_at, user_id, org_hint, name, course_id, lesson_id,
--     session_id, properties, clock_skew_ms }
-- The org is the token's org (org_hint) when it has one; otherwise the org of
-- the user's assignment to the event's course, else of any of the user's
-- assignments. Returns outcome letters as upsert_progress_batch does.
create function upsert_analytics_batch(p_events json)
returns text
language plpgsql as $$
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
  select coalesce(string_agg(
           case when f.i <> x.i then 'd'
                when ins.event_id is not null then 'a'
                when def.event_id is not null then 'q'
                else 'd' end, '' order by x.i), '')
  into v_outcomes
  from (select distinct on (i) i, event_id, occurred_at from input order by i) x
  join firsts f using (event_id, occurred_at)
  left join inserted ins using (event_id, occurred_at)
  left join deferred def using (event_id, occurred_at);
  return v_outcomes;
end $$;

-- Replays deferred events whose assignment now exists, through the same
-- procedures, exactly once: the rows are deleted in the transaction that
-- ingests them, and rows another replay holds are skipped. Optionally limited
-- to some users; at most p_limit rows per stream per call (call until 0).
create function replay_dead_letter(p_user_ids text[] default null, p_limit integer default 1000)
returns table (stream text, replayed integer, accepted integer, duplicates integer)
language plpgsql as $$
declare
  v_stream text;
  v_events json;
  v_outcomes text;
begin
  foreach v_stream in array array['progress', 'analytics'] loop
    with ready as (
      select d.stream, d.event_id, d.occurred_at
      from dead_letter_events d
      where d.stream = v_stream
        and (p_user_ids is null or d.user_id = any (p_user_ids))
        and exists (select 1 from assignments s
                    where s.user_id = d.user_id
                      and (v_stream = 'analytics' or s.course_id = d.course_id)
                      and (d.org_hint is null or s.org_id = d.org_hint))
      order by d.event_id, d.occurred_at
      limit p_limit
      for update skip locked
    ),
    taken as (
      delete from dead_letter_events d using ready r
      where d.stream = r.stream and d.event_id = r.event_id and d.occurred_at = r.occurred_at
      returning d.event
    )
    select json_agg(t.event || jsonb_build_object('i', t.n - 1))
    into v_events
    from (select event, row_number() over () as n from taken) t;

    continue when v_events is null;
    v_outcomes := case v_stream when 'progress' then upsert_progress_batch(v_events)
                                else upsert_analytics_batch(v_events) end;
    stream := v_stream;
    replayed := length(v_outcomes);
    accepted := length(v_outcomes) - length(replace(v_outcomes, 'a', ''));
    duplicates := length(v_outcomes) - length(replace(v_outcomes, 'd', ''));
    return next;
  end loop;
end $$;
