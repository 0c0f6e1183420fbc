-- Every statement sqlxmq_py sends, addressed by the name in its "-- name:" line.
-- Parameters are bound by psycopg (%(name)s); nothing here is ever formatted into text.

-- name: migrations_lock
-- Session-level lock held while migrations are applied, so that concurrent migrate() calls wait.
SELECT pg_advisory_lock(1836146532, 0)

-- name: migrations_unlock
SELECT pg_advisory_unlock(1836146532, 0)

-- name: migrations_create_table
CREATE TABLE IF NOT EXISTS mq_migrations (
    name text PRIMARY KEY,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: migrations_applied
SELECT name, checksum FROM mq_migrations ORDER BY name

-- name: migrations_record
INSERT INTO mq_migrations (name, checksum) VALUES (%(name)s, %(checksum)s)

-- name: insert
SELECT mq_insert(
    %(ids)s::uuid[], %(names)s::text[], %(channel_names)s::text[], %(channel_args)s::text[],
    %(payload_json)s::text[], %(payload_bytes)s::bytea[], %(delays)s::interval[],
    %(max_attempts)s::integer[], %(retry_backoffs)s::interval[], %(leases)s::interval[],
    %(ordered)s::boolean[], %(commit_intervals)s::interval[], %(priorities)s::integer[]
)

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
-- Leases up to %(limit)s ready jobs for one runner. Fairness: the groups (channel_name,
-- channel_args) that have ready jobs are visited round-robin, starting after the runner's cursor
-- (the last group it leased from) and wrapping around; each visited group gives at most its
-- share of the batch, best priority first, then the earliest attempt_at. Every step is an index
-- descent, so the cost depends on the batch size, not on the number of ready jobs or groups.
WITH RECURSIVE
after_cursor(cn, ca, n) AS (
    SELECT g.channel_name, g.channel_args, 1
    FROM mq_next_ready_group(%(channel_names)s::text[], %(cursor_name)s, %(cursor_args)s) AS g
    WHERE %(cursor_name)s::text IS NOT NULL
  UNION ALL
    SELECT g.channel_name, g.channel_args, a.n + 1
    FROM after_cursor AS a
    CROSS JOIN LATERAL mq_next_ready_group(%(channel_names)s::text[], a.cn, a.ca) AS g
    WHERE a.n < %(limit)s
),
from_start(cn, ca, n) AS (
    SELECT g.channel_name, g.channel_args, 1
    FROM mq_next_ready_group(%(channel_names)s::text[], NULL, NULL) AS g
    WHERE %(cursor_name)s::text IS NULL
       OR (g.channel_name, g.channel_args) <= (%(cursor_name)s::text, %(cursor_args)s::text)
  UNION ALL
    SELECT g.channel_name, g.channel_args, f.n + 1
    FROM from_start AS f
    CROSS JOIN LATERAL mq_next_ready_group(%(channel_names)s::text[], f.cn, f.ca) AS g
    WHERE f.n < %(limit)s
      AND (%(cursor_name)s::text IS NULL
           OR (g.channel_name, g.channel_args) <= (%(cursor_name)s::text, %(cursor_args)s::text))
),
groups AS MATERIALIZED (
    SELECT g.cn, g.ca, row_number() OVER () AS pos
    FROM (
        SELECT cn, ca FROM after_cursor
        UNION ALL
        SELECT cn, ca FROM from_start
        LIMIT %(limit)s
    ) AS g
),
picked AS MATERIALIZED (
    SELECT c.id, g.pos
    FROM groups AS g
    CROSS JOIN LATERAL (
        SELECT j.id FROM mq_jobs AS j
        WHERE j.state = 'r' AND j.channel_name = g.cn AND j.channel_args = g.ca
        ORDER BY j.priority DESC, j.attempt_at
        LIMIT (SELECT ceil(%(limit)s::float8 / count(*))::integer FROM groups)
        FOR UPDATE SKIP LOCKED
    ) AS c
    LIMIT %(limit)s
),
leased AS (
    UPDATE mq_jobs AS j
    SET state = 'l',
        attempts = j.attempts + 1,
        lease_token = gen_random_uuid(),
        attempt_at = now() + coalesce(j.lease, %(default_lease)s::interval)
    FROM picked
    WHERE j.id = picked.id
    RETURNING j.id, j.lease_token, j.attempts, j.max_attempts, j.channel_name, j.channel_args,
        coalesce(j.lease, %(default_lease)s::interval) AS lease, picked.pos
)
SELECT l.id, l.lease_token, l.attempts, l.max_attempts, l.channel_name, l.channel_args,
    l.lease, p.name, p.payload_json::text, p.payload_bytes, p.retry_backoff
FROM leased AS l
JOIN mq_payloads AS p ON p.id = l.id
ORDER BY l.pos

-- name: promote_scheduled
-- Makes scheduled jobs whose time has come ready, and says how many seconds remain until the
-- next scheduled job of these channels (NULL if there is none).
WITH due AS (
    SELECT id FROM mq_jobs
    WHERE state = 's' AND attempt_at <= now()
    ORDER BY attempt_at
    LIMIT 5000
    FOR UPDATE SKIP LOCKED
), promoted AS (
    UPDATE mq_jobs AS j SET state = 'r' FROM due WHERE j.id = due.id RETURNING j.id
)
SELECT
    (SELECT count(*) FROM promoted),
    extract(epoch FROM (
        CASE WHEN %(channel_names)s::text[] IS NULL THEN (
            SELECT min(attempt_at) FROM mq_jobs WHERE state = 's' AND attempt_at > now()
        ) ELSE (
            SELECT min(n.at)
            FROM unnest(%(channel_names)s::text[]) AS u(name)
            CROSS JOIN LATERAL (
                SELECT attempt_at AS at FROM mq_jobs
                WHERE state = 's' AND channel_name = u.name AND attempt_at > now()
                ORDER BY attempt_at
                LIMIT 1
            ) AS n
        ) END - now()
    ))::float8

-- name: complete
-- Deletes jobs whose lease is still held under the given tokens; returns the ids deleted.
WITH done AS (
    DELETE FROM mq_jobs AS j
    USING unnest(%(ids)s::uuid[], %(tokens)s::uuid[]) AS t(id, token)
    WHERE j.id = t.id AND j.lease_token = t.token
    RETURNING j.id
), payloads AS (
    DELETE FROM mq_payloads AS p USING done WHERE p.id = done.id
)
SELECT id FROM done

-- name: fail
-- Records failed attempts. A job with attempts left waits %(delays)s (its backoff) or, with no
-- delay, is ready at once; a job without attempts left becomes failed and is kept.
WITH failed AS (
    UPDATE mq_jobs AS j
    SET state = CASE
            WHEN j.attempts >= j.max_attempts THEN 'f'
            WHEN t.delay > interval '0' THEN 's'
            ELSE 'r'
        END,
        attempt_at = CASE
            WHEN j.attempts >= j.max_attempts OR t.delay <= interval '0' THEN now()
            ELSE now() + t.delay
        END,
        lease_token = NULL
    FROM unnest(%(ids)s::uuid[], %(tokens)s::uuid[], %(delays)s::interval[], %(errors)s::text[])
        AS t(id, token, delay, error)
    WHERE j.id = t.id AND j.lease_token = t.token
    RETURNING j.id, j.state, t.error
), errors AS (
    UPDATE mq_payloads AS p SET last_error = failed.error FROM failed WHERE p.id = failed.id
)
SELECT id, state::text FROM failed

-- name: renew
-- Extends the leases still held under the given tokens and returns the ids whose lease is gone.
-- Rows locked by another transaction (the job's own, completing it) are skipped, never waited
-- for, and not reported as lost.
WITH held AS (
    SELECT t.id, t.token FROM unnest(%(ids)s::uuid[], %(tokens)s::uuid[]) AS t(id, token)
), lockable AS (
    SELECT j.id FROM mq_jobs AS j
    JOIN held ON j.id = held.id AND j.lease_token = held.token
    FOR UPDATE OF j SKIP LOCKED
), renewed AS (
    UPDATE mq_jobs AS j
    SET attempt_at = greatest(j.attempt_at, now() + coalesce(j.lease, %(default_lease)s::interval))
    FROM lockable
    WHERE j.id = lockable.id
    RETURNING j.id
)
SELECT held.id FROM held
WHERE NOT EXISTS (
    SELECT 1 FROM mq_jobs AS j WHERE j.id = held.id AND j.lease_token = held.token
)

-- name: release
-- Hands leases back without using up an attempt (a runner stopping before its jobs finished).
WITH released AS (
    UPDATE mq_jobs AS j
    SET state = 'r', attempts = greatest(j.attempts - 1, 0), lease_token = NULL, attempt_at = now()
    FROM unnest(%(ids)s::uuid[], %(tokens)s::uuid[]) AS t(id, token)
    WHERE j.id = t.id AND j.lease_token = t.token
    RETURNING j.id, j.channel_name
), woken AS (
    SELECT mq_wake(ARRAY(SELECT channel_name FROM released))
)
SELECT released.id FROM released, woken

-- name: keep_alive
UPDATE mq_jobs
SET attempt_at = greatest(attempt_at, now() + %(duration)s::interval)
WHERE id = %(id)s AND lease_token = %(token)s
RETURNING id

-- name: checkpoint
-- Saves a job's progress under its lease: the payload for the next attempt, extra attempts and a
-- longer lease. A job whose lease is gone (including a failed job) is never touched.
WITH job AS (
    UPDATE mq_jobs
    SET max_attempts = max_attempts + %(extra_retries)s,
        attempt_at = greatest(attempt_at, now() + %(duration)s::interval)
    WHERE id = %(id)s AND lease_token = %(token)s
    RETURNING id
)
UPDATE mq_payloads AS p
SET payload_json = CASE WHEN %(set_json)s THEN %(payload_json)s::json ELSE p.payload_json END,
    payload_bytes = CASE WHEN %(set_bytes)s THEN %(payload_bytes)s::bytea ELSE p.payload_bytes END
FROM job
WHERE p.id = job.id
RETURNING p.id

-- name: maintenance_lock
-- Only one runner at a time does the periodic maintenance; the others skip their turn.
SELECT pg_try_advisory_xact_lock(1836146533, 0)

-- name: expire_leases
-- Jobs whose lease ran out (their runner died or stalled) run again, or fail if that was their
-- last attempt.
WITH expired AS (
    SELECT id FROM mq_jobs
    WHERE state = 'l' AND attempt_at <= now()
    ORDER BY attempt_at
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
), updated AS (
    UPDATE mq_jobs AS j
    SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'f' ELSE 'r' END,
        lease_token = NULL,
        attempt_at = now()
    FROM expired
    WHERE j.id = expired.id
    RETURNING j.id, j.state, j.attempts, j.channel_name
), errors AS (
    UPDATE mq_payloads AS p
    SET last_error = 'lease expired during attempt ' || updated.attempts
    FROM updated
    WHERE p.id = updated.id
    RETURNING p.id, p.name
), woken AS (
    SELECT mq_wake(ARRAY(SELECT channel_name FROM updated WHERE state = 'r'))
)
SELECT u.id, u.state::text, u.attempts, e.name
FROM updated AS u JOIN errors AS e ON e.id = u.id, woken

-- name: expire_uncommitted
-- Two-phase jobs not committed within their commit interval are discarded.
WITH gone AS (
    DELETE FROM mq_jobs
    WHERE id IN (
        SELECT id FROM mq_jobs
        WHERE state = 'u' AND commit_deadline <= now()
        ORDER BY commit_deadline
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    )
    RETURNING id
), payloads AS (
    DELETE FROM mq_payloads AS p USING gone WHERE p.id = gone.id RETURNING p.id, p.name
)
SELECT id, name FROM payloads

-- name: sweep_blocked
-- Promotes the head of every ordered chain that is still marked blocked although nothing is
-- ahead of it (a spawn that raced with the completion of its predecessor). Visits one index
-- entry per chain.
WITH RECURSIVE heads AS (
    (SELECT id, channel_name, channel_args, state FROM mq_jobs
     WHERE ord_seq IS NOT NULL
     ORDER BY channel_name, channel_args, ord_seq
     LIMIT 1)
  UNION ALL
    SELECT n.id, n.channel_name, n.channel_args, n.state
    FROM heads AS h
    CROSS JOIN LATERAL (
        SELECT id, channel_name, channel_args, state FROM mq_jobs
        WHERE ord_seq IS NOT NULL
          AND (channel_name, channel_args) > (h.channel_name, h.channel_args)
        ORDER BY channel_name, channel_args, ord_seq
        LIMIT 1
    ) AS n
), promoted AS (
    UPDATE mq_jobs AS j
    SET state = CASE WHEN j.attempt_at > now() THEN 's' ELSE 'r' END
    FROM heads
    WHERE j.id = heads.id AND heads.state = 'b' AND j.state = 'b'
    RETURNING j.id, j.channel_name
), woken AS (
    SELECT mq_wake(ARRAY(SELECT channel_name FROM promoted), 's')
)
SELECT promoted.id FROM promoted, woken

-- name: purge_listeners
DELETE FROM mq_listeners WHERE heartbeat_at < now() - interval '5 minutes'

-- name: listener_upsert
INSERT INTO mq_listeners (id, channel_names, idle, host, pid)
VALUES (%(id)s, %(channel_names)s::text[], %(idle)s, %(host)s, %(pid)s)
ON CONFLICT (id) DO UPDATE
SET idle = excluded.idle, heartbeat_at = now(), channel_names = excluded.channel_names

-- name: listener_delete
DELETE FROM mq_listeners WHERE id = %(id)s
