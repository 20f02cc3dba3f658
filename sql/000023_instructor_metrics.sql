-- The instructor's 19 metrics (docs/analytics.md, "Instructor"): per course
-- they teach (assignments with role 'instructor'), for a set of instructors of
-- one org at once. Each course is computed once however many of the set teach
-- it. Built from assignments and the progress tables only (no event scan):
-- course activity is the progress rows' last activity.
create function compute_instructor_analytics(p_org text, p_users text[], p_now timestamptz)
returns table (user_id text, data jsonb)
language plpgsql stable as $$
#variable_conflict use_column
declare
  v_today date := (p_now at time zone 'UTC')::date;
  v_first_week date := (date_trunc('week', (p_now at time zone 'UTC')::date::timestamp) - interval '11 weeks')::date;
  -- start of the UTC day N days before today
  v_day_7 timestamptz := (v_today - 6)::timestamp at time zone 'UTC';
  v_day_14 timestamptz := (v_today - 13)::timestamp at time zone 'UTC';
  v_day_30 timestamptz := (v_today - 29)::timestamp at time zone 'UTC';
begin
  return query
  with
  u as (select distinct x.user_id from unnest(p_users) as x(user_id)),
  taught as (
    select distinct a.user_id, a.course_id
    from assignments a
    where a.org_id = p_org and a.user_id = any (p_users) and a.role = 'instructor'
  ),
  course_ids as (select distinct t.course_id from taught t),
  -- Every enrolment (learner assignment) of those courses, with its progress.
  learners as (
    select a.course_id, a.user_id, c.lesson_count,
           coalesce(p.lessons_completed, 0) as done,
           coalesce(p.time_spent_ms, 0) as time_ms,
           p.started_at, p.last_activity_at, p.last_lesson_completed_at,
           coalesce(c.lesson_count > 0 and p.lessons_completed >= c.lesson_count, false) as completed,
           -- at risk in this course: incomplete and no activity in it for 14 days
           (c.lesson_count > 0 and not coalesce(p.lessons_completed >= c.lesson_count, false)
            and (p.last_activity_at is null or p.last_activity_at < v_day_14)) as at_risk
    from assignments a
    join course_ids ci on ci.course_id = a.course_id
    left join courses c on c.org_id = a.org_id and c.course_id = a.course_id
    left join user_course_progress p
      on p.org_id = a.org_id and p.user_id = a.user_id and p.course_id = a.course_id
    where a.org_id = p_org and a.role = 'learner'
  ),
  lessons as (
    select l.course_id, l.user_id, l.lesson_id, l.best_score, l.last_event_at,
           (l.completed_at at time zone 'UTC')::date as completed_day
    from user_lesson_progress l
    join learners e on e.course_id = l.course_id and e.user_id = l.user_id
    where l.org_id = p_org
  ),
  enrolment_stats as (
    select e.course_id,
           count(*) as enrolled,
           count(*) filter (where e.last_activity_at is not null) as started,
           count(*) filter (where e.lesson_count > 0 and e.done * 2 >= e.lesson_count) as halfway,
           count(*) filter (where e.completed) as completed,
           round(avg(least(100.0, 100.0 * e.done / e.lesson_count)) filter (where e.lesson_count > 0), 2) as avg_progress,
           count(*) filter (where e.last_activity_at >= v_day_7) as active_7d,
           count(*) filter (where e.last_activity_at >= v_day_30) as active_30d,
           round((percentile_cont(0.5) within group (
             order by extract(epoch from e.last_lesson_completed_at - e.started_at) / 86400)
             filter (where e.completed))::numeric, 1) as median_days,
           round(avg(e.time_ms) filter (where e.last_activity_at is not null)) as avg_time_ms,
           count(*) filter (where e.at_risk) as at_risk,
           coalesce((array_agg(e.user_id order by e.user_id) filter (where e.at_risk))[1:20], '{}') as at_risk_ids
    from learners e
    group by e.course_id
  ),
  lesson_stats as (
    select l.course_id,
           count(*) filter (where l.completed_day between v_today - 6 and v_today) as completed_7d,
           count(*) filter (where l.completed_day between v_today - 13 and v_today - 7) as completed_prev_7d,
           count(*) filter (where l.completed_day between v_today - 29 and v_today) as completed_30d,
           round(avg(l.best_score), 2) as avg_score
    from lessons l
    group by l.course_id
  ),
  -- Each scored learner's mean best score, bucketed.
  score_distribution as (
    select s.course_id, jsonb_build_object(
             '0-49', count(*) filter (where s.score < 50),
             '50-69', count(*) filter (where s.score >= 50 and s.score < 70),
             '70-84', count(*) filter (where s.score >= 70 and s.score < 85),
             '85-100', count(*) filter (where s.score >= 85)) as buckets
    from (select l.course_id, l.user_id, avg(l.best_score) as score
          from lessons l where l.best_score is not null
          group by l.course_id, l.user_id) s
    group by s.course_id
  ),
  -- Lessons carry no order, so the drop-off lesson is where stalled learners
  -- (at risk, having started) were last seen: the most common such lesson.
  drop_off as (
    select distinct on (x.course_id) x.course_id, x.lesson_id, x.learners
    from (select y.course_id, y.lesson_id, count(*) as learners
          from (select distinct on (l.course_id, l.user_id) l.course_id, l.user_id, l.lesson_id
                from lessons l
                join learners e on e.course_id = l.course_id and e.user_id = l.user_id and e.at_risk
                order by l.course_id, l.user_id, l.last_event_at desc, l.lesson_id) y
          group by y.course_id, y.lesson_id) x
    order by x.course_id, x.learners desc, x.lesson_id
  ),
  hardest as (
    select distinct on (x.course_id) x.course_id, x.lesson_id, x.avg_score
    from (select l.course_id, l.lesson_id, round(avg(l.best_score), 2) as avg_score
          from lessons l where l.best_score is not null
          group by l.course_id, l.lesson_id) x
    order by x.course_id, x.avg_score, x.lesson_id
  ),
  weeks as (
    select w::date as week_start
    from generate_series(v_first_week::timestamp, date_trunc('week', v_today::timestamp), interval '1 week') w
  ),
  week_completions as (
    select l.course_id, date_trunc('week', l.completed_day::timestamp)::date as week_start,
           count(*) as lessons, count(distinct l.user_id) as learners
    from lessons l where l.completed_day between v_first_week and v_today
    group by 1, 2
  ),
  series as (
    select ci.course_id,
           jsonb_agg(jsonb_build_object(
             'weekStart', to_char(w.week_start, 'YYYY-MM-DD'),
             'lessonsCompleted', coalesce(c.lessons, 0),
             'learners', coalesce(c.learners, 0)
           ) order by w.week_start) as items
    from course_ids ci cross join weeks w
    left join week_completions c on c.course_id = ci.course_id and c.week_start = w.week_start
    group by ci.course_id
  ),
  per_course as (
    select ci.course_id,
           coalesce(es.enrolled, 0) as enrolled,
           coalesce(es.completed, 0) as completed,
           coalesce(es.at_risk, 0) as at_risk,
           coalesce(ls.completed_7d, 0) as completed_7d,
           jsonb_build_object(
             'courseId', ci.course_id,
             'lessonCount', c.lesson_count,
             'enrolledLearners', coalesce(es.enrolled, 0),
             'startedLearners', coalesce(es.started, 0),
             'completedLearners', coalesce(es.completed, 0),
             'completionFunnel', jsonb_build_object(
               'enrolled', coalesce(es.enrolled, 0), 'started', coalesce(es.started, 0),
               'halfway', coalesce(es.halfway, 0), 'completed', coalesce(es.completed, 0)),
             'completionRatePct', case when c.lesson_count > 0 and es.enrolled > 0
                                       then round(100.0 * es.completed / es.enrolled, 2) end,
             'averageProgressPct', es.avg_progress,
             'activeLearners7d', coalesce(es.active_7d, 0),
             'activeLearners30d', coalesce(es.active_30d, 0),
             'lessonsCompleted7d', coalesce(ls.completed_7d, 0),
             'lessonsCompleted30d', coalesce(ls.completed_30d, 0),
             'averageScore', ls.avg_score,
             'scoreDistribution', coalesce(sd.buckets, '{"0-49": 0, "50-69": 0, "70-84": 0, "85-100": 0}'::jsonb),
             'medianDaysToComplete', es.median_days,
             'averageTimeSpentMs', es.avg_time_ms,
             'dropOffLesson', case when d.lesson_id is not null
                                   then jsonb_build_object('lessonId', d.lesson_id, 'learners', d.learners) end,
             'hardestLesson', case when h.lesson_id is not null
                                   then jsonb_build_object('lessonId', h.lesson_id, 'averageScore', h.avg_score) end,
             'atRiskLearners', jsonb_build_object('count', coalesce(es.at_risk, 0),
                                                  'userIds', to_jsonb(coalesce(es.at_risk_ids, '{}'))),
             'engagementTrend', jsonb_build_object(
               'thisWeekLessons', coalesce(ls.completed_7d, 0),
               'lastWeekLessons', coalesce(ls.completed_prev_7d, 0),
               'changePct', case when ls.completed_prev_7d > 0
                                 then round(100.0 * (ls.completed_7d - ls.completed_prev_7d) / ls.completed_prev_7d, 1) end),
             'completions12w', s.items
           ) as data
    from course_ids ci
    left join courses c on c.org_id = p_org and c.course_id = ci.course_id
    left join enrolment_stats es on es.course_id = ci.course_id
    left join lesson_stats ls on ls.course_id = ci.course_id
    left join score_distribution sd on sd.course_id = ci.course_id
    left join drop_off d on d.course_id = ci.course_id
    left join hardest h on h.course_id = ci.course_id
    left join series s on s.course_id = ci.course_id
  )
  select u.user_id, jsonb_build_object(
    'coursesTaught', count(pc.course_id),
    'totals', jsonb_build_object(
      'enrolledLearners', coalesce(sum(pc.enrolled), 0),
      'completedLearners', coalesce(sum(pc.completed), 0),
      'atRiskLearners', coalesce(sum(pc.at_risk), 0),
      'lessonsCompleted7d', coalesce(sum(pc.completed_7d), 0)),
    'courses', coalesce(jsonb_agg(pc.data order by pc.course_id) filter (where pc.course_id is not null), '[]'::jsonb)
  )
  from u
  left join taught t on t.user_id = u.user_id
  left join per_course pc on pc.course_id = t.course_id
  group by u.user_id;
end $$;
