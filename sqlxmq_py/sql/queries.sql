-- Every statement sqlxmq_py sends, addressed by the name in its "-- name:" line.
-- Parameters are bound by psycopg (%(name)s); nothing here is ever formatted into text.

-- name: migrations_lock
-- Transaction-level lock held while migrations are applied, so that concurrent migrate() calls
-- wait; it ends with the transaction (never left on a pooled server session).
SELECT pg_advisory_xact_lock(1836146532, 0)

-- name: migrations_create_table
CREATE TABLE IF NOT EXISTS mq_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: migrations_table_exists
-- Checked first so that an up-to-date migrate() needs no CREATE privilege (a runtime role may
-- call it at start-up).
SELECT to_regclass('mq_migrations') IS NOT NULL

-- name: migrations_applied
SELECT name, checksum FROM mq_migrations ORDER BY name

-- name: migrations_record
INSERT INTO mq_migrations (name, checksum) VALUES (%(name)s, %(checksum)s)

-- name: insert
SELECT pos, id FROM mq_insert(
    %(ids)s::uuid[], %(names)s::text[], %(channel_names)s::text[], %(channel_args)s::text[],
    %(payload_json)s::text[], %(payload_bytes)s::bytea[], %(delays)s::interval[],
    %(run_ats)s::timestamptz[], %(max_attempts)s::integer[], %(retry_backoffs)s::interval[],
    %(leases)s::interval[], %(ordered)s::boolean[], %(commit_intervals)s::interval[],
    %(priorities)s::integer[], %(job_keys)s::text[], %(job_key_modes)s::text[],
    %(throttles)s::interval[], %(retain_fors)s::interval[], %(dead_letters)s::text[],
    %(dead_letter_channels)s::text[], %(run_after_failed_parents)s::boolean[],
    %(dep_positions)s::integer[], %(dep_parents)s::uuid[], %(headers)s::jsonb[]
)
ORDER BY pos

-- name: insert_rated
-- As insert, for a batch where some job carries rate keys (mq_insert_rated): the keys as pairs
-- of the job's 1-based position and a key.
SELECT pos, id FROM mq_insert_rated(
    %(ids)s::uuid[], %(names)s::text[], %(channel_names)s::text[], %(channel_args)s::text[],
    %(payload_json)s::text[], %(payload_bytes)s::bytea[], %(delays)s::interval[],
    %(run_ats)s::timestamptz[], %(max_attempts)s::integer[], %(retry_backoffs)s::interval[],
    %(leases)s::interval[], %(ordered)s::boolean[], %(commit_intervals)s::interval[],
    %(priorities)s::integer[], %(job_keys)s::text[], %(job_key_modes)s::text[],
    %(throttles)s::interval[], %(retain_fors)s::interval[], %(dead_letters)s::text[],
    %(dead_letter_channels)s::text[], %(run_after_failed_parents)s::boolean[],
    %(dep_positions)s::integer[], %(dep_parents)s::uuid[], %(headers)s::jsonb[],
    %(rate_positions)s::integer[], %(rate_keys)s::text[]
)
ORDER BY pos

-- name: insert_one
-- One job without a key, dependencies or ordering (the common case) in one plain statement; its
-- state by the one rule (mq_new_state, migration 0017), which knows it has no parents or chain.
WITH payload AS (
    INSERT INTO mq_payloads (
        id, name, payload_json, payload_bytes, retry_backoff, retain_for, dead_letter,
        dead_letter_channel, headers
    )
    VALUES (
        %(id)s, %(name)s, %(payload_json)s::json, %(payload_bytes)s::bytea,
        %(retry_backoff)s::interval, %(retain_for)s::interval, %(dead_letter)s,
        %(dead_letter_channel)s, %(headers)s::jsonb
    )
), job AS (
    INSERT INTO mq_jobs (
        id, channel_name, channel_args, state, priority, attempt_at, max_attempts, lease,
        commit_deadline, payload_size
    )
    SELECT %(id)s, %(channel_name)s, %(channel_args)s,
        mq_new_state(%(commit_interval)s::interval IS NOT NULL, false, false, t.at),
        %(priority)s, t.at, %(max_attempts)s, %(lease)s::interval,
        now() + %(commit_interval)s::interval,
        mq_payload_size(%(payload_json)s::text, %(payload_bytes)s::bytea)
    FROM (SELECT coalesce(%(run_at)s::timestamptz, now() + %(delay)s::interval) AS at) AS t
    RETURNING state
)
SELECT mq_wake(ARRAY[%(channel_name)s::text], CASE WHEN job.state = 's' THEN 's' ELSE '' END)
FROM job
WHERE job.state <> 'u'

-- name: insert_plain
-- Many jobs without keys, dependencies or ordering, in one plain statement.
WITH payloads AS (
    INSERT INTO mq_payloads (
        id, name, payload_json, payload_bytes, retry_backoff, retain_for, dead_letter,
        dead_letter_channel, headers
    )
    SELECT * FROM unnest(
        %(ids)b::uuid[], %(names)b::text[], %(payload_json)b::json[], %(payload_bytes)b::bytea[],
        %(retry_backoffs)b::interval[], %(retain_fors)b::interval[], %(dead_letters)b::text[],
        %(dead_letter_channels)b::text[], %(headers)b::jsonb[]
    )
), jobs AS (
    INSERT INTO mq_jobs (
        id, channel_name, channel_args, state, priority, attempt_at, max_attempts, lease,
        commit_deadline, payload_size
    )
    SELECT u.id, u.cn, u.ca,
        mq_new_state(u.ci IS NOT NULL, false, false, u.at),
        u.prio, u.at, u.ma, u.lease, now() + u.ci, mq_payload_size(u.pj::text, u.pb)
    FROM (
        SELECT x.*, coalesce(x.run_at, now() + x.delay) AS at
        FROM unnest(
            %(ids)b::uuid[], %(channel_names)b::text[], %(channel_args)b::text[],
            %(priorities)b::integer[], %(run_ats)b::timestamptz[], %(delays)b::interval[],
            %(max_attempts)b::integer[], %(leases)b::interval[], %(commit_intervals)b::interval[],
            %(payload_json)b::json[], %(payload_bytes)b::bytea[]
        ) AS x(id, cn, ca, prio, run_at, delay, ma, lease, ci, pj, pb)
    ) AS u
    RETURNING channel_name, state
)
SELECT
    mq_wake(ARRAY(SELECT DISTINCT channel_name FROM jobs WHERE state = 'r')),
    mq_wake(ARRAY(SELECT DISTINCT channel_name FROM jobs WHERE state = 's'), 's')

-- name: copy_payloads
-- spawn_many's bulk path (plain jobs that may run at once): payload rows first, so that no job
-- is ever visible without its payload.
COPY mq_payloads (
    id, name, payload_json, payload_bytes, retry_backoff, retain_for, dead_letter,
    dead_letter_channel, headers
) FROM STDIN (FORMAT BINARY)

-- name: copy_jobs
-- Then the job rows: ready now (attempt_at defaults to now()).
COPY mq_jobs (id, channel_name, channel_args, state, priority, max_attempts, lease, payload_size)
FROM STDIN (FORMAT BINARY)

-- name: wake
SELECT mq_wake(%(channel_names)s::text[])

-- name: commit
SELECT mq_commit(%(ids)s::uuid[])

-- name: exists
SELECT EXISTS (SELECT 1 FROM mq_jobs WHERE id = %(id)s)

-- name: clear
WITH gone AS (
    DELETE FROM mq_jobs WHERE channel_name = ANY(%(channel_names)s::text[]) RETURNING id
), payloads AS (
    DELETE FROM mq_payloads AS p USING gone WHERE p.id = gone.id
)
SELECT count(*) FROM gone

-- name: clear_all
WITH gone AS (
    DELETE FROM mq_jobs RETURNING id
), payloads AS (
    DELETE FROM mq_payloads AS p USING gone WHERE p.id = gone.id
)
SELECT count(*) FROM gone

-- name: lease
-- Leases up to %(limit)s ready jobs holding at most about %(max_bytes)s of payload (see
-- mq_lease in migrations/0006_workers.sql and 0011_rate_limits.sql), recorded as taken by
-- runner %(runner)s (None for the pull API). Jobs it deferred for their rate keys are left out.
SELECT id, lease_token, attempt, max_attempts, channel_name, channel_args, lease, name,
    payload_json, payload_bytes, retry_backoff, job_key, retain_for, headers, payload_size
FROM mq_lease(
    %(channel_names)s::text[], %(cursor_name)s::text, %(cursor_args)s::text,
    %(limit)s::integer, %(default_lease)s::interval, %(excluded)s::text[],
    %(durable)s::boolean, %(max_bytes)s::bigint, %(runner)s::uuid
)
WHERE lease_token IS NOT NULL

-- name: runner_lease
-- The runner's lease: as lease, and each job it deferred for its rate keys as a row without a
-- lease token (the runner then knows that it looked at more jobs than it leased).
SELECT id, lease_token, attempt, max_attempts, channel_name, channel_args, lease, name,
    payload_json, payload_bytes, retry_backoff, job_key, retain_for, headers, payload_size
FROM mq_lease(
    %(channel_names)s::text[], %(cursor_name)s::text, %(cursor_args)s::text,
    %(limit)s::integer, %(default_lease)s::interval, %(excluded)s::text[],
    %(durable)s::boolean, %(max_bytes)s::bigint, %(runner)s::uuid
)

-- name: fetch_lease
-- The pull API's lease: as lease, excluding the paused channels.
SELECT id, lease_token, attempt, max_attempts, channel_name, channel_args, lease, name,
    payload_json, payload_bytes, retry_backoff, job_key, retain_for, headers, payload_size
FROM mq_lease(
    %(channel_names)s::text[], %(cursor_name)s::text, %(cursor_args)s::text,
    %(limit)s::integer, %(default_lease)s::interval,
    ARRAY(SELECT l.channel_name FROM mq_channel_limits AS l WHERE l.paused),
    %(durable)s::boolean, %(max_bytes)s::bigint
)
WHERE lease_token IS NOT NULL

-- name: lease_limited
-- Leases from one channel with a concurrency limit (mq_lease_limited); jobs deferred for their
-- rate keys come back as for runner_lease.
SELECT id, lease_token, attempt, max_attempts, channel_name, channel_args, lease, name,
    payload_json, payload_bytes, retry_backoff, job_key, retain_for, headers, payload_size
FROM mq_lease_limited(
    %(channel_name)s::text, %(cursor_name)s::text, %(cursor_args)s::text, %(limit)s::integer,
    %(default_lease)s::interval, %(durable)s::boolean, %(max_bytes)s::bigint, %(runner)s::uuid
)

-- name: promote
-- Makes due scheduled jobs ready (one runner at a time when %(exclusive)s) and says how many,
-- and the seconds until the next scheduled job of these channels (mq_promote).
SELECT promoted, wait_s FROM mq_promote(%(channel_names)s::text[], %(exclusive)s::boolean)

