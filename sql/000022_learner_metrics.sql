-- The learner's 19 metrics (docs/analytics.md, "Learner"), for a set of users
-- of one org at once. Windows are UTC days ending with the day of p_now; "now"
-- is a parameter so that results are reproducible.
--
-- It first persists the users' live activity days (sync_activity_days), then
-- reads days from learner_activity_days only: one scan of the events per call.
create function compute_learner_analytics(p_org text, p_users text[], p_now timestamptz)
returns table (user_id text, data jsonb)
language plpgsql as $$
#variable_conflict use_column
declare
  v_today date := (p_now at time zone 'UTC')::date;
  v_first_week date := (date_trunc('week', (p_now at time zone 'UTC')::date::timestamp) - interval '11 weeks')::date;
begin
  perform sync_activity_days(p_org, p_users, p_now);

  return query
  with
  u as (select distinct x.user_id from unnest(p_users) as x(user_id)),
  days as (
    select d.user_id, d.day, d.active_ms, d.last_at
    from learner_activity_days d
    where d.org_id = p_org and d.user_id = any (p_users) and d.day <= v_today and d.events > 0
  ),
  -- Enrolments: the user's learner assignments, with the course and progress.
  -- A course without a row in courses has no known size: never complete, and
  -- left out of the completion rate, like a course with zero lessons.
  enrol as (
    select s.user_id, s.course_id, c.lesson_count, c.category,
           coalesce(p.lessons_completed, 0) as done,
           coalesce(p.time_spent_ms, 0) as time_ms,
           p.last_activity_at,
           coalesce(c.lesson_count > 0 and p.lessons_completed >= c.lesson_count, false) as completed
    from assignments s
    left join courses c on c.org_id = s.org_id and c.course_id = s.course_id
    left join user_course_progress p
      on p.org_id = s.org_id and p.user_id = s.user_id and p.course_id = s.course_id
    where s.org_id = p_org and s.user_id = any (p_users) and s.role = 'learner'
  ),
  course_stats as (
    select e.user_id,
           count(*) as enrolled,
           count(*) filter (where e.completed) as completed,
           sum(least(e.done, e.lesson_count)) filter (where e.lesson_count > 0) as done_lessons,
           sum(e.lesson_count) filter (where e.lesson_count > 0) as total_lessons,
           sum(e.time_ms) as time_ms,
           coalesce(bool_or(e.lesson_count > 0 and not e.completed), false) as has_incomplete,
           max(e.last_activity_at) as last_progress_at
    from enrol e
    group by e.user_id
  ),
  -- Lessons of the user in the org; completion day is the first completion's.
  lessons as (
    select l.user_id, l.course_id, l.status, l.best_score, l.first_event_at, l.last_event_at,
           (l.completed_at at time zone 'UTC')::date as completed_day
    from user_lesson_progress l
    where l.org_id = p_org and l.user_id = any (p_users)
  ),
  lesson_stats as (
    select l.user_id,
           count(*) filter (where l.status = 'completed') as lessons_completed,
           round(avg(l.best_score), 2) as average_score,
           count(*) as touched,
           count(*) filter (where (l.last_event_at at time zone 'UTC')::date
                                  > (l.first_event_at at time zone 'UTC')::date) as revisited
    from lessons l
    group by l.user_id
  ),
  course_velocity as (
    select l.user_id, l.course_id, count(*) / 4.0 as per_week
    from lessons l
    where l.completed_day between v_today - 27 and v_today
    group by l.user_id, l.course_id
  ),
  -- In progress: started, of known size, not complete.
  projections as (
    select e.user_id,
           jsonb_agg(jsonb_build_object(
             'courseId', e.course_id,
             'remainingLessons', e.lesson_count - e.done,
             'lessonsPerWeek', round(coalesce(v.per_week, 0), 2),
             'projectedDate', case when v.per_week > 0 then to_char(
               ((p_now + ((e.lesson_count - e.done) / v.per_week)::float8 * interval '7 days') at time zone 'UTC')::date,
               'YYYY-MM-DD') end
           ) order by e.course_id) as items
    from enrol e
    left join course_velocity v on v.user_id = e.user_id and v.course_id = e.course_id
    where e.lesson_count > 0 and not e.completed and e.last_activity_at is not null
    group by e.user_id
  ),
  -- Gaps and islands: consecutive days share day - row_number().
  runs as (
    select g.user_id, max(g.day) as last_day, count(*) as len
    from (select d.user_id, d.day,
                 d.day - (row_number() over (partition by d.user_id order by d.day))::integer as grp
          from days d) g
    group by g.user_id, g.grp
  ),
  streaks as (
    select r.user_id, max(r.len) as longest,
           -- still alive when the run ends today or yesterday (today is not over)
           coalesce(max(r.len) filter (where r.last_day >= v_today - 1), 0) as current
    from runs r
    group by r.user_id
  ),
  windows as (
    select d.user_id,
           sum(d.active_ms) filter (where d.day > v_today - 7) as ms_7d,
           sum(d.active_ms) filter (where d.day between v_today - 13 and v_today - 7) as ms_prev_7d,
           sum(d.active_ms) filter (where d.day > v_today - 30) as ms_30d,
           count(*) filter (where d.day > v_today - 30) as active_days_30d,
           coalesce(bool_or(d.day > v_today - 14), false) as active_14d,
           max(d.last_at) as last_at
    from days d
    group by d.user_id
  ),
  top_category as (
    select distinct on (c.user_id) c.user_id, c.category, c.ms
    from (select e.user_id, e.category, sum(e.time_ms) as ms
          from enrol e where e.category is not null
          group by e.user_id, e.category) c
    where c.ms > 0
    order by c.user_id, c.ms desc, c.category
  ),
  -- Velocity of every learner of the org, for the percentile among peers.
  peers as (
    select s.user_id, coalesce(n.completed, 0) / 4.0 as velocity
    from (select distinct a.user_id from assignments a where a.org_id = p_org and a.role = 'learner') s
    left join (
      select l.user_id, count(*) as completed
      from user_lesson_progress l
      where l.org_id = p_org
        and l.completed_at >= (v_today - 27)::timestamp at time zone 'UTC'
        and l.completed_at < (v_today + 1)::timestamp at time zone 'UTC'
      group by l.user_id
    ) n on n.user_id = s.user_id
  ),
  ranked as (
    select p.user_id, p.velocity,
           percent_rank() over (order by p.velocity) as pct_rank,
           count(*) over () as peers
    from peers p
  ),
  weeks as (
    select w::date as week_start
    from generate_series(v_first_week::timestamp, date_trunc('week', v_today::timestamp), interval '1 week') w
  ),
  week_activity as (
    select d.user_id, date_trunc('week', d.day::timestamp)::date as week_start,
           count(*) as active_days, sum(d.active_ms) as ms
    from days d where d.day >= v_first_week
    group by 1, 2
  ),
  week_completions as (
    select l.user_id, date_trunc('week', l.completed_day::timestamp)::date as week_start, count(*) as n
    from lessons l where l.completed_day between v_first_week and v_today
    group by 1, 2
  ),
  series as (
    select u.user_id,
           jsonb_agg(jsonb_build_object(
             'weekStart', to_char(w.week_start, 'YYYY-MM-DD'),
             'activeDays', coalesce(a.active_days, 0),
             'timeSpentMs', coalesce(a.ms, 0),
             'lessonsCompleted', coalesce(c.n, 0)
           ) order by w.week_start) as items
    from u cross join weeks w
    left join week_activity a on a.user_id = u.user_id and a.week_start = w.week_start
    left join week_completions c on c.user_id = u.user_id and c.week_start = w.week_start
    group by u.user_id
  )
  select u.user_id, jsonb_build_object(
    'coursesEnrolled', coalesce(cs.enrolled, 0),
    'coursesCompleted', coalesce(cs.completed, 0),
    'lessonsCompleted', coalesce(ls.lessons_completed, 0),
    'completionRatePct', case when cs.total_lessons > 0 then round(100.0 * cs.done_lessons / cs.total_lessons, 2) end,
    'timeSpent7dMs', coalesce(w.ms_7d, 0),
    'timeSpent30dMs', coalesce(w.ms_30d, 0),
    'activeDays30d', coalesce(w.active_days_30d, 0),
    'currentStreakDays', coalesce(st.current, 0),
    'longestStreakDays', coalesce(st.longest, 0),
    'velocityLessonsPerWeek', round(coalesce(r.velocity, 0), 2),
    'averageScore', ls.average_score,
    'lastActiveAt', iso_utc(coalesce(w.last_at, cs.last_progress_at)),
    'projectedCompletions', coalesce(pj.items, '[]'::jsonb),
    'engagementTrend', jsonb_build_object(
      'thisWeekMs', coalesce(w.ms_7d, 0),
      'lastWeekMs', coalesce(w.ms_prev_7d, 0),
      'changePct', case when w.ms_prev_7d > 0 then round(100.0 * (coalesce(w.ms_7d, 0) - w.ms_prev_7d) / w.ms_prev_7d, 1) end),
    'topCategory', case when tc.category is not null then jsonb_build_object(
      'category', tc.category,
      'sharePct', round(100.0 * tc.ms / cs.time_ms, 1)) end,
    'revisitRatePct', case when ls.touched > 0 then round(100.0 * ls.revisited / ls.touched, 1) end,
    'velocityPercentile', case when r.peers > 1 then round((100 * r.pct_rank)::numeric, 1) end,
    'atRisk', coalesce(cs.has_incomplete, false) and not coalesce(w.active_14d, false),
    'activity12w', s.items
  )
  from u
  left join course_stats cs on cs.user_id = u.user_id
  left join lesson_stats ls on ls.user_id = u.user_id
  left join projections pj on pj.user_id = u.user_id
  left join streaks st on st.user_id = u.user_id
  left join windows w on w.user_id = u.user_id
  left join top_category tc on tc.user_id = u.user_id
  left join ranked r on r.user_id = u.user_id
  left join series s on s.user_id = u.user_id;
end $$;
