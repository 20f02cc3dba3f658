-- Retention helpers. A partition older than RETENTION_DAYS goes through:
-- attached -> detached (concurrently, so ingestion never waits on it) ->
-- snapshotted and verified -> dropped. A run that stops anywhere leaves a
-- state the next run picks up: a detached table keeps its name, so it is
-- still found here.

-- Daily partitions of the event tables older than p_before, attached or left
-- detached by an interrupted run.
create function retention_partitions(p_before date)
returns table (parent text, partition_name text, day date, attached boolean, detach_pending boolean)
language sql stable as $$
  select p.parent, c.relname::text, d.day, i.inhrelid is not null, coalesce(i.inhdetachpending, false)
  from unnest(array['progress_events', 'analytics_events']) as p (parent)
  join pg_class c on c.relkind = 'r' and c.relname ~ ('^' || p.parent || '_p\d{8}$')
  join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
  -- substring() is null for other names, which the planner may evaluate this on first
  cross join lateral (select to_date(substring(c.relname from '_p(\d{8})$'), 'YYYYMMDD') as day) d
  left join pg_inherits i on i.inhrelid = c.oid
  where d.day < p_before
  order by d.day, p.parent
$$;

-- Are all of a partition's rows in the rollups already? (Rows below the
-- global mark are, for every org.) Dropping a partition whose rows the rollups
-- have not read would lose them from the rollups for good.
create function partition_rolled_up(p_partition text)
returns boolean
language plpgsql stable as $$
declare
  v_done boolean;
begin
  execute format('select not exists (select 1 from %I where ingest_xid >= (select xid_low from rollup_state))',
                 p_partition) into v_done;
  return v_done;
end $$;

-- The partition of one day, created if missing (restoring a snapshot of a day
-- retention dropped). Serialised with ensure_partitions.
create function ensure_day_partition(p_parent text, p_day date)
returns text
language plpgsql as $$
declare
  v_name text := format('%s_p%s', p_parent, to_char(p_day, 'YYYYMMDD'));
begin
  if p_parent not in ('progress_events', 'analytics_events') then
    raise exception 'not a partitioned event table: %', p_parent;
  end if;
  perform pg_advisory_xact_lock(hashtext('ensure_partitions'));
  if to_regclass(v_name) is null then
    execute format('create table %I partition of %I for values from (%L) to (%L)',
      v_name, p_parent, p_day::timestamp at time zone 'UTC', (p_day + 1)::timestamp at time zone 'UTC');
  end if;
  return v_name;
end $$;
