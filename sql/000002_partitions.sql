-- Keeps daily partitions of both event tables from p_retention_days back to
-- p_ahead_days ahead of today (UTC). Idempotent; concurrent callers serialise
-- on an advisory lock. Returns the partitions it created.
create function ensure_partitions(p_retention_days integer, p_ahead_days integer)
returns table (partition_name text)
language plpgsql as $$
declare
  today date := (now() at time zone 'UTC')::date;
  parent text;
  day date;
  name text;
begin
  perform pg_advisory_xact_lock(hashtext('ensure_partitions'));
  foreach parent in array array['progress_events', 'analytics_events'] loop
    for day in select generate_series(today - p_retention_days, today + p_ahead_days, interval '1 day')::date loop
      name := format('%s_p%s', parent, to_char(day, 'YYYYMMDD'));
      continue when to_regclass(name) is not null;
      execute format('create table %I partition of %I for values from (%L) to (%L)',
        name, parent, day::timestamp at time zone 'UTC', (day + 1)::timestamp at time zone 'UTC');
      partition_name := name;
      return next;
    end loop;
  end loop;
end $$;

-- The day range covered by a parent's partitions (for /api/health).
create function partition_range(p_parent text)
returns table (from_day date, to_day date)
language sql stable as $$
  select min(to_date(substring(c.relname from '_p(\d{8})$'), 'YYYYMMDD')),
         max(to_date(substring(c.relname from '_p(\d{8})$'), 'YYYYMMDD'))
  from pg_inherits i
  join pg_class c on c.oid = i.inhrelid
  where i.inhparent = p_parent::regclass
$$;
