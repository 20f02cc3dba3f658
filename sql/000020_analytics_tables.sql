-- Learner analytics storage (docs/analytics.md): computed metrics per
-- (org, user, role), the per-day activity history they are computed from,
-- requested jobs (refresh limit and job ownership), and cohorts.

-- The metric catalogue's version. Rows computed by an older catalogue are
-- served but treated as stale, so a deploy that changes a definition is picked
-- up on the next read or daily batch.
create function analytics_version() returns integer
language sql immutable as $$ select 1 $$;

-- Raw events older than this are no longer read by the computations: days
-- before it come from learner_activity_days, which outlives event retention.
create function analytics_live_window() returns interval
language sql immutable as $$ select interval '35 days' $$;

create table learner_analytics (
  org_id                 text not null,
  user_id                text not null,
  role                   text not null check (role in ('learner', 'instructor', 'admin')),
  -- null until the first computation lands: the read path answers "calculating"
  data                   jsonb,
  version                integer,
  -- the "now" the metrics were computed for
  computed_at            timestamptz,
  -- compare-and-set guard: set when a recompute is enqueued, cleared when one
  -- lands, so concurrent stale reads enqueue one job between them
  recompute_requested_at timestamptz,
  primary key (org_id, user_id, role)
);

-- One row per (org, user, UTC day) with activity, by skew-corrected time.
-- Kept after the day's event partitions are dropped: streaks and weekly series
-- reach further back than RETENTION_DAYS.
create table learner_activity_days (
  org_id    text not null,
  user_id   text not null,
  day       date not null,
  events    integer not null,
  active_ms bigint not null,
  last_at   timestamptz not null,
  primary key (org_id, user_id, day)
);

-- Jobs enqueued on someone's request: who asked, about whom, which job. GET
-- /api/v1/jobs/:jobId answers only for jobs recorded here, and only to those
-- who may see that user. Manual analytics refreshes (kind 'analytics-refresh')
-- are also counted here for REFRESH_LIMIT: in the database, so the limit holds
-- across API instances.
create table job_requests (
  id           bigint generated always as identity primary key,
  kind         text not null,
  requested_by text not null,
  requested_at timestamptz not null default now(),
  org_id       text not null,
  user_id      text not null,
  role         text,
  queue        text,
  job_id       text unique
);
create index job_requests_by_requester on job_requests (requested_by, kind, requested_at);

-- The latest cohort discovery per org, and each learner's archetype in it.
create table cohort_runs (
  org_id        text primary key,
  version       integer,
  computed_at   timestamptz,
  k             integer,
  method        text,
  silhouette    double precision,
  learners      integer,
  archetypes    jsonb,
  -- compare-and-set guard, as learner_analytics.recompute_requested_at
  requested_at  timestamptz
);

create table cohort_members (
  org_id    text not null,
  user_id   text not null,
  -- null while a discovery is under way (between its two steps, in its transaction)
  cluster   integer,
  velocity  double precision not null,
  affinity  double precision not null,
  retention double precision not null,
  primary key (org_id, user_id)
);

-- Reads the computations make that the write path's keys do not serve:
-- recent completions of an org, a course's lesson and course rows, a course's
-- enrolments.
create index user_lesson_progress_completed on user_lesson_progress (org_id, completed_at) include (user_id)
  where completed_at is not null;
create index user_lesson_progress_by_course on user_lesson_progress (org_id, course_id);
create index user_course_progress_by_course on user_course_progress (org_id, course_id);
create index assignments_by_org_course on assignments (org_id, course_id, role);
