-- A learner's weekly series for the last p_weeks ISO weeks (Monday, UTC), the
-- current one included: active days, events and time spent (skew-corrected,
-- from activity_days) and lessons completed (first completions). One query:
-- the weeks are generated and the aggregates left-joined, so empty weeks come
-- back as zeros.
create function pattern_evolution(p_org text, p_user text, p_weeks integer, p_now timestamptz)
returns table (week_start date, active_days bigint, events bigint, time_spent_ms bigint, lessons_completed bigint)
language sql stable as $$
  with
  bounds as (
    select (date_trunc('week', (p_now at time zone 'UTC')::date::timestamp)
            - (p_weeks - 1) * interval '1 week')::date as first_week,
           (p_now at time zone 'UTC')::date as today
  ),
  weeks as (
    select w::date as week_start
    from bounds b, generate_series(b.first_week::timestamp, b.today::timestamp, interval '1 week') w
  ),
  activity as (
    select date_trunc('week', d.day::timestamp)::date as week_start,
           count(*) filter (where d.events > 0) as active_days,
           sum(d.events) as events,
           sum(d.active_ms) as active_ms
    from bounds b, activity_days(p_org, array[p_user], b.first_week, p_now) d
    group by 1
  ),
  completions as (
    select date_trunc('week', l.completed_at at time zone 'UTC')::date as week_start, count(*) as n
    from bounds b, user_lesson_progress l
    where l.org_id = p_org and l.user_id = p_user
      and l.completed_at >= b.first_week::timestamp at time zone 'UTC'
      and l.completed_at <= p_now
    group by 1
  )
  select w.week_start, coalesce(a.active_days, 0), coalesce(a.events, 0)::bigint,
         coalesce(a.active_ms, 0)::bigint, coalesce(c.n, 0)
  from weeks w
  left join activity a on a.week_start = w.week_start
  left join completions c on c.week_start = w.week_start
  order by w.week_start
$$;
