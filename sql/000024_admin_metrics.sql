-- The admin's 19 metrics (docs/analytics.md, "Admin"): one org. Identical for
-- every admin of the org, so a batch computes it once per org.
create function compute_admin_analytics(p_org text, p_now timestamptz)
returns jsonb
language plpgsql stable as $$
declare
  v_today date := (p_now at time zone 'UTC')::date;
  v_first_week date := (date_trunc('week', (p_now at time zone 'UTC')::date::timestamp) - interval '11 weeks')::date;
  v_result jsonb;
begin
  with
  enrol as (
    select s.user_id, s.course_id, c.lesson_count,
           coalesce(c.lesson_count > 0 and p.lessons_completed >= c.lesson_count, false) as completed
    from assignments s
    left join courses c on c.org_id = s.org_id and c.course_id = s.course_id
    left join user_course_progress p
      on p.org_id = s.org_id and p.user_id = s.user_id and p.course_id = s.course_id
    where s.org_id = p_org and s.role = 'learner'
  ),
  -- Learners' activity days: the last 3 days from the events, older ones from
  -- the history the daily batch stores for every learner (learners first).
  days as (
    select d.user_id, d.day, d.active_ms
    from activity_days(p_org, null, least(v_first_week, v_today - 30), p_now, interval '2 days') d
    where d.events > 0 and d.user_id in (select e.user_id from enrol e)
  ),
  -- DAU/WAU/MAU over complete UTC days (ending yesterday), so the figure does
  -- not depend on the hour the batch runs.
  activity as (
    select count(distinct d.user_id) filter (where d.day = v_today - 1) as dau,
           count(distinct d.user_id) filter (where d.day between v_today - 7 and v_today - 1) as wau,
           count(distinct d.user_id) filter (where d.day between v_today - 30 and v_today - 1) as mau,
           coalesce(sum(d.active_ms) filter (where d.day > v_today - 30), 0) as ms_30d
    from days d
  ),
  -- The learner at-risk rule: an incomplete course and no activity for 14 days.
  at_risk as (
    select count(*) as n
    from (select e.user_id from enrol e
          where e.lesson_count > 0 and not e.completed
          group by e.user_id) x
    where not exists (select 1 from days d where d.user_id = x.user_id and d.day > v_today - 14)
  ),
  course_rates as (
    select c.course_id, count(e.user_id) as enrolled, count(*) filter (where e.completed) as completed,
           case when c.lesson_count > 0 and count(e.user_id) > 0
                then round(100.0 * count(*) filter (where e.completed) / count(e.user_id), 2) end as rate
    from courses c
    left join enrol e on e.course_id = c.course_id
    where c.org_id = p_org
    group by c.course_id, c.lesson_count
  ),
  lesson_stats as (
    select count(*) filter (where (l.completed_at at time zone 'UTC')::date between v_today - 6 and v_today) as completed_7d,
           count(*) filter (where (l.completed_at at time zone 'UTC')::date between v_today - 29 and v_today) as completed_30d
    from user_lesson_progress l
    where l.org_id = p_org and l.completed_at >= (v_first_week - 30)::timestamp at time zone 'UTC'
  ),
  scores as (
    select round(avg(l.best_score), 2) as average_score
    from user_lesson_progress l
    where l.org_id = p_org and l.best_score is not null
  ),
  weeks as (
    select w::date as week_start
    from generate_series(v_first_week::timestamp, date_trunc('week', v_today::timestamp), interval '1 week') w
  ),
  week_activity as (
    select date_trunc('week', d.day::timestamp)::date as week_start, count(distinct d.user_id) as learners
    from days d where d.day >= v_first_week
    group by 1
  ),
  week_completions as (
    select date_trunc('week', (l.completed_at at time zone 'UTC')::date::timestamp)::date as week_start, count(*) as n
    from user_lesson_progress l
    where l.org_id = p_org
      and l.completed_at >= v_first_week::timestamp at time zone 'UTC'
      and l.completed_at < (v_today + 1)::timestamp at time zone 'UTC'
    group by 1
  )
  select jsonb_build_object(
    'dau', a.dau,
    'wau', a.wau,
    'mau', a.mau,
    'stickinessPct', case when a.mau > 0 then round(100.0 * a.dau / a.mau, 1) end,
    'learners', (select count(distinct e.user_id) from enrol e),
    'instructors', (select count(distinct s.user_id) from assignments s
                    where s.org_id = p_org and s.role = 'instructor'),
    'courses', (select count(*) from courses c where c.org_id = p_org),
    'activeCourses30d', (select count(distinct p.course_id) from user_course_progress p
                         where p.org_id = p_org
                           and p.last_activity_at >= (v_today - 29)::timestamp at time zone 'UTC'),
    'enrollments', (select count(*) from enrol),
    'completedEnrollments', (select count(*) from enrol e where e.completed),
    'completionRatePct', (select case when count(*) > 0
                                      then round(100.0 * count(*) filter (where e.completed) / count(*), 2) end
                          from enrol e where e.lesson_count > 0),
    'lessonsCompleted7d', ls.completed_7d,
    'lessonsCompleted30d', ls.completed_30d,
    'timeSpent30dMs', a.ms_30d,
    'atRiskLearners', r.n,
    'topCourses', coalesce((select jsonb_agg(jsonb_build_object('courseId', x.course_id, 'completionRatePct', x.rate,
                                                                 'enrolled', x.enrolled, 'completed', x.completed)
                                             order by x.rate desc, x.enrolled desc, x.course_id)
                            from (select * from course_rates where rate is not null
                                  order by rate desc, enrolled desc, course_id limit 5) x), '[]'::jsonb),
    'bottomCourses', coalesce((select jsonb_agg(jsonb_build_object('courseId', x.course_id, 'completionRatePct', x.rate,
                                                                    'enrolled', x.enrolled, 'completed', x.completed)
                                                order by x.rate, x.enrolled desc, x.course_id)
                               from (select * from course_rates where rate is not null
                                     order by rate, enrolled desc, course_id limit 5) x), '[]'::jsonb),
    'averageScore', sc.average_score,
    'activity12w', (select jsonb_agg(jsonb_build_object(
                      'weekStart', to_char(w.week_start, 'YYYY-MM-DD'),
                      'activeLearners', coalesce(wa.learners, 0),
                      'lessonsCompleted', coalesce(wc.n, 0)) order by w.week_start)
                    from weeks w
                    left join week_activity wa on wa.week_start = w.week_start
                    left join week_completions wc on wc.week_start = w.week_start)
  )
  into v_result
  from activity a, at_risk r, lesson_stats ls, scores sc;
  return v_result;
end $$;
