-- Cohort discovery (docs/analytics.md, "Cohorts"): three traits per learner of
-- an org, each scaled to [0, 1] by a fixed rule (not by the population, so a
-- learner's point does not move when others join):
--   velocity  = min(lessons completed in the 28 days ending today / 4, 10) / 10
--   affinity  = time spent in the top category / all time spent (0 when none)
--   retention = active UTC days among the 28 ending today / 28 (the last 3
--               days from the events, older ones from the stored history)
-- The workers stage these rows (stage_cohort_traits), stream them through a
-- cursor into a grid, cluster, then call store_cohorts, which assigns every
-- learner in one statement; all in one transaction.
create function cohort_traits(p_org text, p_now timestamptz)
returns table (user_id text, velocity double precision, affinity double precision, retention double precision)
language sql stable as $$
  with
  today as (select (p_now at time zone 'UTC')::date as day),
  learners as (
    select distinct a.user_id from assignments a where a.org_id = p_org and a.role = 'learner'
  ),
  completions as (
    select l.user_id, count(*) as n
    from today t, user_lesson_progress l
    where l.org_id = p_org
      and l.completed_at >= (t.day - 27)::timestamp at time zone 'UTC'
      and l.completed_at < (t.day + 1)::timestamp at time zone 'UTC'
    group by l.user_id
  ),
  focus as (
    select x.user_id, max(x.ms) filter (where x.category is not null) / nullif(sum(x.ms), 0) as share
    from (select p.user_id, c.category, sum(p.time_spent_ms)::float8 as ms
          from user_course_progress p
          left join courses c on c.org_id = p.org_id and c.course_id = p.course_id
          where p.org_id = p_org
          group by p.user_id, c.category) x
    group by x.user_id
  ),
  active as (
    select d.user_id, count(*) as days
    from today t, activity_days(p_org, null, t.day - 27, p_now, interval '2 days') d
    where d.events > 0
    group by d.user_id
  )
  select l.user_id,
         least(coalesce(c.n, 0) / 4.0, 10)::float8 / 10,
         coalesce(f.share, 0),
         coalesce(a.days, 0)::float8 / 28
  from learners l
  left join completions c on c.user_id = l.user_id
  left join focus f on f.user_id = l.user_id
  left join active a on a.user_id = l.user_id
$$;

-- First step of a discovery, in the caller's transaction: the org's learners
-- with their traits, cluster not yet known. The caller then streams them
-- (cohort_members, not the trait query again) and calls store_cohorts. Runs
-- for one org are serialised by an advisory lock held to commit.
create function stage_cohort_traits(p_org text, p_now timestamptz)
returns integer
language plpgsql as $$
declare
  v_learners integer;
begin
  perform pg_advisory_xact_lock(19531, hashtext(p_org));
  delete from cohort_members where org_id = p_org;
  insert into cohort_members (org_id, user_id, cluster, velocity, affinity, retention)
  select p_org, t.user_id, null, t.velocity, t.affinity, t.retention
  from cohort_traits(p_org, p_now) t;
  get diagnostics v_learners = row_count;
  return v_learners;
end $$;

-- Second step: every staged learner goes to the nearest centroid (ties to the
-- lower cluster number) in one statement, and the archetypes are stored with
-- the counts that assignment gave. p_centroids is a JSON array of
-- { cluster, name, velocity, affinity, retention }.
create function store_cohorts(p_org text, p_now timestamptz, p_method text, p_silhouette double precision,
                              p_centroids jsonb)
returns jsonb
language plpgsql as $$
declare
  v_archetypes jsonb;
  v_learners integer;
begin
  with centroids as materialized (
    select * from jsonb_to_recordset(p_centroids)
      as c(cluster integer, name text, velocity float8, affinity float8, retention float8)
  )
  update cohort_members m set cluster = (
    select c.cluster from centroids c
    order by (m.velocity - c.velocity) ^ 2 + (m.affinity - c.affinity) ^ 2 + (m.retention - c.retention) ^ 2,
             c.cluster
    limit 1)
  where m.org_id = p_org;
  select count(*) into v_learners from cohort_members where org_id = p_org;

  select coalesce(jsonb_agg(jsonb_build_object(
           'cluster', c.cluster,
           'name', c.name,
           'count', coalesce(m.n, 0),
           'centroid', jsonb_build_object('velocity', round(c.velocity::numeric, 4),
                                          'affinity', round(c.affinity::numeric, 4),
                                          'retention', round(c.retention::numeric, 4)))
         order by c.cluster), '[]'::jsonb)
  into v_archetypes
  from jsonb_to_recordset(p_centroids)
    as c(cluster integer, name text, velocity float8, affinity float8, retention float8)
  left join (select m.cluster, count(*) as n from cohort_members m where m.org_id = p_org group by m.cluster) m
    on m.cluster = c.cluster;

  insert into cohort_runs as r (org_id, version, computed_at, k, method, silhouette, learners, archetypes, requested_at)
  values (p_org, analytics_version(), p_now, jsonb_array_length(p_centroids), p_method, p_silhouette,
          v_learners, v_archetypes, null)
  on conflict (org_id) do update set
    version = excluded.version, computed_at = excluded.computed_at, k = excluded.k,
    method = excluded.method, silhouette = excluded.silhouette, learners = excluded.learners,
    archetypes = excluded.archetypes, requested_at = null;
  return v_archetypes;
end $$;

-- The cohort twin of request_learner_recompute: true for one caller per lease.
create function request_cohorts(p_org text, p_lease interval)
returns boolean
language sql as $$
  with claimed as (
    insert into cohort_runs as r (org_id, requested_at) values (p_org, now())
    on conflict (org_id) do update set requested_at = now()
    where r.requested_at is null or r.requested_at < now() - p_lease
    returning 1
  )
  select exists (select 1 from claimed)
$$;
