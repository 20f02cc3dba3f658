-- Storing computed analytics, and the database-side coordination of the read
-- path: one queued recompute per user-role, and the manual-refresh limit.

-- Computes one role's metrics for a set of users of one org and stores them.
-- A result never replaces one computed for a later "now". Every stored row is
-- announced on the learner_analytics channel (delivered on commit), so API
-- instances drop it from their caches.
create function refresh_learner_analytics(p_org text, p_role text, p_users text[], p_now timestamptz)
returns integer
language plpgsql as $$
declare
  v_results jsonb;
  v_admin jsonb;
  v_count integer;
begin
  if p_role = 'learner' then
    select jsonb_object_agg(c.user_id, c.data) into v_results
    from compute_learner_analytics(p_org, p_users, p_now) c;
  elsif p_role = 'instructor' then
    select jsonb_object_agg(c.user_id, c.data) into v_results
    from compute_instructor_analytics(p_org, p_users, p_now) c;
  elsif p_role = 'admin' then
    v_admin := compute_admin_analytics(p_org, p_now);
    select jsonb_object_agg(x.user_id, v_admin) into v_results
    from (select distinct unnest(p_users) as user_id) x;
  else
    raise exception 'unknown analytics role: %', p_role using errcode = '22023';
  end if;
  if v_results is null then
    return 0;
  end if;

  with stored as (
    insert into learner_analytics as a (org_id, user_id, role, data, version, computed_at, recompute_requested_at)
    select p_org, r.key, p_role, r.value, analytics_version(), p_now, null
    from jsonb_each(v_results) r
    order by r.key
    on conflict (org_id, user_id, role) do update set
      data = excluded.data,
      version = excluded.version,
      computed_at = excluded.computed_at,
      recompute_requested_at = null
    where a.computed_at is null or a.computed_at <= excluded.computed_at
    returning a.user_id
  )
  select count(pg_notify('learner_analytics',
                         json_build_object('orgId', p_org, 'userId', s.user_id, 'role', p_role)::text))
  into v_count
  from stored s;
  return v_count;
end $$;

-- Compare-and-set on the row's guard: true for exactly one caller until the
-- recompute lands or p_lease passes (a lost job must not block the user-role
-- forever). Creates the row (data null) when there is none yet.
create function request_learner_recompute(p_org text, p_user text, p_role text, p_lease interval)
returns boolean
language sql as $$
  with claimed as (
    insert into learner_analytics as a (org_id, user_id, role, recompute_requested_at)
    values (p_org, p_user, p_role, now())
    on conflict (org_id, user_id, role) do update set recompute_requested_at = now()
    where a.recompute_requested_at is null or a.recompute_requested_at < now() - p_lease
    returning 1
  )
  select exists (select 1 from claimed)
$$;

-- Gives the guard back when the enqueue failed, so the next read retries.
create function release_learner_recompute(p_org text, p_user text, p_role text)
returns void
language sql as $$
  update learner_analytics set recompute_requested_at = null
  where org_id = p_org and user_id = p_user and role = p_role
$$;

-- Every user-role of every org, in chunks of at most p_chunk_size users of one
-- org and role: users with learner or instructor assignments, and every row
-- already stored (admins, who exist only in tokens, get a row on first read).
-- Learners come first (their computation persists activity days); instructors
-- are ordered by the first course they teach, so chunks share courses; an
-- org's admins are one chunk, as their figures are computed once per org.
create function analytics_batch_chunks(p_chunk_size integer)
returns table (org_id text, role text, user_ids text[])
language sql stable as $$
  with pairs as (
    select x.org_id, x.user_id, x.role, min(x.course_id) as sort_key
    from (select a.org_id, a.user_id, a.role, a.course_id from assignments a
          union all
          select r.org_id, r.user_id, r.role, null from learner_analytics r) x
    group by x.org_id, x.user_id, x.role
  ),
  numbered as (
    select p.org_id, p.user_id, p.role,
           case when p.role = 'admin' then 0
                else (row_number() over (partition by p.org_id, p.role order by p.sort_key nulls last, p.user_id) - 1)
                     / p_chunk_size end as chunk
    from pairs p
  )
  select n.org_id, n.role, array_agg(n.user_id order by n.user_id)
  from numbered n
  group by n.org_id, n.role, n.chunk
  order by array_position(array['learner', 'instructor', 'admin'], n.role), n.org_id, n.chunk
$$;

-- One manual refresh slot for p_requested_by, if REFRESH_LIMIT allows: the
-- requester's rows are counted under a per-requester advisory lock, so
-- concurrent requests through any API instance cannot overshoot. Returns the
-- new slot's id, or null and the milliseconds until a slot frees.
create function claim_analytics_refresh(p_requested_by text, p_org text, p_user text, p_role text,
                                        p_max integer, p_window interval)
returns table (refresh_id bigint, retry_after_ms bigint)
language plpgsql as $$
declare
  v_count integer;
  v_oldest timestamptz;
begin
  perform pg_advisory_xact_lock(19530, hashtext(p_requested_by));
  select count(*) into v_count
  from job_requests r
  where r.requested_by = p_requested_by and r.kind = 'analytics-refresh'
    and r.requested_at > clock_timestamp() - p_window;
  if v_count >= p_max then
    -- a slot frees when the request that puts the count over the limit leaves
    select r.requested_at into v_oldest
    from job_requests r
    where r.requested_by = p_requested_by and r.kind = 'analytics-refresh'
      and r.requested_at > clock_timestamp() - p_window
    order by r.requested_at
    offset v_count - p_max
    limit 1;
    refresh_id := null;
    retry_after_ms := greatest(1, ceil(extract(epoch from (v_oldest + p_window - clock_timestamp())) * 1000))::bigint;
    return next;
    return;
  end if;
  insert into job_requests (kind, requested_by, requested_at, org_id, user_id, role)
  values ('analytics-refresh', p_requested_by, clock_timestamp(), p_org, p_user, p_role)
  returning id into refresh_id;
  retry_after_ms := null;
  return next;
end $$;
