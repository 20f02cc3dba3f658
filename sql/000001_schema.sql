-- Core tables. Every key leads with org_id where an org exists, so the tables
-- can later be distributed by org (Citus) without changing a constraint.

create table courses (
  org_id       text not null,
  course_id    text not null,
  lesson_count integer not null check (lesson_count >= 0),
  category     text,
  updated_at   timestamptz not null default now(),
  primary key (org_id, course_id)
);

create table assignments (
  org_id      text not null,
  user_id     text not null,
  course_id   text not null,
  role        text not null default 'learner' check (role in ('learner', 'instructor')),
  assigned_at timestamptz not null default now(),
  primary key (org_id, user_id, course_id)
);
-- The write path resolves an event's org from (user, course).
create index assignments_by_user_course on assignments (user_id, course_id, org_id);

-- Ordered, so greatest() advances a status and never moves it back.
create type lesson_status as enum ('started', 'in_progress', 'completed');

-- Raw events, range-partitioned by the UTC day of the client's occurred_at.
-- The primary key is the idempotency key: (event_id, occurred_at) per org.
create table progress_events (
  org_id        text not null,
  event_id      uuid not null,
  occurred_at   timestamptz not null,
  user_id       text not null,
  course_id     text not null,
  lesson_id     text not null,
  type          text not null,
  progress      smallint,
  time_spent_ms integer not null default 0,
  score         numeric(5, 2),
  -- server receive time minus the client's sentAt: what analytics add to correct skew
  clock_skew_ms integer,
  received_at   timestamptz not null default now(),
  primary key (org_id, event_id, occurred_at)
) partition by range (occurred_at);
create index progress_events_by_user on progress_events (org_id, user_id, occurred_at);

create table analytics_events (
  org_id        text not null,
  event_id      uuid not null,
  occurred_at   timestamptz not null,
  user_id       text not null,
  name          text not null,
  course_id     text,
  lesson_id     text,
  session_id    text,
  properties    jsonb not null default '{}',
  clock_skew_ms integer,
  received_at   timestamptz not null default now(),
  primary key (org_id, event_id, occurred_at)
) partition by range (occurred_at);
create index analytics_events_by_user on analytics_events (org_id, user_id, occurred_at);

-- Per-lesson state, merged so that any order of the same events converges:
-- status and percent only rise, completion is the earliest, time is a sum over
-- distinct events (only newly inserted events ever add to it).
create table user_lesson_progress (
  org_id         text not null,
  user_id        text not null,
  course_id      text not null,
  lesson_id      text not null,
  status         lesson_status not null,
  progress_pct   smallint not null,
  best_score     numeric(5, 2),
  time_spent_ms  bigint not null,
  first_event_at timestamptz not null,
  last_event_at  timestamptz not null,
  completed_at   timestamptz,
  event_count    integer not null,
  updated_at     timestamptz not null default now(),
  primary key (org_id, user_id, course_id, lesson_id)
);

-- Per-course aggregate of the lesson rows, recomputed for every touched pair.
-- Percent and completion depend on the course's lesson count, which admins may
-- change, so they are derived at read time (user_course_progress_view).
create table user_course_progress (
  org_id                   text not null,
  user_id                  text not null,
  course_id                text not null,
  lessons_started          integer not null,
  lessons_completed        integer not null,
  time_spent_ms            bigint not null,
  started_at               timestamptz not null,
  last_activity_at         timestamptz not null,
  last_lesson_completed_at timestamptz,
  updated_at               timestamptz not null default now(),
  primary key (org_id, user_id, course_id)
);

create view user_course_progress_view as
select p.org_id, p.user_id, p.course_id, p.lessons_started, p.lessons_completed,
       c.lesson_count,
       case when c.lesson_count > 0
            then round(least(100.0, 100.0 * p.lessons_completed / c.lesson_count), 2) end as progress_pct,
       case when c.lesson_count > 0 and p.lessons_completed >= c.lesson_count
            then p.last_lesson_completed_at end as completed_at,
       p.time_spent_ms, p.started_at, p.last_activity_at, p.updated_at
from user_course_progress p
left join courses c on c.org_id = p.org_id and c.course_id = p.course_id;

-- Events whose user and course no assignment links to an org yet. Replayed
-- through the same procedures once the assignment arrives.
create table dead_letter_events (
  stream      text not null check (stream in ('progress', 'analytics')),
  event_id    uuid not null,
  occurred_at timestamptz not null,
  user_id     text not null,
  course_id   text,
  org_hint    text,
  event       jsonb not null,
  reason      text not null default 'no_assignment',
  received_at timestamptz not null default now(),
  primary key (stream, event_id, occurred_at)
);
create index dead_letter_by_user on dead_letter_events (user_id, course_id);

-- One row per finished worker job run (for /api/health and operators).
create table worker_runs (
  id          bigint generated always as identity primary key,
  job         text not null,
  started_at  timestamptz not null,
  finished_at timestamptz not null default now(),
  summary     jsonb not null default '{}'
);
create index worker_runs_by_job on worker_runs (job, finished_at desc);
