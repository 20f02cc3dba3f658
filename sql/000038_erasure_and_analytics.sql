-- Erasure and the learner-analytics read path.
--
-- 1. API instances cache analytics rows and drop one when the
--    learner_analytics channel names it. Only stored recomputes announced
--    theirs, so after an erasure an instance kept serving the erased learner's
--    analytics as "fresh" until its cache entry expired. Every deleted row is
--    now announced too (delivered on commit, like the recomputes').
--
-- 2. A recompute computes from the events and then stores its result in a
--    later statement; an erasure committing in between left the erased
--    learner's analytics (and activity days) stored again. Erasure now waits
--    for the org's running recomputes, and recomputes for a running erasure,
--    on one advisory lock per org: shared by recomputes, exclusive to erasure.

create function notify_learner_analytics_deleted()
returns trigger
language plpgsql as $$
begin
  perform pg_notify('learner_analytics',
                    json_build_object('orgId', gone.org_id, 'userId', gone.user_id, 'role', gone.role)::text)
  from gone;
  return null;
end $$;

create trigger learner_analytics_deleted
  after delete on learner_analytics
  referencing old table as gone
  for each statement execute function notify_learner_analytics_deleted();

create function analytics_org_lock_key(p_org text)
returns bigint
language sql immutable as $$
  select hashtextextended('learner-analytics:' || p_org, 0)
$$;

alter function refresh_learner_analytics(text, text, text[], timestamptz) rename to refresh_learner_analytics_unlocked;

create function refresh_learner_analytics(p_org text, p_role text, p_users text[], p_now timestamptz)
returns integer
language plpgsql as $$
begin
  perform pg_advisory_xact_lock_shared(analytics_org_lock_key(p_org));
  return refresh_learner_analytics_unlocked(p_org, p_role, p_users, p_now);
end $$;

alter function erase_learner(text, text, text, text, timestamptz) rename to erase_learner_unlocked;

create function erase_learner(p_org text, p_user text, p_requested_by text default null,
                              p_job_id text default null, p_requested_at timestamptz default null)
returns jsonb
language plpgsql as $$
begin
  perform pg_advisory_xact_lock(analytics_org_lock_key(p_org));
  return erase_learner_unlocked(p_org, p_user, p_requested_by, p_job_id, p_requested_at);
end $$;
