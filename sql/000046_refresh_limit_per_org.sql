-- REFRESH_LIMIT counts a requester's refreshes within the org they refresh
-- in. User ids are an org's own (two schools' learner-42 are two people), and
-- the count was by requester id alone, so one org's learner-42 spent the
-- other's budget. The rate limit of the ingestion routes is keyed the same
-- way (src/api/plugins/rate-limit.ts).
create or replace function claim_analytics_refresh(p_requested_by text, p_org text, p_user text, p_role text,
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
  where r.requested_by = p_requested_by and r.kind = 'analytics-refresh' and r.org_id = p_org
    and r.requested_at > clock_timestamp() - p_window;
  if v_count >= p_max then
    -- a slot frees when the request that puts the count over the limit leaves
    select r.requested_at into v_oldest
    from job_requests r
    where r.requested_by = p_requested_by and r.kind = 'analytics-refresh' and r.org_id = p_org
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