-- name: complete
-- Completes jobs still leased under the given tokens; returns (id, 'completed' | 'busy'); a job
-- not returned has lost its lease (mq_complete).
SELECT id, outcome FROM mq_complete(
    %(ids)b::uuid[], %(tokens)b::uuid[], %(results)s::text[], %(default_retain)s::interval,
    %(wait)s::boolean
)

-- name: fail
-- Records failed attempts; returns (id, 'r' | 's' | 'f' | 'c' | 'busy'); a job not returned has
-- lost its lease (mq_fail).
SELECT id, outcome FROM mq_fail(
    %(ids)b::uuid[], %(tokens)b::uuid[], %(delays)s::interval[], %(errors)s::text[],
    %(wait)s::boolean
)

-- name: renew
-- Extends held leases; returns (token, 'lost' | 'cancel') for leases gone and jobs asked to
-- stop (mq_renew).
SELECT lease_token, report FROM mq_renew(
    %(ids)b::uuid[], %(tokens)b::uuid[], %(default_lease)s::interval
)

-- name: release
-- Hands leases back without using up an attempt; with started, each job records the
-- interruption with the runner (by: host:pid); returns (id, 'interrupted' | 'cancelled')
-- (mq_release).
SELECT id, outcome FROM mq_release(
    %(ids)b::uuid[], %(tokens)b::uuid[], %(by)s::text, %(started)s::boolean
)

-- name: park
-- Parks leased jobs whose name this runner does not know (mq_park): (id, 'parked' |
-- 'cancelled'); a job not returned has lost its lease.
SELECT id, outcome FROM mq_park(%(ids)b::uuid[], %(tokens)b::uuid[], %(errors)s::text[])

-- name: unpark
-- Makes parked jobs of the names this runner knows runnable (mq_unpark); how many.
SELECT mq_unpark(%(names)s::text[])

-- name: keep_alive
UPDATE mq_jobs
SET attempt_at = greatest(attempt_at, now() + %(duration)s::interval)
WHERE id = %(id)s AND lease_token = %(token)s
RETURNING id

-- name: checkpoint
-- Saves a job's progress under its lease: the payload for the next attempt, extra attempts and a
-- longer lease. A job whose lease is gone (including a failed job) is never touched.
WITH job AS (
    UPDATE mq_jobs AS j
    SET max_attempts = least(j.max_attempts::bigint + %(extra_retries)s, 2147483647)::integer,
        attempt_at = greatest(j.attempt_at, now() + %(duration)s::interval),
        payload_size = mq_payload_size(
            CASE WHEN %(set_json)s THEN %(payload_json)s::text
                ELSE (SELECT p.payload_json::text FROM mq_payloads AS p WHERE p.id = j.id) END,
            CASE WHEN %(set_bytes)s THEN %(payload_bytes)s::bytea
                ELSE (SELECT p.payload_bytes FROM mq_payloads AS p WHERE p.id = j.id) END
        )
    WHERE j.id = %(id)s AND j.lease_token = %(token)s
    RETURNING j.id
)
UPDATE mq_payloads AS p
SET payload_json = CASE WHEN %(set_json)s THEN %(payload_json)s::json ELSE p.payload_json END,
    payload_bytes = CASE WHEN %(set_bytes)s THEN %(payload_bytes)s::bytea ELSE p.payload_bytes END
FROM job
WHERE p.id = job.id
RETURNING p.id

-- name: maintain
-- The periodic upkeep, one runner at a time (mq_maintain): one row per event to log.
SELECT event, job_id, job_name, attempt, final, n FROM mq_maintain()

-- name: expire_leases
-- Jobs whose lease ran out run again, or fail if that was their last attempt.
SELECT job_id, job_name, attempt, final FROM mq_expire_leases()

-- name: repair
-- The chain and continuation repairs (mq_repair), for consumers without a runner.
SELECT mq_repair()

-- name: listener_upsert
-- The runner's announcement and heartbeat (what `sqlxmq workers` lists).
INSERT INTO mq_listeners (
    id, channel_names, idle, host, pid, version, min_concurrency, max_concurrency
)
VALUES (
    %(id)s, %(channel_names)s::text[], %(idle)s, %(host)s, %(pid)s, %(version)s,
    %(min_concurrency)s, %(max_concurrency)s
)
ON CONFLICT (id) DO UPDATE
SET idle = excluded.idle, heartbeat_at = now(), channel_names = excluded.channel_names

-- name: listener_delete
DELETE FROM mq_listeners WHERE id = %(id)s

-- name: status
-- A job, queued or kept, with its errors, its rate keys and (JSON) the keys whose budget is
-- spent now, each with the instant it allows a start again (migration 0011).
SELECT j.id, p.name, j.state::text, j.attempts, j.max_attempts, j.channel_name, j.channel_args,
    j.priority, j.job_key, j.attempt_at, p.created_at, NULL::timestamptz, p.last_error, NULL::text,
    j.cancel_requested, p.errors::text, j.rate_keys, (
        SELECT json_agg(json_build_object(
            'key', w.rate_key,
            'until', w.starts[cardinality(w.starts) - r.max_starts + 1] + r.period
        ) ORDER BY w.rate_key)
        FROM unnest(j.rate_keys) AS u(key)
        CROSS JOIN LATERAL mq_rate_rule(u.key) AS r
        JOIN mq_rate_windows AS w ON w.rate_key = u.key
        WHERE r.max_starts <= (
            SELECT count(*) FROM unnest(w.starts) AS s(at) WHERE s.at > clock_timestamp() - r.period
        )
    )::text
FROM mq_jobs AS j JOIN mq_payloads AS p ON p.id = j.id
WHERE j.id = %(id)s
UNION ALL
SELECT h.id, h.name, h.state, h.attempts, h.max_attempts, h.channel_name, h.channel_args,
    h.priority, h.job_key, NULL, h.created_at, h.finished_at, h.last_error, h.result::text, false,
    h.errors::text, NULL, NULL
FROM mq_history AS h
WHERE h.id = %(id)s

-- name: attempt_errors
-- The errors of a job's attempts (the last 25), as JSON text: queued or kept.
SELECT p.errors::text FROM mq_payloads AS p WHERE p.id = %(id)s
UNION ALL
SELECT h.errors::text FROM mq_history AS h WHERE h.id = %(id)s
LIMIT 1

-- name: payload_json
-- A job's JSON payload as text: queued or kept.
SELECT p.payload_json::text FROM mq_payloads AS p WHERE p.id = %(id)s
UNION ALL
SELECT h.payload_json::text FROM mq_history AS h WHERE h.id = %(id)s
LIMIT 1

-- name: wait_register
-- A caller waits for this job: notify it when the job finishes, and keep its result a while.
UPDATE mq_payloads
SET notify_done = true,
    retain_for = greatest(coalesce(retain_for, interval '0'), %(retain)s::interval)
WHERE id = %(id)s
RETURNING id

-- name: list_jobs
-- One page of jobs, newest first, without filters: a walk down both primary keys (keyset paging
-- on the id, which grows with time; %(upto)s is the last id wanted, the id before the page's
-- "before" minus one). The payload is read for the page's rows only. The list_jobs_by_*
-- statements at the end of this file serve the filters, each from an index; all return these
-- columns. %(hot)s and %(history)s switch a table off (a one-time filter, also in a generic plan).
SELECT page.id, coalesce(page.name, p.name, 'sqlxmq:missing-payload'), page.state,
    page.attempts, page.max_attempts, page.channel_name, page.channel_args, page.priority,
    page.job_key, page.run_at, coalesce(page.created_at, p.created_at, page.run_at),
    page.finished_at, coalesce(page.last_error, p.last_error), page.result,
    page.cancel_requested
FROM (
    (SELECT j.id, NULL::text AS name, j.state::text AS state, j.attempts, j.max_attempts,
        j.channel_name, j.channel_args, j.priority, j.job_key, j.attempt_at AS run_at,
        NULL::timestamptz AS created_at, NULL::timestamptz AS finished_at,
        NULL::text AS last_error, NULL::text AS result, j.cancel_requested,
        true AS needs_payload
     FROM mq_jobs AS j
     WHERE %(hot)s::boolean AND j.id <= %(upto)s::uuid
     ORDER BY j.id DESC
     LIMIT %(limit)s::integer)
    UNION ALL
    (SELECT h.id, h.name, h.state, h.attempts, h.max_attempts, h.channel_name, h.channel_args,
        h.priority, h.job_key, NULL::timestamptz, h.created_at, h.finished_at, h.last_error,
        h.result::text, false, false
     FROM mq_history AS h
     WHERE %(history)s::boolean AND h.id <= %(upto)s::uuid
     ORDER BY h.id DESC
     LIMIT %(limit)s::integer)
    ORDER BY id DESC
    LIMIT %(limit)s::integer
) AS page
LEFT JOIN LATERAL (
    SELECT p.name, p.created_at, p.last_error FROM mq_payloads AS p
    WHERE page.needs_payload AND p.id = page.id
) AS p ON true
ORDER BY page.id DESC

-- name: queue_counts
-- Jobs per channel and admin index label (the state code, 't' for a scheduled job that already
-- failed an attempt: retrying), with the age of the oldest ready job; sqlxmq_py.states maps the
-- labels to states. Every count is exact (the columns of queue_counts_estimated).
SELECT j.channel_name,
    (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)::text,
    count(*), true,
    extract(epoch FROM now() - min(j.attempt_at) FILTER (WHERE j.state = 'r'))::float8
FROM mq_jobs AS j
GROUP BY 1, 2
ORDER BY 1, 2

-- name: cancel
SELECT id, outcome FROM mq_cancel(%(ids)s::uuid[], %(reason)s)

-- name: retry
SELECT mq_retry FROM mq_retry(%(ids)s::uuid[])

-- name: reschedule
SELECT mq_reschedule FROM mq_reschedule(
    %(ids)s::uuid[], %(run_at)s::timestamptz, %(priority)s::integer, %(retries)s::integer
)

-- name: blocked_chains
-- Ordered chains whose head failed: the head, its error, and how many jobs wait behind it.
SELECT h.channel_name, h.channel_args, h.id, p.name, p.last_error,
    (SELECT count(*) FROM mq_jobs AS b
     WHERE b.channel_name = h.channel_name AND b.channel_args = h.channel_args
       AND b.ord_seq > h.ord_seq)
FROM mq_jobs AS h JOIN mq_payloads AS p ON p.id = h.id
WHERE h.state = 'f' AND h.ord_seq IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM mq_jobs AS e
      WHERE e.channel_name = h.channel_name AND e.channel_args = h.channel_args
        AND e.ord_seq < h.ord_seq
  )
ORDER BY h.channel_name, h.channel_args

