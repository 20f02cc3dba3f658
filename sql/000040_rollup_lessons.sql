-- Rollups count lessons, not events: lessons_started and lessons_completed of a
-- bucket are the distinct (learner, course, lesson) with a lesson_started /
-- lesson_completed event in it (contract section 6: "lessons completed").
-- They counted events, so a learner who finished a lesson twice (a replayed
-- video sends a second completion with a new event id) counted twice, and a
-- school's day showed several times the lessons really completed.
--
-- As with active learners (000010), a distinct count cannot be added up across
-- runs but a set can: each run adds the bucket's new members and only those.

create table org_rollup_lessons (
  org_id           text not null,
  granularity      text not null,
  bucket           timestamptz not null,
  course_id        text not null,  -- '' is the whole org, as in org_rollups
  user_id          text not null,
  lesson_course_id text not null,  -- the lesson's own course: lesson ids are per course
  lesson_id        text not null,
  completed        boolean not null,  -- false: started
  primary key (org_id, granularity, bucket, course_id, user_id, lesson_course_id, lesson_id, completed)
);
-- Erasure deletes a learner's rows (every table with user_id, 000011).
create index org_rollup_lessons_by_user on org_rollup_lessons (org_id, user_id);

-- As in 000010, but for lessons_started / lessons_completed.
create or replace function rollup_add(p_org text, p_low xid8, p_high xid8, p_days date[] default null)
returns integer
language plpgsql as $$
declare
  v_rows integer;
begin
  with delta as materialized (
    select e.user_id, e.course_id as event_course, e.lesson_id, e.occurred_at, 1 as is_progress,
           (e.type = 'lesson_started')::int as started, (e.type = 'lesson_completed')::int as completed,
           e.time_spent_ms::bigint as time_spent, null::text as name
    from progress_events e
    where e.org_id = p_org and e.ingest_xid >= p_low and e.ingest_xid < p_high
      and (p_days is null or (e.occurred_at at time zone 'UTC')::date = any (p_days))
    union all
    select e.user_id, e.course_id, null, e.occurred_at, 0, 0, 0, 0, e.name
    from analytics_events e
    where e.org_id = p_org and e.ingest_xid >= p_low and e.ingest_xid < p_high
      and (p_days is null or (e.occurred_at at time zone 'UTC')::date = any (p_days))
  ),
  -- Each event counts in its hour and its day, for its course and for the org.
  expanded as materialized (
    select g.granularity, date_trunc(g.granularity, d.occurred_at, 'UTC') as bucket, s.course_id,
           d.user_id, d.event_course, d.lesson_id, d.is_progress, d.started, d.completed, d.time_spent, d.name
    from delta d
    cross join (values ('hour'), ('day')) as g (granularity)
    cross join lateral (select '' as course_id
                        union all
                        select d.event_course where d.event_course is not null) s
  ),
  members as (
    insert into org_rollup_learners (org_id, granularity, bucket, course_id, user_id)
    select distinct p_org, granularity, bucket, course_id, user_id
    from expanded
    order by 1, 2, 3, 4, 5
    on conflict do nothing
    returning granularity, bucket, course_id
  ),
  new_members as (
    select granularity, bucket, course_id, count(*) as n from members group by 1, 2, 3
  ),
  lessons as (
    insert into org_rollup_lessons (org_id, granularity, bucket, course_id, user_id, lesson_course_id, lesson_id, completed)
    select distinct p_org, granularity, bucket, course_id, user_id, event_course, lesson_id, completed = 1
    from expanded
    where started = 1 or completed = 1
    order by 1, 2, 3, 4, 5, 6, 7, 8
    on conflict do nothing
    returning granularity, bucket, course_id, completed
  ),
  new_lessons as (
    select granularity, bucket, course_id,
           count(*) filter (where not completed) as started, count(*) filter (where completed) as completed
    from lessons group by 1, 2, 3
  ),
  sums as (
    select granularity, bucket, course_id, sum(is_progress) as progress_events,
           sum(time_spent) as time_spent, count(name) as analytics_events
    from expanded
    group by 1, 2, 3
  ),
  counters as (
    insert into org_rollups as r (org_id, granularity, bucket, course_id, active_learners, progress_events,
                                  lessons_started, lessons_completed, time_spent_ms, analytics_events)
    select p_org, s.granularity, s.bucket, s.course_id, coalesce(m.n, 0), s.progress_events,
           coalesce(l.started, 0), coalesce(l.completed, 0), s.time_spent, s.analytics_events
    from sums s
    left join new_members m using (granularity, bucket, course_id)
    left join new_lessons l using (granularity, bucket, course_id)
    order by 2, 3, 4
    on conflict (org_id, granularity, bucket, course_id) do update set
      active_learners   = r.active_learners + excluded.active_learners,
      progress_events   = r.progress_events + excluded.progress_events,
      lessons_started   = r.lessons_started + excluded.lessons_started,
      lessons_completed = r.lessons_completed + excluded.lessons_completed,
      time_spent_ms     = r.time_spent_ms + excluded.time_spent_ms,
      analytics_events  = r.analytics_events + excluded.analytics_events,
      updated_at        = now()
    returning 1
  ),
  names as (
    insert into org_rollup_event_names as n (org_id, granularity, bucket, course_id, name, events)
    select p_org, granularity, bucket, course_id, name, count(*)
    from expanded
    where name is not null
    group by 2, 3, 4, 5
    order by 2, 3, 4, 5
    on conflict (org_id, granularity, bucket, course_id, name) do update set events = n.events + excluded.events
    returning 1
  )
  select count(*) into v_rows from delta;
  return v_rows;
