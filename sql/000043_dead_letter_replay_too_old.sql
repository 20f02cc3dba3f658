-- A dead letter that can no longer be stored is discarded as too_old on
-- replay instead of failing the whole replay.
--
-- A deferred event waits for its assignment however long that takes, and
-- dead letters come back with a restored snapshot or from an API whose
-- RETENTION_DAYS differs from the worker's. Replaying one whose day has no
-- partition (retention dropped it, or never made it) failed the ingestion
-- call with `no partition of relation ... found for row`, and with it the
-- whole chunk: every other learner's ready events and the analytics stream of
-- the same call rolled back, on every run of the replay job, for good, and
-- `PUT .../assignments` answered 500 after committing its assignments. One
-- whose partition still existed was stored although older than the window,
-- which direct ingestion rejects as too_old (contract section 5).
--
-- RETENTION_DAYS is configuration of the processes, not of the database, so
-- the callers pass it. Rows taken by a call are deleted as before; those
-- outside the window or without an attached partition are not ingested but
-- counted in `too_old`, and a chunk of nothing but those still returns a row,
-- so callers looping "until no row" go on to the next chunk.

create function replay_dead_letter(p_user_ids text[], p_limit integer, p_retention_days integer)
returns table (stream text, replayed integer, accepted integer, duplicates integer, too_old integer)
language plpgsql as $$
declare
  v_stream text;
  v_events json;
  v_too_old integer;
  v_outcomes text;
begin
  foreach v_stream in array array['progress', 'analytics'] loop
    with days as materialized (
      -- UTC days that can take rows now: attached partitions, named as
      -- ensure_partitions names them. One being detached concurrently by
      -- retention (detach pending) takes no more rows.
      select to_date(substring(c.relname from '_p(\d{8})$'), 'YYYYMMDD') as day
      from pg_inherits i
      join pg_class c on c.oid = i.inhrelid
      where i.inhparent = (v_stream || '_events')::regclass
        and not i.inhdetachpending
    ),
    ready as (
      select d.stream, d.event_id, d.occurred_at,
             (p_retention_days is null
                or d.occurred_at >= now() - make_interval(days => p_retention_days))
             and (d.occurred_at at time zone 'UTC')::date in (select day from days) as storable
      from dead_letter_events d
      where d.stream = v_stream
        and (p_user_ids is null or d.user_id = any (p_user_ids))
        and exists (select 1 from assignments s
                    where s.user_id = d.user_id
                      and (v_stream = 'analytics' or s.course_id = d.course_id)
                      and (d.org_hint is null or s.org_id = d.org_hint))
        -- A day ahead whose partition upkeep has not made yet is not too old: it waits.
        and (d.occurred_at < now() or (d.occurred_at at time zone 'UTC')::date in (select day from days))
      order by d.event_id, d.occurred_at
      limit p_limit
      for update of d skip locked
    ),
    taken as (
      delete from dead_letter_events d using ready r
      where d.stream = r.stream and d.event_id = r.event_id and d.occurred_at = r.occurred_at
      returning d.event, r.storable
    )
    select json_agg(t.event || jsonb_build_object('i', t.n - 1)) filter (where t.storable),
           count(*) filter (where not t.storable)
    into v_events, v_too_old
    from (select event, storable, row_number() over (partition by storable) as n from taken) t;

    continue when v_events is null and v_too_old = 0;
    v_outcomes := case when v_events is null then ''
                       when v_stream = 'progress' then upsert_progress_batch(v_events)
                       else upsert_analytics_batch(v_events) end;
    stream := v_stream;
    replayed := length(v_outcomes);
    accepted := length(v_outcomes) - length(replace(v_outcomes, 'a', ''));
    duplicates := length(v_outcomes) - length(replace(v_outcomes, 'd', ''));
    too_old := v_too_old;
    return next;
  end loop;
end $$;

-- The old signature, for callers that know no window: it no longer fails on a
-- dead letter without a partition (discarded, as above), but cannot tell one
-- older than RETENTION_DAYS whose partition still exists.
create or replace function replay_dead_letter(p_user_ids text[] default null, p_limit integer default 1000)
returns table (stream text, replayed integer, accepted integer, duplicates integer)
language sql as $$
  select r.stream, r.replayed, r.accepted, r.duplicates
  from replay_dead_letter(p_user_ids, p_limit, null::integer) r
$$;
