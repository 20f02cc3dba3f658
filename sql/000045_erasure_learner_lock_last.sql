-- An erasure takes its learner lock last, after the org's locks.
--
-- sql/000042 wrapped erase_learner in a function that took the exclusive
-- per-learner write lock first, and only then waited for the org's locks: its
-- analytics recomputes (sql/000038), a cohort discovery (sql/000041) and a
-- rollup chunk (the org's rollup row, sql/000010). Those can take seconds,
-- and the learner locks are 64 keys shared by every org's batches, so
-- meanwhile every batch naming a learner hashed to that key waited, in any
-- org, and with group commit so did the batches coalesced with it: an admin
-- of one org erasing a made-up user held up other orgs' ingestion for as long
-- as their own org's work ran.
--
-- erase_learner_unlocked now takes the learner lock itself, right after the
-- org's rollup row (sql/000044), the last of the org's locks. Batches take no
-- org lock, so this order cannot deadlock with them, and the erasure holds
-- the learner lock only while it deletes. The wrapper goes: erase_learner is
-- again the function that takes the org's locks (sql/000041).
drop function erase_learner(text, text, text, text, timestamptz);
alter function erase_learner_everywhere(text, text, text, text, timestamptz) rename to erase_learner;
