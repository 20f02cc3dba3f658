-- Per-user, per-UTC-day activity: events of both streams and progress time
-- spent, by skew-corrected time (occurred_at plus the stored client offset).

-- ISO 8601 in UTC with a Z, as the API writes every timestamp.
create function iso_utc(p_at timestamptz) returns text
language sql immutable as $$
  select to_char(p_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- Days of one org's users from the raw event partitions, for corrected times in
-- [p_from, p_to]. p_users null means every user of the org. Partitions are
-- chosen by the client's occurred_at, so the scan reaches one day beyond the
-- window on each side: an event whose clock was off by more than a day at the
-- very edge of a window is missed.
-- The two guarded branches per stream keep a usable index plan for a user list
-- (org, user, occurred_at) as well as for the whole org.
create function live_activity_days(p_org text, p_users text[], p_from timestamptz, p_to timestamptz)
returns table (user_id text, day date, events bigint, active_ms bigint, last_at timestamptz)
language sql stable as $$
  with raw as (
    select p.user_id, p.occurred_at + coalesce(p.clock_skew_ms, 0) * interval '1 millisecond' as at,
           p.time_spent_ms::bigint as ms
    from progress_events p
    where p_users is not null and p.org_id = p_org and p.user_id = any (p_users)
      and p.occurred_at >= p_from - interval '1 day' and p.occurred_at <= p_to + interval '1 day'
    union all
    select p.user_id, p.occurred_at + coalesce(p.clock_skew_ms, 0) * interval '1 millisecond',
           p.time_spent_ms::bigint
    from progress_events p
    where p_users is null and p.org_id = p_org
      and p.occurred_at >= p_from - interval '1 day' and p.occurred_at <= p_to + interval '1 day'
    union all
    select a.user_id, a.occurred_at + coalesce(a.clock_skew_ms, 0) * interval '1 millisecond', 0::bigint
    from analytics_events a
    where p_users is not null and a.org_id = p_org and a.user_id = any (p_users)
      and a.occurred_at >= p_from - interval '1 day' and a.occurred_at <= p_to + interval '1 day'
    union all
    select a.user_id, a.occurred_at + coalesce(a.clock_skew_ms, 0) * interval '1 millisecond', 0::bigint
    from analytics_events a
    where p_users is null and a.org_id = p_org
      and a.occurred_at >= p_from - interval '1 day' and a.occurred_at <= p_to + interval '1 day'
  )
  select r.user_id, (r.at at time zone 'UTC')::date, count(*), sum(r.ms)::bigint, max(r.at)
  from raw r
  where r.at >= p_from and r.at <= p_to
  group by r.user_id, (r.at at time zone 'UTC')::date
$$;

-- Persists the live window's days of some users into learner_activity_days,
-- so their history outlives the event partitions. A day's figures only grow
-- while its events are retained, so merging keeps the larger of the two.
create function sync_activity_days(p_org text, p_users text[], p_now timestamptz)
returns void
language sql as $$
  insert into learner_activity_days as d (org_id, user_id, day, events, active_ms, last_at)
  select p_org, l.user_id, l.day, l.events, l.active_ms, l.last_at
  from live_activity_days(p_org, p_users, p_now - analytics_live_window(), p_now) l
  order by l.user_id, l.day
  on conflict (org_id, user_id, day) do update set
    events    = greatest(d.events, excluded.events),
    active_ms = greatest(d.active_ms, excluded.active_ms),
    last_at   = greatest(d.last_at, excluded.last_at)
$$;

-- Days from p_from to the day of p_now: the days of the live window (by
-- default analytics_live_window(), whole UTC days) from the events, older days
-- from the stored history, merged as sync_activity_days merges them.
-- Read-only, for the paths that must not write (pattern evolution, cohorts,
-- org-wide figures). Org-wide callers pass a short p_live: scanning a month of
-- an org's events is what costs, and the daily batch has stored every
-- learner's history up to its last run.
create function activity_days(p_org text, p_users text[], p_from date, p_now timestamptz,
                              p_live interval default analytics_live_window())
returns table (user_id text, day date, events bigint, active_ms bigint, last_at timestamptz)
language sql stable as $$
  select coalesce(l.user_id, s.user_id), coalesce(l.day, s.day),
         greatest(l.events, s.events), greatest(l.active_ms, s.active_ms), greatest(l.last_at, s.last_at)
  from live_activity_days(p_org, p_users,
                          greatest(p_from, ((p_now - p_live) at time zone 'UTC')::date)::timestamp at time zone 'UTC',
                          p_now) l
  full join (
    select s.user_id, s.day, s.events::bigint as events, s.active_ms, s.last_at
    from learner_activity_days s
    where s.org_id = p_org and (p_users is null or s.user_id = any (p_users))
      and s.day >= p_from and s.day <= (p_now at time zone 'UTC')::date
  ) s on s.user_id = l.user_id and s.day = l.day
$$;
