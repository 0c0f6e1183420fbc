-- sqlxmq_py schema: indexes for the admin reads (list_jobs, the dashboard's counts), so that a
-- page of jobs newest first is a walk down an index under every filter the API offers, however
-- many jobs are queued. Plain indexes on tables and columns of 0001 and 0002 only.
--
-- mq_jobs is the hot table, so it gets one index, and a partial one: leased rows ('l') are left
-- out, so that leasing a job (r -> l, the runner's hot path) writes no entry to it. Running jobs
-- are few (at most the runners' concurrency) and mq_jobs_leased_idx already finds them. The
-- first key is the state as list_jobs reports it: 't' for a scheduled job that already failed
-- an attempt (retrying), else the state code. The statements in queries.sql spell this
-- expression exactly as here, or the planner does not match it to the index. state and
-- attempts are included so that counting a state's jobs is an index-only scan. That costs no
-- update that could have been HOT: attempts changes only when a job is leased, and state is in
-- the predicates of the partial indexes of 0001 already.
--
-- These indexes hold columns the runner looks rows up by (id, channel_name), so each is partial
-- with a predicate the runner's statements never state (`attempts >= 0`, `name IS NOT NULL`:
-- always true, by the table's constraints): a planner misled by bad statistics (a table that
-- autovacuum recorded as empty) can then never walk one of them whole where the runner means a
-- probe of the primary key. The admin statements state the predicate.
CREATE INDEX mq_jobs_admin_idx ON mq_jobs (
    (CASE WHEN state = 's' AND attempts > 0 THEN 't'::"char" ELSE state END), channel_name, id
) INCLUDE (state, attempts) WHERE state <> 'l' AND attempts >= 0;

-- The other indexes hold the first 512 characters of their text column (the statements also
-- compare the whole value when it is that long), so that no name, channel or key the queue
-- accepts is too long for them
-- (btree entries are limited to about 2,700 bytes): a kept job's row in mq_history, written
-- when the job completes, must never be refused.

-- Jobs by name (the name lives in mq_payloads).
CREATE INDEX mq_payloads_name_idx ON mq_payloads (left(name, 512), id) WHERE name IS NOT NULL;

-- Kept jobs by state, by channel (and state), by name and by key. mq_history is written once
-- per kept job, off the runners' lease path.
CREATE INDEX mq_history_state_idx ON mq_history (state, id);
CREATE INDEX mq_history_channel_idx ON mq_history (left(channel_name, 512), state, id);
CREATE INDEX mq_history_name_idx ON mq_history (left(name, 512), id);
CREATE INDEX mq_history_job_key_idx ON mq_history (left(job_key, 512), id)
    WHERE job_key IS NOT NULL;
