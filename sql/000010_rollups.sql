-- Org rollups: per org, per hour and per day (UTC, by occurred_at), per course
-- and for the whole org (course_id ''), kept up to date incrementally.
--
-- The watermark is a transaction id, not a time. Every event row records the
-- transaction that stored it (ingest_xid). A rollup run takes
-- pg_snapshot_xmin(pg_current_snapshot()) as its high-water mark: every
-- transaction below it has finished, and no transaction that starts later can
-- get an id below it, so the rows below the mark can no longer change except
-- by erasure. A received_at watermark would skip rows of a transaction that
-- began before the mark but committed after the run read past it.
--
-- What has been rolled up, per org: every event row with
--   ingest_xid < greatest(rollup_org_state.xid_high, rollup_state.xid_low)
-- and nothing else. A chunk adds the rows of one xid range and moves the org's
-- xid_high in the same transaction, so a crash either keeps both or neither.
-- rollup_state.xid_low only moves once every org with rows below it is done.

alter table progress_events add column ingest_xid xid8 not null default pg_current_xact_id();
alter table analytics_events add column ingest_xid xid8 not null default pg_current_xact_id();
-- Finding the orgs with new rows (any org), then reading one org's new rows.
create index progress_events_by_xid on progress_events (ingest_xid);
create index progress_events_by_org_xid on progress_events (org_id, ingest_xid);
create index analytics_events_by_xid on analytics_events (ingest_xid);
create index analytics_events_by_org_xid on analytics_events (org_id, ingest_xid);

create table rollup_state (
  singleton  boolean primary key default true check (singleton),
  xid_low    xid8 not null default '0',
  updated_at timestamptz not null default now()
);
insert into rollup_state default values;

create table rollup_org_state (
  org_id     text primary key,
  xid_high   xid8 not null default '0',
  updated_at timestamptz not null default now()
);

-- Additive counters. course_id '' is the whole org (ids are at least 1 char).
create table org_rollups (
  org_id            text not null,
  granularity       text not null check (granularity in ('hour', 'day')),
  bucket            timestamptz not null,
  course_id         text not null,
  active_learners   integer not null default 0,
  progress_events   bigint not null default 0,
  lessons_started   bigint not null default 0,
  lessons_completed bigint not null default 0,
  time_spent_ms     bigint not null default 0,
  analytics_events  bigint not null default 0,
  updated_at        timestamptz not null default now(),
  primary key (org_id, granularity, bucket, course_id)
);

create table org_rollup_event_names (
  org_id      text not null,
  granularity text not null,
  bucket      timestamptz not null,
  course_id   text not null,
  name        text not null,
  events      bigint not null,
  primary key (org_id, granularity, bucket, course_id, name)
);

-- Who was active in a bucket: exact distinct learners, because a count of
-- distinct users cannot be added up across runs but a set can.
create table org_rollup_learners (
  org_id      text not null,
  granularity text not null,
  bucket      timestamptz not null,
  course_id   text not null,
  user_id     text not null,
  primary key (org_id, granularity, bucket, course_id, user_id)
);
create index org_rollup_learners_by_user on org_rollup_learners (org_id, user_id);

-- Adds the org's events stored by transactions in [p_low, p_high), optionally
-- only those of some UTC days, to the rollup tables. The one aggregation both
-- the incremental runs and the recompute after an erasure use.
create function rollup_add(p_org text, p_low xid8, p_high xid8, p_days date[] default null)
returns integer
language plpgsql as $$
declare
  v_rows integer;