-- name: purge
-- Failed jobs older than the cutoff, and history that expired or finished before its cutoff.
-- Without %(release_chains)s, the failed head of an ordered chain with jobs behind it is kept:
-- deleting it would run them (purge_chains lists the heads kept). The workflows of failed
-- steps' jobs are locked before the jobs (migration 0018's lock order): the scalar subquery
-- runs before the first row is deleted.
WITH held AS MATERIALIZED (
    SELECT mq_workflow_lock_jobs(ARRAY(
        SELECT j.id FROM mq_jobs AS j
        WHERE %(failed)s AND j.state = 'f' AND j.workflow_id IS NOT NULL
          AND j.attempt_at < coalesce(%(failed_at)s::timestamptz,
                                      now() - %(failed_age)s::interval)
    )) AS ids
), failed AS (
    DELETE FROM mq_jobs AS j
    WHERE %(failed)s AND j.state = 'f'
      AND j.attempt_at < coalesce(%(failed_at)s::timestamptz, now() - %(failed_age)s::interval)
      AND (SELECT h.ids FROM held AS h) IS NOT NULL
      AND (%(release_chains)s::boolean OR j.ord_seq IS NULL OR NOT EXISTS (
          SELECT 1 FROM mq_jobs AS n
          WHERE n.channel_name = j.channel_name AND n.channel_args = j.channel_args
            AND n.ord_seq > j.ord_seq))
    RETURNING j.id
), failed_payloads AS (
    DELETE FROM mq_payloads AS p USING failed WHERE p.id = failed.id
), history AS (
    DELETE FROM mq_history
    WHERE expires_at <= now()
       OR finished_at < coalesce(%(history_at)s::timestamptz, now() - %(history_age)s::interval)
    RETURNING id
)
SELECT (SELECT count(*) FROM failed), (SELECT count(*) FROM history)

-- name: purge_chains
-- The ordered chains whose failed head is older than purge's cutoff, with jobs waiting behind
-- it: what a purge without %(release_chains)s keeps (the columns of blocked_chains).
SELECT h.channel_name, h.channel_args, h.id, p.name, p.last_error,
    (SELECT count(*) FROM mq_jobs AS b
     WHERE b.channel_name = h.channel_name AND b.channel_args = h.channel_args
       AND b.ord_seq > h.ord_seq)
FROM mq_jobs AS h JOIN mq_payloads AS p ON p.id = h.id
WHERE %(failed)s AND h.state = 'f' AND h.ord_seq IS NOT NULL
  AND h.attempt_at < coalesce(%(failed_at)s::timestamptz, now() - %(failed_age)s::interval)
  AND EXISTS (
      SELECT 1 FROM mq_jobs AS b
      WHERE b.channel_name = h.channel_name AND b.channel_args = h.channel_args
        AND b.ord_seq > h.ord_seq
  )
ORDER BY h.channel_name, h.channel_args

-- name: set_channel
-- Pauses or resumes a channel (%(paused)s NULL: unchanged) and, with %(change_limit)s, sets its
-- limit (NULL: none); runners are told at commit (mq_set_channel, migration 0007).
SELECT mq_set_channel(
    %(channel_name)s::text, %(paused)s::boolean, %(change_limit)s::boolean,
    %(max_running)s::integer
)

-- name: channel_limits
-- Channels with a limit (max_running, NULL: none) or paused: what runners read.
SELECT channel_name, max_running, paused FROM mq_channel_limits ORDER BY channel_name

-- name: channel_info
-- One channel, as list_channels shows it, through the ready and leased jobs' indexes.
SELECT %(channel_name)s::text,
    coalesce((SELECT l.paused FROM mq_channel_limits AS l
              WHERE l.channel_name = %(channel_name)s::text), false),
    (SELECT l.max_running FROM mq_channel_limits AS l
     WHERE l.channel_name = %(channel_name)s::text),
    (SELECT count(*) FROM mq_jobs AS j
     WHERE j.state = 'r' AND j.channel_name = %(channel_name)s::text),
    (SELECT count(*) FROM mq_jobs AS j
     WHERE j.state = 'l' AND j.channel_name = %(channel_name)s::text)

-- name: list_channels
-- Every channel with jobs, a limit or a pause, with its ready and running jobs.
WITH counts AS (
    SELECT j.channel_name,
        count(*) FILTER (WHERE j.state = 'r') AS ready,
        count(*) FILTER (WHERE j.state = 'l') AS running
    FROM mq_jobs AS j
    GROUP BY j.channel_name
)
SELECT coalesce(l.channel_name, c.channel_name), coalesce(l.paused, false), l.max_running,
    coalesce(c.ready, 0), coalesce(c.running, 0)
FROM mq_channel_limits AS l
FULL JOIN counts AS c ON c.channel_name = l.channel_name
ORDER BY 1

-- name: schedule_upsert
INSERT INTO mq_schedules (
    name, cron, timezone, job_name, channel_name, channel_args, payload_json, max_attempts,
    retry_backoff, priority, lease, retain_for, dead_letter, dead_letter_channel, ordered,
    backfill, rate_keys, last_tick
)
VALUES (
    %(name)s, %(cron)s, %(timezone)s, %(job_name)s, %(channel_name)s, %(channel_args)s,
    %(payload_json)s::json, %(max_attempts)s, %(retry_backoff)s, %(priority)s, %(lease)s,
    %(retain_for)s, %(dead_letter)s, %(dead_letter_channel)s, %(ordered)s, %(backfill)s,
    %(rate_keys)s::text[], now()
)
ON CONFLICT (name) DO UPDATE
SET cron = excluded.cron, timezone = excluded.timezone, job_name = excluded.job_name,
    channel_name = excluded.channel_name, channel_args = excluded.channel_args,
    payload_json = excluded.payload_json, max_attempts = excluded.max_attempts,
    retry_backoff = excluded.retry_backoff, priority = excluded.priority,
    lease = excluded.lease, retain_for = excluded.retain_for,
    dead_letter = excluded.dead_letter, dead_letter_channel = excluded.dead_letter_channel,
    ordered = excluded.ordered, backfill = excluded.backfill, rate_keys = excluded.rate_keys,
    updated_at = now()

-- name: schedules
SELECT name, cron, timezone, job_name, channel_name, channel_args, payload_json::text,
    max_attempts, retry_backoff, priority, lease, retain_for, dead_letter, dead_letter_channel,
    ordered, backfill, last_tick, enabled, last_spawned_tick, now(), rate_keys
FROM mq_schedules
ORDER BY name

-- name: schedule
-- One schedule, as the schedules statement reads it.
SELECT name, cron, timezone, job_name, channel_name, channel_args, payload_json::text,
    max_attempts, retry_backoff, priority, lease, retain_for, dead_letter, dead_letter_channel,
    ordered, backfill, last_tick, enabled, last_spawned_tick, now(), rate_keys
FROM mq_schedules
WHERE name = %(name)s

-- name: schedule_enable
-- Enables a schedule. Ticks that fell while it was disabled are passed over, never spawned
-- late (even within its backfill window): its clock restarts at now.
UPDATE mq_schedules
SET enabled = true, updated_at = now(),
    last_tick = CASE WHEN enabled THEN last_tick ELSE greatest(last_tick, now()) END
WHERE name = %(name)s
RETURNING name

-- name: schedule_disable
-- Disables a schedule: runners stop ticking it until it is enabled (schedule_upsert keeps it
-- disabled).
UPDATE mq_schedules SET enabled = false, updated_at = now()
WHERE name = %(name)s
RETURNING name

-- name: schedule_delete
DELETE FROM mq_schedules WHERE name = %(name)s RETURNING name

-- name: workers
-- The live runners, their running jobs, and whether their heartbeat is older than %(stale)s.
SELECT id, host, pid, version, channel_names, min_concurrency, max_concurrency, idle,
    started_at, heartbeat_at, running, stale, now
FROM mq_workers(%(stale)s::interval)

-- name: schedule_advance
-- Compare-and-set: only the caller that saw %(last_tick)s moves the schedule on. A row another
-- runner has locked (it is spawning that tick now) is skipped, never waited for.
-- A schedule disabled meanwhile is not moved on, and nothing is spawned for it.
UPDATE mq_schedules
SET last_tick = %(new_tick)s,
    last_spawned_tick = coalesce(%(spawned_tick)s::timestamptz, last_spawned_tick)
WHERE name = (
    SELECT s.name FROM mq_schedules AS s
    WHERE s.name = %(name)s AND s.last_tick = %(last_tick)s AND s.enabled
    FOR UPDATE SKIP LOCKED
)
RETURNING name

-- name: listen_done
LISTEN mq_done

-- name: unlisten_done
UNLISTEN mq_done

-- name: stats_add
-- A runner's counts of finished attempts since its last flush, per minute and channel.
INSERT INTO mq_stats AS s (bucket, channel_name, completed, retried, failed, interrupted)
SELECT * FROM unnest(
    %(buckets)s::timestamptz[], %(channel_names)s::text[], %(completed)s::bigint[],
    %(retried)s::bigint[], %(failed)s::bigint[], %(interrupted)s::bigint[]
)
ON CONFLICT (bucket, channel_name) DO UPDATE
SET completed = s.completed + excluded.completed,
    retried = s.retried + excluded.retried,
    failed = s.failed + excluded.failed,
    interrupted = s.interrupted + excluded.interrupted

-- name: stats
-- Finished attempts per minute (all channels, or one) since a time.
SELECT bucket, sum(completed)::bigint, sum(retried)::bigint, sum(failed)::bigint,
    sum(interrupted)::bigint
FROM mq_stats
WHERE bucket >= %(since)s::timestamptz
  AND (%(channel_name)s::text IS NULL OR channel_name = %(channel_name)s)
GROUP BY bucket
ORDER BY bucket

-- name: set_statement_timeout
-- For reads that must not hang (metrics scrapes): transaction-local, so that a pooled server
-- session never keeps it.
SELECT set_config('statement_timeout', %(milliseconds)s, true)

-- Dashboard (sqlxmq_py.web): what a job page shows beyond the admin API.
-- name: web_job_details
-- The payload, headers and spawn options of a queued job, or of a kept one (history).
SELECT p.payload_json::text, octet_length(p.payload_bytes),
    substring(p.payload_bytes FROM 1 FOR 32),
    p.headers::text, p.retry_backoff, j.lease, j.ord_seq IS NOT NULL, p.dead_letter,
    p.retain_for, p.run_after_failed_parents, j.commit_deadline
FROM mq_payloads AS p JOIN mq_jobs AS j ON j.id = p.id
WHERE p.id = %(id)s
UNION ALL
SELECT h.payload_json::text, octet_length(h.payload_bytes),
    substring(h.payload_bytes FROM 1 FOR 32),
    h.headers::text, NULL::interval, NULL::interval, false, NULL::text,
    NULL::interval, false, NULL::timestamptz