end $$;

-- As in 000010, and the lesson sets of those days go too.
create or replace function rollup_recompute_days(p_org text, p_days date[], p_mark xid8)
returns void
language plpgsql as $$
begin
  delete from org_rollups
  where org_id = p_org and (bucket at time zone 'UTC')::date = any (p_days);
  delete from org_rollup_event_names
  where org_id = p_org and (bucket at time zone 'UTC')::date = any (p_days);
  delete from org_rollup_learners
  where org_id = p_org and (bucket at time zone 'UTC')::date = any (p_days);
  delete from org_rollup_lessons
  where org_id = p_org and (bucket at time zone 'UTC')::date = any (p_days);
  perform rollup_add(p_org, '0', p_mark, p_days);
end $$;

-- The lessons of what is already rolled up (below each org's mark), and the
-- counters of those buckets recounted from them. Buckets whose raw events
-- retention has dropped have no lessons to recount: they keep their event
-- counts (docs/workers.md). Reads every stored lesson_started and
-- lesson_completed event once: on a large database, apply it in a quiet hour.
insert into org_rollup_lessons (org_id, granularity, bucket, course_id, user_id, lesson_course_id, lesson_id, completed)
select distinct e.org_id, g.granularity, date_trunc(g.granularity, e.occurred_at, 'UTC'), s.course_id,
       e.user_id, e.course_id, e.lesson_id, e.type = 'lesson_completed'
from progress_events e
left join rollup_org_state o on o.org_id = e.org_id
cross join rollup_state r
cross join (values ('hour'), ('day')) as g (granularity)
cross join lateral (values (''), (e.course_id)) as s (course_id)
where e.type in ('lesson_started', 'lesson_completed')
  and e.ingest_xid < greatest(coalesce(o.xid_high, '0'), r.xid_low)
on conflict do nothing;

update org_rollups r
set lessons_started = x.started, lessons_completed = x.completed, updated_at = now()
from (select org_id, granularity, bucket, course_id,
             count(*) filter (where not completed) as started, count(*) filter (where completed) as completed
      from org_rollup_lessons
      group by 1, 2, 3, 4) x
where r.org_id = x.org_id and r.granularity = x.granularity and r.bucket = x.bucket and r.course_id = x.course_id;
