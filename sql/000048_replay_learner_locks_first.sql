-- A dead-letter replay takes each learner's write lock before it locks the
-- learner's dead letters, as every other writer does.
--
-- The replay locked its chunk of dead letters (FOR UPDATE SKIP LOCKED) and
-- only then, inside upsert_progress_batch, the learners' shared write locks
-- (sql/000042). An erasure takes a learner's exclusive write lock and then
-- deletes the learner's dead letters. A replay holding one of those rows and
-- waiting for that learner's lock, and the erasure holding the lock and
-- waiting for the row, deadlocked: PostgreSQL aborted one of them, and when
-- it was the replay, its whole chunk (every learner's events in it) rolled
-- back.
--
-- Now a dead letter is taken only if its learner's shared lock can be had at
-- once (pg_try_advisory_xact_lock_shared, before the row lock); one whose
-- learner is being erased is skipped like a row another replay holds, and
-- goes on a later run (or with the erasure). The batch call then finds the
-- locks already held. Body as in sql/000043 but for that condition.
create or replace function replay_dead_letter(p_user_ids text[], p_limit integer, p_retention_days integer)
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
        and pg_try_advisory_xact_lock_shared(learner_write_lock_class(), learner_write_lock(d.user_id))
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