FROM mq_history AS h
WHERE h.id = %(id)s
LIMIT 1

-- name: web_job_worker
-- The runner that holds a running job's lease (migration 0006), its host and pid if it is still
-- announced, when it leased the job, and the database's clock.
SELECT j.leased_by, l.host, l.pid, j.leased_at, clock_timestamp()
FROM mq_jobs AS j
LEFT JOIN mq_listeners AS l ON l.id = j.leased_by
WHERE j.id = %(id)s AND j.state = 'l'

-- name: web_job_chain
-- A queued ordered job's place in its chain (channel_name, channel_args): its 1-based position,
-- the chain's length, its head, and its neighbours. Every subquery descends mq_jobs_ordered_idx.
SELECT
    (SELECT count(*) FROM mq_jobs AS e
     WHERE e.channel_name = j.channel_name AND e.channel_args = j.channel_args
       AND e.ord_seq < j.ord_seq) + 1,
    (SELECT count(*) FROM mq_jobs AS e
     WHERE e.channel_name = j.channel_name AND e.channel_args = j.channel_args
       AND e.ord_seq IS NOT NULL),
    (SELECT e.id FROM mq_jobs AS e
     WHERE e.channel_name = j.channel_name AND e.channel_args = j.channel_args
       AND e.ord_seq IS NOT NULL
     ORDER BY e.ord_seq LIMIT 1),
    (SELECT e.id FROM mq_jobs AS e
     WHERE e.channel_name = j.channel_name AND e.channel_args = j.channel_args
       AND e.ord_seq < j.ord_seq
     ORDER BY e.ord_seq DESC LIMIT 1),
    (SELECT e.id FROM mq_jobs AS e
     WHERE e.channel_name = j.channel_name AND e.channel_args = j.channel_args
       AND e.ord_seq > j.ord_seq
     ORDER BY e.ord_seq LIMIT 1)
FROM mq_jobs AS j
WHERE j.id = %(id)s AND j.ord_seq IS NOT NULL