begin
  with delta as materialized (
    select e.user_id, e.course_id as event_course, e.occurred_at, 1 as is_progress,
           (e.type = 'lesson_started')::int as started, (e.type = 'lesson_completed')::int as completed,
           e.time_spent_ms::bigint as time_spent, null::text as name
    from progress_events e
    where e.org_id = p_org and e.ingest_xid >= p_low and e.ingest_xid < p_high
      and (p_days is null or (e.occurred_at at time zone 'UTC')::date = any (p_days))
    union all
    select e.user_id, e.course_id, e.occurred_at, 0, 0, 0, 0, e.name
    from analytics_events e
    where e.org_id = p_org and e.ingest_xid >= p_low and e.ingest_xid < p_high
      and (p_days is null or (e.occurred_at at time zone 'UTC')::date = any (p_days))
  ),
  -- Each event counts in its hour and its day, for its course and for the org.
  expanded as materialized (
    select g.granularity, date_trunc(g.granularity, d.occurred_at, 'UTC') as bucket, s.course_id,
           d.user_id, d.is_progress, d.started, d.completed, d.time_spent, d.name
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
  sums as (
    select granularity, bucket, course_id, sum(is_progress) as progress_events, sum(started) as started,
           sum(completed) as completed, sum(time_spent) as time_spent, count(name) as analytics_events
    from expanded
    group by 1, 2, 3
  ),
  counters as (
    insert into org_rollups as r (org_id, granularity, bucket, course_id, active_learners, progress_events,
                                  lessons_started, lessons_completed, time_spent_ms, analytics_events)
    select p_org, s.granularity, s.bucket, s.course_id, coalesce(m.n, 0), s.progress_events,
           s.started, s.completed, s.time_spent, s.analytics_events
    from sums s
    left join new_members m using (granularity, bucket, course_id)
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

-- Where a run starts (the lowest mark every org has reached) and ends (the
-- oldest transaction still running: everything below it has finished).
create function rollup_window()
returns table (xid_low xid8, xid_high xid8)
language sql volatile as $$
  select s.xid_low, pg_snapshot_xmin(pg_current_snapshot()) from rollup_state s
$$;

-- Orgs with rows stored by transactions in [p_low, p_high).
create function rollup_changed_orgs(p_low xid8, p_high xid8)
returns setof text
language sql stable as $$
  select org_id from progress_events where ingest_xid >= p_low and ingest_xid < p_high
  union
  select org_id from analytics_events where ingest_xid >= p_low and ingest_xid < p_high
$$;

-- Locks the org's watermark row (serialising this org's rollup chunks and
-- erasures) and returns how far its events are rolled up.
create function rollup_lock_org(p_org text)
returns xid8
language plpgsql as $$
declare
  v_global xid8;
  v_high xid8;
begin
  insert into rollup_org_state (org_id) values (p_org) on conflict do nothing;
  -- Read before the lock: a stale (lower) global mark is harmless, because an
  -- org whose rows lay between the stale and the current mark was brought past
  -- the current mark, which the locked row below then shows.
  select s.xid_low into v_global from rollup_state s;
  select o.xid_high into v_high from rollup_org_state o where o.org_id = p_org for update;
  return greatest(v_high, v_global);
end $$;

-- One bounded chunk of an org's rollup, in one transaction: the rows of at
-- most about p_max_rows events (whole transactions: a chunk ends on an xid
-- boundary) below p_high, added and the org's mark moved together.
create function rollup_org_chunk(p_org text, p_high xid8, p_max_rows integer)
returns table (events integer, reached xid8, done boolean)
language plpgsql as $$
declare
  v_low xid8;
  v_end xid8;
begin
  v_low := rollup_lock_org(p_org);
  if v_low >= p_high then
    return query select 0, v_low, true;
    return;
  end if;
  select x.ingest_xid into v_end
  from ((select ingest_xid from progress_events
         where org_id = p_org and ingest_xid >= v_low and ingest_xid < p_high
         order by ingest_xid limit p_max_rows + 1)
        union all
        (select ingest_xid from analytics_events
         where org_id = p_org and ingest_xid >= v_low and ingest_xid < p_high
         order by ingest_xid limit p_max_rows + 1)) x
  order by x.ingest_xid
  offset p_max_rows limit 1;
  if v_end is null then
    v_end := p_high;
  elsif v_end = v_low then
    -- One transaction stored more than a chunk: take it whole.
    select min(x.ingest_xid) into v_end
    from ((select min(ingest_xid) as ingest_xid from progress_events
           where org_id = p_org and ingest_xid > v_low and ingest_xid < p_high)
          union all
          (select min(ingest_xid) from analytics_events
           where org_id = p_org and ingest_xid > v_low and ingest_xid < p_high)) x;
    v_end := coalesce(v_end, p_high);
  end if;
  events := rollup_add(p_org, v_low, v_end);
  update rollup_org_state set xid_high = v_end, updated_at = now() where org_id = p_org;
  reached := v_end;
  done := v_end >= p_high;
  return next;
end $$;

-- After every org with rows below p_high has reached it.
create function rollup_advance(p_high xid8)
returns void
language sql as $$
  update rollup_state set xid_low = greatest(xid_low, p_high), updated_at = now()
$$;

-- Rebuilds an org's rollups for whole UTC days from the raw events below its
-- mark (the caller holds the org's row lock, see rollup_lock_org). Only for
-- days whose partitions still exist: raw events are the source of truth.
create function rollup_recompute_days(p_org text, p_days date[], p_mark xid8)
returns void
language plpgsql as $$
begin
  delete from org_rollups
  where org_id = p_org and (bucket at time zone 'UTC')::date = any (p_days);
  delete from org_rollup_event_names
  where org_id = p_org and (bucket at time zone 'UTC')::date = any (p_days);
  delete from org_rollup_learners
  where org_id = p_org and (bucket at time zone 'UTC')::date = any (p_days);
  perform rollup_add(p_org, '0', p_mark, p_days);
end $$;
