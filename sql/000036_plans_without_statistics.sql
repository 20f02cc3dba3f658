-- The write procedures' plans must not depend on statistics. Their plans are
-- generic and cached per connection (000035), so a plan made before a table's
-- first ANALYZE lasts until autovacuum gets to it: on a new database,
-- recompute_course_progress read user_lesson_progress with a sequential scan
-- on every call (18 million rows read in 4,241 calls, twice the CPU per call)
-- because the empty table looked cheaper to scan than to search. Every access
-- these functions make is meant to be an index lookup or an insert, so
-- sequential scans are ruled out for them alone; nothing else changes.
alter function upsert_progress_batch(json) set enable_seqscan = off;
alter function upsert_analytics_batch(json) set enable_seqscan = off;
alter function recompute_course_progress(text[], text[], text[]) set enable_seqscan = off;
