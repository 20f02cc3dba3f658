-- An erasure and a batch naming the same learner no longer interleave.
--
-- Erasure deleted the learner's events in one statement and their progress
-- rows in later ones. A batch that had inserted events but not yet committed
-- was invisible to the first delete and waited on the progress rows' locks
-- for the others: its events survived the erasure while the lesson and course
-- rows built from them were deleted. The retried events were then duplicates,
-- so nothing rebuilt those rows: progress stopped being the fold of the stored
-- events (found with two API instances and erasures alongside ingestion).
--
-- Every batch now takes, before it writes, a shared lock per learner it names
-- and an erasure an exclusive one first: a batch commits before an erasure of
-- one of its learners starts, or starts after it commits (and finds nothing
-- to build on, so what it stores is again the fold of what is stored). Shared
-- locks never wait for each other, so batches run as before. The locks are
-- hashed into 64 keys, so a call takes at most 64 whatever its size
-- (max_locks_per_transaction's default); two learners sharing one only means
-- a batch of the one waits for an erasure of the other. Taking them first, in
-- one statement, before any row lock, is also why the two cannot deadlock as
-- they did (erasure deleted course rows before lesson rows, batches lock the
-- lesson rows first).

create function learner_write_lock(p_user text)
returns integer
language sql immutable as $$
  select hashtext(p_user) & 63
$$;

-- The first key of these two-key advisory locks; 19531 is the cohort lock's (sql/000041).
create function learner_write_lock_class()
returns integer
language sql immutable as $$ select 19532 $$;

-- Taken by both streams' batch calls before they write (and so by replay).
create function lock_learners_for_write(p_events json)
returns void
language sql as $$
  select count(pg_advisory_xact_lock_shared(learner_write_lock_class(), k))
  from (select distinct learner_write_lock(x.user_id) as k
        from json_to_recordset(p_events) as x(user_id text) order by 1) keys
$$;

alter function upsert_progress_batch(json) rename to upsert_progress_batch_unlocked;
alter function upsert_analytics_batch(json) rename to upsert_analytics_batch_unlocked;

create function upsert_progress_batch(p_events json)
returns text
language plpgsql as $$
begin
  perform lock_learners_for_write(p_events);
  return upsert_progress_batch_unlocked(p_events);
end $$;

create function upsert_analytics_batch(p_events json)
returns text
language plpgsql as $$
begin
  perform lock_learners_for_write(p_events);
  return upsert_analytics_batch_unlocked(p_events);
end $$;

alter function erase_learner(text, text, text, text, timestamptz) rename to erase_learner_everywhere;

create function erase_learner(p_org text, p_user text, p_requested_by text default null,
                              p_job_id text default null, p_requested_at timestamptz default null)
returns jsonb
language plpgsql as $$
begin
  perform pg_advisory_xact_lock(learner_write_lock_class(), learner_write_lock(p_user));
  return erase_learner_everywhere(p_org, p_user, p_requested_by, p_job_id, p_requested_at);
end $$;