-- name: web_job_parents
-- The parents a continuation still waits for (a parent's row goes when it completes).
SELECT parent_id FROM mq_deps WHERE child_id = %(id)s ORDER BY parent_id LIMIT %(limit)s

-- name: web_job_children
-- The continuations still waiting for this job.
SELECT child_id FROM mq_deps WHERE parent_id = %(id)s ORDER BY child_id LIMIT %(limit)s

-- name: completion_check
-- How a completion inside a job's own transaction ended, seen from outside that transaction:
-- 'completed' (the row is gone), 'lost' (another lease holds it), 'pending' (the row is locked:
-- the transaction is still open) or 'rolled_back' (still held under this lease, unlocked).
SELECT CASE
    WHEN NOT EXISTS (SELECT 1 FROM mq_jobs AS j WHERE j.id = %(id)s) THEN 'completed'
    WHEN NOT EXISTS (
        SELECT 1 FROM mq_jobs AS j WHERE j.id = %(id)s AND j.lease_token = %(token)s
    ) THEN 'lost'
    WHEN EXISTS (
        SELECT 1 FROM (
            SELECT j.id FROM mq_jobs AS j
            WHERE j.id = %(id)s AND j.lease_token = %(token)s
            FOR UPDATE SKIP LOCKED
        ) AS unlocked
    ) THEN 'rolled_back'
    ELSE 'pending'
END

-- name: ping
-- A runner's check that its listener hears notifications.
SELECT pg_notify(%(channel)s, %(payload)s)

-- Admin reads on big queues (sqlxmq_py.admin.list_jobs, the dashboard's counts). Each
-- list_jobs_by_* statement serves one kind of filter from an index (chosen in Python by which
-- filters are set) and returns the columns of list_jobs. In all of them a job's "label" is
--     (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
-- ('t': retrying), spelt exactly as in mq_jobs_admin_idx (0004), which holds every job that
-- is not leased ordered by (label, channel_name, id); `j.state <> 'l' AND j.attempts >= 0` is repeated next to it
-- so that the planner may use that partial index. %(labels)s are the labels wanted from it,
-- %(running)s whether leased jobs are wanted, %(history_states)s the kept states wanted.
-- Leased jobs are read all at once (from mq_jobs_leased_idx) and sorted: there are at most as
-- many as the runners' concurrency, and they are the oldest of the queue, which a backward walk
-- of the primary key would reach last. These statements are planned with each call's values
-- (never prepared): the planner picks a walk of the primary key for a common value, the
-- filter's index for a rare one.

-- name: list_jobs_by_state
-- A page of jobs in some states, newest first. The index orders one label's jobs by channel
-- first: the label's channels are found by a skip scan (one index descent each), each channel's
-- newest jobs by one backward walk, and the page is the newest of these.
WITH RECURSIVE channels(label, channel_name) AS (
    SELECT s.label, (
        SELECT j.channel_name FROM mq_jobs AS j
        WHERE (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
              = s.label
          AND j.state <> 'l' AND j.attempts >= 0
        ORDER BY j.channel_name
        LIMIT 1)
    FROM unnest(%(labels)s::"char"[]) AS s(label)
  UNION ALL
    SELECT c.label, (
        SELECT j.channel_name FROM mq_jobs AS j
        WHERE (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
              = c.label
          AND j.state <> 'l' AND j.attempts >= 0 AND j.channel_name > c.channel_name
        ORDER BY j.channel_name
        LIMIT 1)
    FROM channels AS c
    WHERE c.channel_name IS NOT NULL
)
SELECT page.id, coalesce(page.name, p.name, 'sqlxmq:missing-payload'), page.state,
    page.attempts, page.max_attempts, page.channel_name, page.channel_args, page.priority,
    page.job_key, page.run_at, coalesce(page.created_at, p.created_at, page.run_at),
    page.finished_at, coalesce(page.last_error, p.last_error), page.result,
    page.cancel_requested
FROM (
    (SELECT j.* FROM channels AS c
     CROSS JOIN LATERAL (
        SELECT j.id, NULL::text AS name, j.state::text AS state, j.attempts, j.max_attempts,
            j.channel_name, j.channel_args, j.priority, j.job_key, j.attempt_at AS run_at,
            NULL::timestamptz AS created_at, NULL::timestamptz AS finished_at,
            NULL::text AS last_error, NULL::text AS result, j.cancel_requested,
            true AS needs_payload
        FROM mq_jobs AS j
        WHERE (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
              = c.label
          AND j.state <> 'l' AND j.attempts >= 0 AND j.channel_name = c.channel_name AND j.id <= %(upto)s::uuid
        ORDER BY j.id DESC
        LIMIT %(limit)s::integer
     ) AS j
     WHERE c.channel_name IS NOT NULL)
    UNION ALL
    (SELECT j.id, NULL::text, j.state::text, j.attempts, j.max_attempts, j.channel_name,
        j.channel_args, j.priority, j.job_key, j.attempt_at, NULL::timestamptz,
        NULL::timestamptz, NULL::text, NULL::text, j.cancel_requested, true
     FROM mq_jobs AS j
     WHERE %(running)s::boolean AND j.state = 'l' AND j.id <= %(upto)s::uuid)
    UNION ALL
    (SELECT h.* FROM unnest(%(history_states)s::text[]) AS s(state)
     CROSS JOIN LATERAL (
        SELECT h.id, h.name, h.state, h.attempts, h.max_attempts, h.channel_name,
            h.channel_args, h.priority, h.job_key, NULL::timestamptz AS run_at, h.created_at,
            h.finished_at, h.last_error, h.result::text AS result, false AS cancel_requested,
            false AS needs_payload
        FROM mq_history AS h
        WHERE h.state = s.state AND h.id <= %(upto)s::uuid
        ORDER BY h.id DESC
        LIMIT %(limit)s::integer
     ) AS h)
    ORDER BY id DESC
    LIMIT %(limit)s::integer
) AS page
LEFT JOIN LATERAL (
    SELECT p.name, p.created_at, p.last_error FROM mq_payloads AS p
    WHERE page.needs_payload AND p.id = page.id
) AS p ON true
ORDER BY page.id DESC

-- name: list_jobs_by_channel
-- A page of one channel's jobs (in some states), newest first: one backward walk of the index
-- per label wanted, then the newest of these.
SELECT page.id, coalesce(page.name, p.name, 'sqlxmq:missing-payload'), page.state,
    page.attempts, page.max_attempts, page.channel_name, page.channel_args, page.priority,
    page.job_key, page.run_at, coalesce(page.created_at, p.created_at, page.run_at),
    page.finished_at, coalesce(page.last_error, p.last_error), page.result,
    page.cancel_requested
FROM (
    (SELECT j.* FROM unnest(%(labels)s::"char"[]) AS s(label)
     CROSS JOIN LATERAL (
        SELECT j.id, NULL::text AS name, j.state::text AS state, j.attempts, j.max_attempts,
            j.channel_name, j.channel_args, j.priority, j.job_key, j.attempt_at AS run_at,
            NULL::timestamptz AS created_at, NULL::timestamptz AS finished_at,
            NULL::text AS last_error, NULL::text AS result, j.cancel_requested,
            true AS needs_payload
        FROM mq_jobs AS j
        WHERE (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
              = s.label
          AND j.state <> 'l' AND j.attempts >= 0 AND j.channel_name = %(channel_name)s::text
          AND j.id <= %(upto)s::uuid
        ORDER BY j.id DESC
        LIMIT %(limit)s::integer
     ) AS j)
    UNION ALL
    (SELECT j.id, NULL::text, j.state::text, j.attempts, j.max_attempts, j.channel_name,
        j.channel_args, j.priority, j.job_key, j.attempt_at, NULL::timestamptz,
        NULL::timestamptz, NULL::text, NULL::text, j.cancel_requested, true
     FROM mq_jobs AS j
     WHERE %(running)s::boolean AND j.state = 'l' AND j.channel_name = %(channel_name)s::text
       AND j.id <= %(upto)s::uuid)
    UNION ALL
    (SELECT h.* FROM unnest(%(history_states)s::text[]) AS s(state)
     CROSS JOIN LATERAL (
        SELECT h.id, h.name, h.state, h.attempts, h.max_attempts, h.channel_name,
            h.channel_args, h.priority, h.job_key, NULL::timestamptz AS run_at, h.created_at,
            h.finished_at, h.last_error, h.result::text AS result, false AS cancel_requested,
            false AS needs_payload
        FROM mq_history AS h
        WHERE left(h.channel_name, 512) = left(%(channel_name)s::text, 512)
          AND (length(%(channel_name)s::text) < 512 OR h.channel_name = %(channel_name)s::text)
          AND h.state = s.state
          AND h.id <= %(upto)s::uuid
        ORDER BY h.id DESC
        LIMIT %(limit)s::integer
     ) AS h)
    ORDER BY id DESC
    LIMIT %(limit)s::integer
) AS page
LEFT JOIN LATERAL (
    SELECT p.name, p.created_at, p.last_error FROM mq_payloads AS p
    WHERE page.needs_payload AND p.id = page.id
) AS p ON true
ORDER BY page.id DESC

-- name: list_jobs_by_name
-- A page of jobs of one name, newest first: a backward walk of mq_payloads_name_idx (each job
-- found by its primary key, then checked against the other filters) and of
-- mq_history_name_idx. Here %(labels)s may hold 'l' (running). Those indexes, like the other
-- mq_history ones, hold the first 512 characters of the text (left(x, 512), spelt as there);
-- the whole text is compared only when the value has 512 characters or more (written so, the
-- comparison folds away in a custom plan, and the planner does not count the condition twice,
-- which made it underestimate the matches). Each job is looked up by its primary key (OFFSET 0
-- keeps the lookup a lookup): the walk of the name index drives, whatever the estimates.
SELECT page.id, page.name, page.state, page.attempts, page.max_attempts, page.channel_name,
    page.channel_args, page.priority, page.job_key, page.run_at, page.created_at,
    page.finished_at, page.last_error, page.result, page.cancel_requested
FROM (
    (SELECT j.id, p.name, j.state::text AS state, j.attempts, j.max_attempts, j.channel_name,
        j.channel_args, j.priority, j.job_key, j.attempt_at AS run_at, p.created_at,
        NULL::timestamptz AS finished_at, p.last_error, NULL::text AS result,
        j.cancel_requested
     FROM mq_payloads AS p
     CROSS JOIN LATERAL (SELECT * FROM mq_jobs AS j WHERE j.id = p.id OFFSET 0) AS j
     WHERE %(hot)s::boolean AND left(p.name, 512) = left(%(name)s::text, 512)
       AND p.name IS NOT NULL
       AND (length(%(name)s::text) < 512 OR p.name = %(name)s::text)
       AND p.id <= %(upto)s::uuid
       AND (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
           = ANY(%(labels)s::"char"[])
       AND (%(channel_name)s::text IS NULL OR j.channel_name = %(channel_name)s::text)
     ORDER BY p.id DESC
     LIMIT %(limit)s::integer)
    UNION ALL
    (SELECT h.id, h.name, h.state, h.attempts, h.max_attempts, h.channel_name, h.channel_args,
        h.priority, h.job_key, NULL::timestamptz, h.created_at, h.finished_at, h.last_error,
        h.result::text, false
     FROM mq_history AS h
     WHERE %(history)s::boolean AND left(h.name, 512) = left(%(name)s::text, 512)
       AND (length(%(name)s::text) < 512 OR h.name = %(name)s::text)
       AND h.id <= %(upto)s::uuid
       AND h.state = ANY(%(history_states)s::text[])
       AND (%(channel_name)s::text IS NULL OR h.channel_name = %(channel_name)s::text)
     ORDER BY h.id DESC
     LIMIT %(limit)s::integer)
    ORDER BY id DESC
    LIMIT %(limit)s::integer
) AS page
ORDER BY page.id DESC

-- name: list_jobs_by_key
-- A page of jobs with one key, newest first: at most one queued job (mq_jobs_job_key_idx) and
-- the kept ones (mq_history_job_key_idx). Here %(labels)s may hold 'l' (running).
SELECT page.id, coalesce(page.name, p.name, 'sqlxmq:missing-payload'), page.state,
    page.attempts, page.max_attempts, page.channel_name, page.channel_args, page.priority,
    page.job_key, page.run_at, coalesce(page.created_at, p.created_at, page.run_at),
    page.finished_at, coalesce(page.last_error, p.last_error), page.result,
    page.cancel_requested
FROM (
    (SELECT j.id, NULL::text AS name, j.state::text AS state, j.attempts, j.max_attempts,
        j.channel_name, j.channel_args, j.priority, j.job_key, j.attempt_at AS run_at,
        NULL::timestamptz AS created_at, NULL::timestamptz AS finished_at,
        NULL::text AS last_error, NULL::text AS result, j.cancel_requested,
        true AS needs_payload
     FROM mq_jobs AS j
     WHERE %(hot)s::boolean AND j.job_key = %(job_key)s::text AND j.id <= %(upto)s::uuid
       AND (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
           = ANY(%(labels)s::"char"[])
       AND (%(channel_name)s::text IS NULL OR j.channel_name = %(channel_name)s::text)
       AND (%(name)s::text IS NULL OR EXISTS (
           SELECT 1 FROM mq_payloads AS n WHERE n.id = j.id AND n.name = %(name)s::text))
     ORDER BY j.id DESC
     LIMIT %(limit)s::integer)
    UNION ALL
    (SELECT h.id, h.name, h.state, h.attempts, h.max_attempts, h.channel_name, h.channel_args,
        h.priority, h.job_key, NULL::timestamptz, h.created_at, h.finished_at, h.last_error,
        h.result::text, false, false
     FROM mq_history AS h
     WHERE %(history)s::boolean AND left(h.job_key, 512) = left(%(job_key)s::text, 512)
       AND (length(%(job_key)s::text) < 512 OR h.job_key = %(job_key)s::text)
       AND h.id <= %(upto)s::uuid
       AND h.state = ANY(%(history_states)s::text[])
       AND (%(channel_name)s::text IS NULL OR h.channel_name = %(channel_name)s::text)
       AND (%(name)s::text IS NULL OR h.name = %(name)s::text)
     ORDER BY h.id DESC
     LIMIT %(limit)s::integer)
    ORDER BY id DESC
    LIMIT %(limit)s::integer
) AS page
LEFT JOIN LATERAL (
    SELECT p.name, p.created_at, p.last_error FROM mq_payloads AS p
    WHERE page.needs_payload AND p.id = page.id
) AS p ON true
ORDER BY page.id DESC

-- name: queue_counts_estimated
-- Jobs per channel and label, in a time that does not grow with the queue. Every (label,
-- channel) of mq_jobs_admin_idx is found by a skip scan and counted, index only, up to
-- %(cap)s + 1 jobs; leased jobs likewise up to %(running_cap)s + 1 from mq_jobs_leased_idx.
-- A count that reached its cap is estimated instead, from a block sample of about
-- %(sample_rows)s rows of mq_jobs (TABLESAMPLE SYSTEM, scaled up; taken only when needed);
-- exact says which. The age of a channel's oldest ready job is read from its ready jobs with
-- the lowest ids, all of them when they are counted exactly (exact then), the first %(cap)s + 1
-- otherwise (an estimate: a job spawned later with an earlier run_at is missed).
-- Columns: channel, label, count, exact, oldest ready age in seconds.
WITH RECURSIVE pairs(label, channel_name) AS (
    (SELECT (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END),
        j.channel_name
     FROM mq_jobs AS j
     WHERE j.state <> 'l' AND j.attempts >= 0
     ORDER BY 1, 2
     LIMIT 1)
  UNION ALL
    SELECT n.label, n.channel_name
    FROM pairs AS c
    CROSS JOIN LATERAL (
        SELECT (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
            AS label, j.channel_name
        FROM mq_jobs AS j
        WHERE j.state <> 'l' AND j.attempts >= 0
          AND ((CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END),
               j.channel_name) > (c.label, c.channel_name)
        ORDER BY 1, 2
        LIMIT 1
    ) AS n
),
counted AS (
    SELECT c.label, c.channel_name,
        (SELECT count(*) FROM (
            SELECT 1 FROM mq_jobs AS j
            WHERE (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
                  = c.label
              AND j.state <> 'l' AND j.attempts >= 0 AND j.channel_name = c.channel_name
            LIMIT %(cap)s::integer + 1) AS x) AS n,
        (SELECT min(x.attempt_at) FROM (
            SELECT j.attempt_at FROM mq_jobs AS j
            WHERE c.label = 'r'
              AND (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
                  = c.label
              AND j.state <> 'l' AND j.attempts >= 0 AND j.channel_name = c.channel_name
            ORDER BY j.id
            LIMIT %(cap)s::integer + 1) AS x) AS oldest,
        %(cap)s::integer AS cap
    FROM pairs AS c
),
running AS MATERIALIZED (
    SELECT j.channel_name FROM mq_jobs AS j
    WHERE j.state = 'l'
    LIMIT %(running_cap)s::integer + 1
),
running_counted AS (
    SELECT 'l'::"char" AS label, r.channel_name, count(*) AS n, NULL::timestamptz AS oldest,
        CASE WHEN (SELECT count(*) FROM running) > %(running_cap)s::integer
            THEN -1 ELSE %(running_cap)s::integer END AS cap
    FROM running AS r
    GROUP BY r.channel_name
),
size AS (
    SELECT least(100, 100 * %(sample_rows)s::float8 / greatest(1, CASE
        WHEN c.reltuples > 0 AND c.relpages > 0
            THEN c.reltuples / c.relpages
                 * (pg_relation_size(c.oid) / current_setting('block_size')::float8)
        ELSE pg_relation_size(c.oid) / current_setting('block_size')::float8 * 60
    END)) AS percent
    FROM pg_class AS c
    WHERE c.oid = 'mq_jobs'::regclass
),
sample AS MATERIALIZED (
    SELECT (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
        AS label, j.channel_name, count(*) AS n
    FROM mq_jobs AS j TABLESAMPLE SYSTEM ((SELECT percent FROM size))
    GROUP BY 1, 2
)
SELECT a.channel_name, a.label::text,
    CASE WHEN a.n <= a.cap THEN a.n ELSE greatest(a.n, (
        SELECT round(s.n * 100 / z.percent)::bigint FROM sample AS s, size AS z
        WHERE s.label = a.label AND s.channel_name = a.channel_name)) END,
    a.n <= a.cap OR (SELECT percent FROM size) >= 100,
    extract(epoch FROM now() - a.oldest)::float8
FROM (SELECT * FROM counted UNION ALL SELECT * FROM running_counted) AS a
ORDER BY a.channel_name, a.label

-- name: web_channel_names
-- The channels that have queued jobs, for the job list's filter: a skip scan of
-- mq_jobs_admin_idx (one descent per state and channel) and the leased jobs.
WITH RECURSIVE pairs(label, channel_name) AS (
    (SELECT (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END),
        j.channel_name
     FROM mq_jobs AS j
     WHERE j.state <> 'l' AND j.attempts >= 0
     ORDER BY 1, 2
     LIMIT 1)
  UNION ALL
    SELECT n.label, n.channel_name
    FROM pairs AS c
    CROSS JOIN LATERAL (
        SELECT (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
            AS label, j.channel_name
        FROM mq_jobs AS j
        WHERE j.state <> 'l' AND j.attempts >= 0
          AND ((CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END),
               j.channel_name) > (c.label, c.channel_name)
        ORDER BY 1, 2
        LIMIT 1
    ) AS n
)
SELECT DISTINCT x.channel_name FROM (
    SELECT p.channel_name FROM pairs AS p
    UNION ALL
    SELECT j.channel_name FROM mq_jobs AS j WHERE j.state = 'l'
) AS x
ORDER BY x.channel_name
LIMIT %(limit)s::integer

-- name: schema_objects
-- The schema as the migrations leave it, for sqlxmq_py/sql/schema.sql (python -m
-- sqlxmq_py.schema): every table, sequence, index, function and trigger of the current schema,
-- one CREATE statement each, in a stable order, without owners, grants or comments (partitions
-- made by date, and their indexes, are left out: the day decides them). Built from
-- pg_catalog's own deparsers, so that every server version writes the same text (NOT NULL
-- constraints are left out of the constraint list: PostgreSQL 18 lists them there too).
SELECT o.kind, o.name, o.ddl FROM (
    SELECT 1 AS kind, c.relname::text AS name,
        'CREATE ' || CASE c.relpersistence WHEN 'u' THEN 'UNLOGGED ' ELSE '' END
        || 'TABLE ' || quote_ident(c.relname) || E' (\n'
        || array_to_string(
            ARRAY(
                SELECT '    ' || quote_ident(a.attname) || ' '
                    || format_type(a.atttypid, a.atttypmod)
                    || CASE WHEN a.attnotnull THEN ' NOT NULL' ELSE '' END
                    || coalesce(' DEFAULT ' || pg_get_expr(d.adbin, d.adrelid), '')
                FROM pg_attribute AS a
                LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                ORDER BY a.attnum
            ) || ARRAY(
                SELECT '    CONSTRAINT ' || quote_ident(k.conname) || ' '
                    || pg_get_constraintdef(k.oid)
                FROM pg_constraint AS k
                WHERE k.conrelid = c.oid AND k.contype <> 'n'
                ORDER BY k.conname
            ),
            E',\n'
        )
        || E'\n)'
        || coalesce(' PARTITION BY ' || pg_get_partkeydef(c.oid), '')
        || coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', '') || ';' AS ddl
    FROM pg_class AS c
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
      AND NOT c.relispartition
    UNION ALL
    SELECT 1, c.relname::text,
        'CREATE TABLE ' || quote_ident(c.relname) || ' PARTITION OF '
        || quote_ident(b.relname) || ' ' || pg_get_expr(c.relpartbound, c.oid)
        || coalesce(' WITH (' || array_to_string(c.reloptions, ', ') || ')', '') || ';'
    FROM pg_class AS c
    JOIN pg_inherits AS i ON i.inhrelid = c.oid
    JOIN pg_class AS b ON b.oid = i.inhparent
    WHERE c.relnamespace = current_schema()::regnamespace AND c.relispartition
      AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'
    UNION ALL
    SELECT 2, c.relname::text,
        'CREATE SEQUENCE ' || quote_ident(c.relname) || ' AS ' || format_type(s.seqtypid, NULL)
        || ' INCREMENT ' || s.seqincrement || ' MINVALUE ' || s.seqmin
        || ' MAXVALUE ' || s.seqmax || ' START ' || s.seqstart || ' CACHE ' || s.seqcache
        || CASE WHEN s.seqcycle THEN ' CYCLE' ELSE '' END || ';'
    FROM pg_sequence AS s JOIN pg_class AS c ON c.oid = s.seqrelid
    WHERE c.relnamespace = current_schema()::regnamespace
    UNION ALL
    SELECT 3, i.relname::text, pg_get_indexdef(x.indexrelid) || ';'
    FROM pg_index AS x
    JOIN pg_class AS i ON i.oid = x.indexrelid
    JOIN pg_class AS t ON t.oid = x.indrelid
    WHERE t.relnamespace = current_schema()::regnamespace AND NOT i.relispartition
      AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k WHERE k.conindid = x.indexrelid)
    UNION ALL
    SELECT 4, p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
        rtrim(pg_get_functiondef(p.oid), E'\n') || ';'
    FROM pg_proc AS p
    WHERE p.pronamespace = current_schema()::regnamespace AND p.prokind IN ('f', 'p')
      AND NOT EXISTS (
          SELECT 1 FROM pg_depend AS e
          WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e'
      )
    UNION ALL
    SELECT 5, c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid) || ';'
    FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid
    WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
) AS o
ORDER BY o.kind, o.name COLLATE "C"

-- Batches (sqlxmq_py.batch; migrations 0005_batches.sql). Each statement returns a batch's
-- row with these columns, in this order (sqlxmq_py._batch_spec.read_status).

-- name: batch_link
-- Sent in one pipeline after the usual spawn statement of the members and callbacks.
SELECT b.id, b.total, b.pending, b.completed, b.failed, b.cancelled, b.sealed, b.on_success,
    b.on_finish, b.on_discard, b.retain_for, b.created_at, b.discarded_at, b.finished_at,
    b.expires_at
FROM mq_batch_link(
    %(batch_id)s::uuid, %(create)s::boolean, %(members)s::uuid[], %(callbacks)s::uuid[],
    %(retain_for)s::interval, %(seal)s::boolean
) AS b

-- name: batch_seal
SELECT b.id, b.total, b.pending, b.completed, b.failed, b.cancelled, b.sealed, b.on_success,
    b.on_finish, b.on_discard, b.retain_for, b.created_at, b.discarded_at, b.finished_at,
    b.expires_at
FROM mq_batch_seal(%(batch_id)s::uuid) AS b

-- name: batch_status
SELECT b.id, b.total, b.pending, b.completed, b.failed, b.cancelled, b.sealed, b.on_success,
    b.on_finish, b.on_discard, b.retain_for, b.created_at, b.discarded_at, b.finished_at,
    b.expires_at
FROM mq_batches AS b
WHERE b.id = %(batch_id)s::uuid

-- name: batch_members
-- In spawn order (members' ids are time-ordered), optionally of one state ('pending' is NULL).
SELECT m.job_id, m.state, m.result::text, m.error, m.finished_at
FROM mq_batch_members AS m
WHERE m.batch_id = %(batch_id)s::uuid
  AND (%(state)s::text IS NULL
       OR m.state IS NOT DISTINCT FROM nullif(%(state)s::text, 'pending'))
ORDER BY m.job_id

-- name: batch_cancel
-- Seals the batch (when it has members) and cancels its pending members: waiting ones at
-- once, running ones by asking their runner to stop. Returns how many of each.
WITH sealed AS (
    SELECT count(*) AS n FROM mq_batch_seal(%(batch_id)s::uuid)
), cancelled AS (
    SELECT c.outcome FROM sealed, mq_cancel(
        ARRAY(
            SELECT m.job_id FROM mq_batch_members AS m
            WHERE m.batch_id = %(batch_id)s::uuid AND m.state IS NULL
        ),
        %(reason)s::text
    ) AS c
)
SELECT count(*) FILTER (WHERE outcome = 'cancelled'),
    count(*) FILTER (WHERE outcome = 'requested')
FROM cancelled

-- Bulk actions (sqlxmq_py.admin.retry_matching and its siblings). Each batch statement walks
-- ids upwards from %(after)s (keyset: the id after which the previous batch stopped) along the
-- index of the filter's most selective criterion (%(walk)s), takes the next %(batch)s
-- candidates, acts on those matching the whole filter, and returns the last candidate's id
-- (NULL when none: the walk is over) and how many it changed. A filter parameter
-- that is NULL matches everything; %(error)s is an ILIKE pattern built in Python with its %
-- and _ escaped; the age cutoffs are a time or an interval back from now(). %(labels)s are
-- the admin index labels (sqlxmq_py.states) wanted from mq_jobs, %(history_states)s the kept
-- states wanted from mq_history.

-- name: bulk_count
-- Counted from the index %(walk)s picks (see bulk_batch; the statement is planned with its
-- values, so a NULL criterion and the branches not picked drop out): by name, the jobs of
-- mq_payloads_name_idx; else the jobs not running through mq_jobs_admin_idx and the running
-- ones through mq_jobs_leased_idx, each job's payload read by its key only when the error or
-- an age is asked (a correlated subquery, so that no estimate makes mq_payloads drive); kept
-- jobs through the mq_history indexes (left(x, 512), as those indexes hold them).
SELECT (SELECT count(*) FROM mq_payloads AS p JOIN mq_jobs AS j ON j.id = p.id
        WHERE %(walk)s::text = 'name' AND p.name IS NOT NULL
          AND left(p.name, 512) = left(%(name)s::text, 512) AND p.name = %(name)s::text
          AND (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
              = ANY(%(labels)s::"char"[])
          AND (%(channel_name)s::text IS NULL OR j.channel_name = %(channel_name)s::text)
          AND (%(job_key)s::text IS NULL OR j.job_key = %(job_key)s::text)
          AND (%(error)s::text IS NULL OR p.last_error ILIKE %(error)s::text)
                    AND (%(older_at)s::timestamptz IS NULL AND %(older_age)s::interval IS NULL
                         OR p.created_at < coalesce(%(older_at)s::timestamptz,
                                                    now() - %(older_age)s::interval))
                    AND (%(newer_at)s::timestamptz IS NULL AND %(newer_age)s::interval IS NULL
                         OR p.created_at >= coalesce(%(newer_at)s::timestamptz,
                                                     now() - %(newer_age)s::interval)))
    + (SELECT count(*) FROM mq_jobs AS j
       WHERE %(walk)s::text <> 'name'
         AND (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
             = ANY(%(labels)s::"char"[])
         AND j.state <> 'l' AND j.attempts >= 0
         AND (%(channel_name)s::text IS NULL OR j.channel_name = %(channel_name)s::text)
         AND (%(job_key)s::text IS NULL OR j.job_key = %(job_key)s::text)
         AND (%(error)s::text IS NULL AND %(older_at)s::timestamptz IS NULL
               AND %(older_age)s::interval IS NULL AND %(newer_at)s::timestamptz IS NULL
               AND %(newer_age)s::interval IS NULL
              OR (SELECT (%(error)s::text IS NULL OR p.last_error ILIKE %(error)s::text)
                    AND (%(older_at)s::timestamptz IS NULL AND %(older_age)s::interval IS NULL
                         OR p.created_at < coalesce(%(older_at)s::timestamptz,
                                                    now() - %(older_age)s::interval))
                    AND (%(newer_at)s::timestamptz IS NULL AND %(newer_age)s::interval IS NULL
                         OR p.created_at >= coalesce(%(newer_at)s::timestamptz,
                                                     now() - %(newer_age)s::interval))
                  FROM mq_payloads AS p WHERE p.id = j.id)))
    + (SELECT count(*) FROM mq_jobs AS j
       WHERE %(walk)s::text <> 'name' AND 'l' = ANY(%(labels)s::"char"[]) AND j.state = 'l'
         AND (%(channel_name)s::text IS NULL OR j.channel_name = %(channel_name)s::text)
         AND (%(job_key)s::text IS NULL OR j.job_key = %(job_key)s::text)
         AND (%(error)s::text IS NULL AND %(older_at)s::timestamptz IS NULL
               AND %(older_age)s::interval IS NULL AND %(newer_at)s::timestamptz IS NULL
               AND %(newer_age)s::interval IS NULL
              OR (SELECT (%(error)s::text IS NULL OR p.last_error ILIKE %(error)s::text)
                    AND (%(older_at)s::timestamptz IS NULL AND %(older_age)s::interval IS NULL
                         OR p.created_at < coalesce(%(older_at)s::timestamptz,
                                                    now() - %(older_age)s::interval))
                    AND (%(newer_at)s::timestamptz IS NULL AND %(newer_age)s::interval IS NULL
                         OR p.created_at >= coalesce(%(newer_at)s::timestamptz,
                                                     now() - %(newer_age)s::interval))
                  FROM mq_payloads AS p WHERE p.id = j.id)))
    + (SELECT count(*) FROM mq_history AS h
       WHERE h.state = ANY(%(history_states)s::text[])
         AND (%(channel_name)s::text IS NULL
              OR left(h.channel_name, 512) = left(%(channel_name)s::text, 512)
                 AND h.channel_name = %(channel_name)s::text)
         AND (%(job_key)s::text IS NULL
              OR h.job_key IS NOT NULL AND left(h.job_key, 512) = left(%(job_key)s::text, 512)
                 AND h.job_key = %(job_key)s::text)
         AND (%(name)s::text IS NULL OR left(h.name, 512) = left(%(name)s::text, 512)
              AND h.name = %(name)s::text)
         AND (%(error)s::text IS NULL OR h.last_error ILIKE %(error)s::text)
         AND (%(older_at)s::timestamptz IS NULL AND %(older_age)s::interval IS NULL
              OR h.created_at < coalesce(%(older_at)s::timestamptz,
                                         now() - %(older_age)s::interval))
         AND (%(newer_at)s::timestamptz IS NULL AND %(newer_age)s::interval IS NULL
              OR h.created_at >= coalesce(%(newer_at)s::timestamptz,
                                          now() - %(newer_age)s::interval)))

-- name: bulk_batch
-- One batch of matching queued jobs, acted on by %(action)s: 'retry' (mq_retry: failed jobs
-- run again with a fresh set of attempts), 'cancel' (mq_cancel_now: jobs that are not leased,
-- locked and checked again, so a job a runner leases meanwhile is left to run), 'run_now'
-- (mq_reschedule to now()) or 'delete' (failed jobs removed like purge's; with
-- %(release_chains)s false the failed head of an ordered chain with jobs behind it is kept).
--
-- The candidates are the next %(batch)s ids after %(after)s that one index walk yields, chosen
-- by %(walk)s (sqlxmq_py.admin._bulk.walk_for): 'key' (mq_jobs_job_key_idx), 'name'
-- (mq_payloads_name_idx, in id order), 'channel' (mq_jobs_admin_idx: one walk per label, in
-- id order, then the lowest ids of these) or 'state' (mq_jobs_admin_idx: the label's
-- channels found by a skip scan, one walk per label and channel). The branches not chosen are
-- planned away (the statement is planned with its values). Every filter is then checked on
-- the candidates; the walk goes on from the last candidate, matching or not.
WITH RECURSIVE channels(label, channel_name) AS (
    SELECT s.label, (
        SELECT j.channel_name FROM mq_jobs AS j
        WHERE (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
              = s.label
          AND j.state <> 'l' AND j.attempts >= 0
        ORDER BY j.channel_name
        LIMIT 1)
    FROM unnest(%(labels)s::"char"[]) AS s(label)
  UNION ALL
    SELECT c.label, (
        SELECT j.channel_name FROM mq_jobs AS j
        WHERE (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
              = c.label
          AND j.state <> 'l' AND j.attempts >= 0 AND j.channel_name > c.channel_name
        ORDER BY j.channel_name
        LIMIT 1)
    FROM channels AS c
    WHERE c.channel_name IS NOT NULL
), candidates AS MATERIALIZED (
    SELECT w.id FROM (
        (SELECT j.id FROM mq_jobs AS j
         WHERE %(walk)s::text = 'key' AND j.job_key = %(job_key)s::text
           AND j.id > %(after)s::uuid)
        UNION ALL
        (SELECT p.id FROM mq_payloads AS p
         WHERE %(walk)s::text = 'name' AND p.name IS NOT NULL
           AND left(p.name, 512) = left(%(name)s::text, 512) AND p.id > %(after)s::uuid
         ORDER BY left(p.name, 512), p.id
         LIMIT %(batch)s::integer)
        UNION ALL
        (SELECT j.id FROM unnest(%(labels)s::"char"[]) AS s(label)
         CROSS JOIN LATERAL (
            SELECT j.id FROM mq_jobs AS j
            WHERE (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
                  = s.label
              AND j.state <> 'l' AND j.attempts >= 0
              AND j.channel_name = %(channel_name)s::text AND j.id > %(after)s::uuid
            ORDER BY j.id
            LIMIT %(batch)s::integer
         ) AS j
         WHERE %(walk)s::text = 'channel')
        UNION ALL
        (SELECT j.id FROM channels AS c
         CROSS JOIN LATERAL (
            SELECT j.id FROM mq_jobs AS j
            WHERE (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
                  = c.label
              AND j.state <> 'l' AND j.attempts >= 0
              AND j.channel_name = c.channel_name AND j.id > %(after)s::uuid
            ORDER BY j.id
            LIMIT %(batch)s::integer
         ) AS j
         WHERE %(walk)s::text = 'state' AND c.channel_name IS NOT NULL)
    ) AS w
    ORDER BY w.id
    LIMIT %(batch)s::integer
), batch AS MATERIALIZED (
    SELECT j.id, j.state, j.channel_name, j.channel_args, j.ord_seq
    FROM mq_jobs AS j JOIN mq_payloads AS p ON p.id = j.id
    WHERE j.id = ANY(ARRAY(SELECT c.id FROM candidates AS c))
      AND (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
          = ANY(%(labels)s::"char"[])
      AND (%(channel_name)s::text IS NULL OR j.channel_name = %(channel_name)s::text)
      AND (%(job_key)s::text IS NULL OR j.job_key = %(job_key)s::text)
      AND (%(name)s::text IS NULL OR p.name = %(name)s::text)
      AND (%(error)s::text IS NULL OR p.last_error ILIKE %(error)s::text)
      AND (%(older_at)s::timestamptz IS NULL AND %(older_age)s::interval IS NULL
           OR p.created_at < coalesce(%(older_at)s::timestamptz, now() - %(older_age)s::interval))
      AND (%(newer_at)s::timestamptz IS NULL AND %(newer_age)s::interval IS NULL
           OR p.created_at >= coalesce(%(newer_at)s::timestamptz,
                                       now() - %(newer_age)s::interval))
), held AS MATERIALIZED (
    -- the workflows of the failed steps' jobs before the jobs (migration 0018's lock order)
    SELECT mq_workflow_lock_jobs(ARRAY(
        SELECT b.id FROM batch AS b WHERE %(action)s::text = 'delete' AND b.state = 'f'
    )) AS ids
), deleted AS (
    DELETE FROM mq_jobs AS j
    WHERE %(action)s::text = 'delete' AND j.state = 'f'
      AND j.id = ANY(ARRAY(SELECT b.id FROM batch AS b))
      AND (SELECT h.ids FROM held AS h) IS NOT NULL
      -- the next job of the chain, if any, as mq_jobs_ordered_idx orders it (an ORDER BY the
      -- index's, so that no estimate of how many follow makes a table scan look cheaper)
      AND (%(release_chains)s::boolean OR j.ord_seq IS NULL OR (
          SELECT n.ord_seq FROM mq_jobs AS n
          WHERE n.channel_name = j.channel_name AND n.channel_args = j.channel_args
            AND n.ord_seq > j.ord_seq
          ORDER BY n.ord_seq
          LIMIT 1) IS NULL)
    RETURNING j.id
), deleted_payloads AS (
    DELETE FROM mq_payloads AS p USING deleted AS d WHERE p.id = d.id
)
SELECT (SELECT c.id FROM candidates AS c ORDER BY c.id DESC LIMIT 1),
    CASE %(action)s::text
        WHEN 'retry' THEN (SELECT count(*) FROM mq_retry(ARRAY(SELECT b.id FROM batch AS b)))
        WHEN 'cancel' THEN (SELECT count(*) FROM mq_cancel_now(
            ARRAY(SELECT b.id FROM batch AS b), %(reason)s::text))
        WHEN 'run_now' THEN (SELECT count(*) FROM mq_reschedule(
            ARRAY(SELECT b.id FROM batch AS b WHERE b.state = 's'), now(), NULL, NULL))
        ELSE (SELECT count(*) FROM deleted)
    END

-- name: bulk_delete_history
-- One batch of matching kept jobs, deleted (see bulk_batch for the parameters). The
-- candidates come from one walk per kept state wanted, in id order, of the index %(walk)s
-- picks: mq_history_job_key_idx ('key'), mq_history_name_idx ('name'),
-- mq_history_channel_idx ('channel') or mq_history_state_idx ('state'); each partition's
-- index is walked and the walks merged.
WITH candidates AS MATERIALIZED (
    SELECT w.id FROM (
        (SELECT h.id FROM mq_history AS h
         WHERE %(walk)s::text = 'key' AND h.job_key IS NOT NULL
           AND left(h.job_key, 512) = left(%(job_key)s::text, 512) AND h.id > %(after)s::uuid
         ORDER BY left(h.job_key, 512), h.id
         LIMIT %(batch)s::integer)
        UNION ALL
        (SELECT h.id FROM mq_history AS h
         WHERE %(walk)s::text = 'name'
           AND left(h.name, 512) = left(%(name)s::text, 512) AND h.id > %(after)s::uuid
         ORDER BY left(h.name, 512), h.id
         LIMIT %(batch)s::integer)
        UNION ALL
        (SELECT h.id FROM unnest(%(history_states)s::text[]) AS s(state)
         CROSS JOIN LATERAL (
            SELECT h.id FROM mq_history AS h
            WHERE left(h.channel_name, 512) = left(%(channel_name)s::text, 512)
              AND h.state = s.state AND h.id > %(after)s::uuid
            ORDER BY h.id
            LIMIT %(batch)s::integer
         ) AS h
         WHERE %(walk)s::text = 'channel')
        UNION ALL
        (SELECT h.id FROM unnest(%(history_states)s::text[]) AS s(state)
         CROSS JOIN LATERAL (
            SELECT h.id FROM mq_history AS h
            WHERE h.state = s.state AND h.id > %(after)s::uuid
            ORDER BY h.id
            LIMIT %(batch)s::integer
         ) AS h
         WHERE %(walk)s::text = 'state')
    ) AS w
    ORDER BY w.id
    LIMIT %(batch)s::integer
), batch AS MATERIALIZED (
    SELECT h.id, h.expires_at FROM mq_history AS h
    WHERE h.id = ANY(ARRAY(SELECT c.id FROM candidates AS c))
      AND h.state = ANY(%(history_states)s::text[])
      AND (%(channel_name)s::text IS NULL OR h.channel_name = %(channel_name)s::text)
      AND (%(job_key)s::text IS NULL OR h.job_key = %(job_key)s::text)
      AND (%(name)s::text IS NULL OR h.name = %(name)s::text)
      AND (%(error)s::text IS NULL OR h.last_error ILIKE %(error)s::text)
      AND (%(older_at)s::timestamptz IS NULL AND %(older_age)s::interval IS NULL
           OR h.created_at < coalesce(%(older_at)s::timestamptz, now() - %(older_age)s::interval))
      AND (%(newer_at)s::timestamptz IS NULL AND %(newer_age)s::interval IS NULL
           OR h.created_at >= coalesce(%(newer_at)s::timestamptz,
                                       now() - %(newer_age)s::interval))
), deleted AS (
    DELETE FROM mq_history AS h USING batch AS b
    WHERE h.id = b.id AND h.expires_at = b.expires_at
    RETURNING h.id
)
SELECT (SELECT c.id FROM candidates AS c ORDER BY c.id DESC LIMIT 1), (SELECT count(*) FROM deleted)

-- name: bulk_chains
-- The ordered chains a delete of matching failed jobs would release: their failed head
-- matches the filter and jobs wait behind it (the columns of blocked_chains).
SELECT h.channel_name, h.channel_args, h.id, p.name, p.last_error,
    (SELECT count(*) FROM mq_jobs AS b
     WHERE b.channel_name = h.channel_name AND b.channel_args = h.channel_args
       AND b.ord_seq > h.ord_seq)
FROM mq_jobs AS h JOIN mq_payloads AS p ON p.id = h.id
WHERE h.state = 'f' AND h.ord_seq IS NOT NULL
  AND 'f' = ANY(%(labels)s::"char"[])
  AND (%(channel_name)s::text IS NULL OR h.channel_name = %(channel_name)s::text)
  AND (%(job_key)s::text IS NULL OR h.job_key = %(job_key)s::text)
  AND (%(name)s::text IS NULL OR p.name = %(name)s::text)
  AND (%(error)s::text IS NULL OR p.last_error ILIKE %(error)s::text)
  AND (%(older_at)s::timestamptz IS NULL AND %(older_age)s::interval IS NULL
       OR p.created_at < coalesce(%(older_at)s::timestamptz, now() - %(older_age)s::interval))
  AND (%(newer_at)s::timestamptz IS NULL AND %(newer_age)s::interval IS NULL
       OR p.created_at >= coalesce(%(newer_at)s::timestamptz, now() - %(newer_age)s::interval))
  AND EXISTS (
      SELECT 1 FROM mq_jobs AS b
      WHERE b.channel_name = h.channel_name AND b.channel_args = h.channel_args
        AND b.ord_seq > h.ord_seq
  )
  AND NOT EXISTS (
      SELECT 1 FROM mq_jobs AS e
      WHERE e.channel_name = h.channel_name AND e.channel_args = h.channel_args
        AND e.ord_seq < h.ord_seq
  )
ORDER BY h.channel_name, h.channel_args

-- name: run_now
-- Scheduled and retrying jobs with these ids become ready now (or wait for their chain or
-- parents: mq_reschedule decides).
SELECT mq_reschedule FROM mq_reschedule(
    ARRAY(SELECT j.id FROM mq_jobs AS j WHERE j.id = ANY(%(ids)s::uuid[]) AND j.state = 's'),
    now(), NULL, NULL
)

-- name: workflow_link
-- Sent in one pipeline after the usual spawn statement of the steps' jobs.
SELECT mq_workflow_link(
    %(workflow_id)s::uuid, %(create)s::boolean, %(name)s::text, %(retain_for)s::interval,
    %(steps)s::text[], %(job_ids)s::uuid[], %(job_names)s::text[], %(policies)s::text[],
    %(groups)s::text[], %(children)s::text[], %(parents)s::text[],
    %(limit_groups)s::text[], %(limits)s::integer[]
)

-- name: workflow_status
-- The workflow's columns on every row, then one step per row in the order they were added
-- (NULLs for a workflow without steps); attempts from the job, else from its history row.
SELECT w.id, w.name, w.created_at, w.cancelled_at, w.finished_at, w.expires_at,
    s.step, s.state, s.job_id, s.job_name,
    ARRAY(
        SELECT e.parent FROM mq_workflow_edges AS e
        WHERE e.workflow_id = w.id AND e.child = s.step ORDER BY e.parent
    ),
    s.on_parent_failure, s.step_group,
    coalesce(j.attempts, (SELECT h.attempts FROM mq_history AS h WHERE h.id = s.job_id)),
    j.state::text, s.held_by, s.result::text, s.error, s.finished_at
FROM mq_workflows AS w
LEFT JOIN mq_workflow_steps AS s ON s.workflow_id = w.id
LEFT JOIN mq_jobs AS j ON j.id = s.job_id
WHERE w.id = %(workflow_id)s::uuid
ORDER BY s.seq

-- name: workflow_cancel
SELECT c.cancelled, c.requested FROM mq_workflow_cancel(%(workflow_id)s::uuid, %(reason)s::text) AS c

-- name: workflow_retry
SELECT mq_workflow_retry(%(workflow_id)s::uuid, %(step)s::text)

-- name: workflow_parent_results
-- The step's parents: name, job name, state and result.
SELECT p.step, p.job_name, p.state, p.result::text
FROM mq_workflow_edges AS e
JOIN mq_workflow_steps AS p ON p.workflow_id = e.workflow_id AND p.step = e.parent
WHERE e.workflow_id = %(workflow_id)s::uuid AND e.child = %(step)s::text
ORDER BY p.step

-- name: workflow_list
-- The newest workflows first (of one name, if given), each with its steps counted by state.
SELECT w.id, w.name, w.created_at, w.cancelled_at, w.finished_at,
    c.total, c.waiting, c.pending, c.completed, c.failed, c.cancelled, c.skipped
FROM mq_workflows AS w
CROSS JOIN LATERAL (
    SELECT count(*) AS total,
        count(*) FILTER (WHERE s.state = 'waiting') AS waiting,
        count(*) FILTER (WHERE s.state = 'pending') AS pending,
        count(*) FILTER (WHERE s.state = 'completed') AS completed,
        count(*) FILTER (WHERE s.state = 'failed') AS failed,
        count(*) FILTER (WHERE s.state = 'cancelled') AS cancelled,
        count(*) FILTER (WHERE s.state = 'skipped') AS skipped
    FROM mq_workflow_steps AS s
    WHERE s.workflow_id = w.id
) AS c
WHERE %(name)s::text IS NULL OR w.name = %(name)s::text
ORDER BY w.created_at DESC, w.id DESC
LIMIT %(limit)s::integer

-- name: workflow_skip_self
SELECT mq_workflow_skip_self(%(workflow_id)s::uuid, %(step)s::text, %(reason)s::text)

-- name: rate_limit_set
-- Sets a rate rule (mq_rate_change, migrations 0011 and 0015): at most %(max_starts)s starts
-- per %(period)s for the keys %(key_pattern)s names. Leases apply it from their next start; if
-- it allows more than the rule it replaces, the jobs deferred under that rule become due now
-- (at most 10,000 per change), and the lease judges them again.
SELECT existed, woken
FROM mq_rate_change(%(key_pattern)s, %(max_starts)s, %(period)s::interval, 10000)

-- name: rate_limit_delete
-- Removes a rate rule; returns a row (whether there was one, and how many jobs it had
-- deferred became due now) only if there was one.
SELECT existed, woken FROM mq_rate_change(%(key_pattern)s, NULL, NULL, 10000) WHERE existed

-- name: rate_limits
-- The rate rules, by pattern.
SELECT key_pattern, max_starts, period FROM mq_rate_limits ORDER BY key_pattern

-- name: rate_prune
-- Drops up to %(limit)s windows of rate keys whose every start has left the window
-- (mq_rate_prune); returns how many.
SELECT mq_rate_prune(%(limit)s::integer)

-- name: rate_windows_busiest
-- The rate keys with starts in their current window (at most %(limit)s, the fullest first):
-- the key, its rule's budget and period, the starts of the window ending now, and when it next
-- allows a start (NULL: now). A spent key allows one again when the oldest start that keeps
-- it spent leaves the window: the max_starts-th newest. Reads only windows not yet idle
-- (mq_rate_windows_idle_idx).
SELECT w.rate_key, r.max_starts, r.period, c.in_window,
    CASE WHEN c.in_window >= r.max_starts
        THEN w.starts[cardinality(w.starts) - r.max_starts + 1] + r.period
    END AS next_start_at
FROM mq_rate_windows AS w
CROSS JOIN LATERAL mq_rate_rule(w.rate_key) AS r
CROSS JOIN LATERAL (
    SELECT count(*)::integer AS in_window FROM unnest(w.starts) AS s(at)
    WHERE s.at > now() - r.period
) AS c
WHERE w.idle_at > now() AND c.in_window > 0
ORDER BY c.in_window::float8 / r.max_starts DESC, c.in_window DESC, w.rate_key
LIMIT %(limit)s

-- name: web_job_workflow_step
-- The workflow (id, name) and step a job is (through the steps' unique job id); no row for a
-- job of no workflow.
SELECT s.workflow_id, w.name, s.step
FROM mq_workflow_steps AS s JOIN mq_workflows AS w ON w.id = s.workflow_id
WHERE s.job_id = %(job_id)s

-- name: web_workflow_rate_waits
-- The spent rate keys that hold back a workflow's released steps not yet running (their job
-- ready, or deferred by a lease until its keys allow it): step, key, and when the key allows a
-- start again; in the order the steps were added.
SELECT s.step, w.rate_key, w.starts[cardinality(w.starts) - r.max_starts + 1] + r.period
FROM mq_workflow_steps AS s
JOIN mq_jobs AS j ON j.id = s.job_id
CROSS JOIN LATERAL unnest(j.rate_keys) AS u(key)
CROSS JOIN LATERAL mq_rate_rule(u.key) AS r
JOIN mq_rate_windows AS w ON w.rate_key = u.key
WHERE s.workflow_id = %(workflow_id)s AND s.state = 'pending'
  AND j.state IN ('r', 's')
  AND r.max_starts <= (
      SELECT count(*) FROM unnest(w.starts) AS t(at) WHERE t.at > clock_timestamp() - r.period
  )
ORDER BY s.seq, w.rate_key
