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

-- name: insert_one
-- One job without a key, dependencies or ordering (the common case) in one plain statement.
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
        commit_deadline
    )
    SELECT %(id)s, %(channel_name)s, %(channel_args)s,
        CASE
            WHEN %(commit_interval)s::interval IS NOT NULL THEN 'u'
            WHEN t.at > now() THEN 's'
            ELSE 'r'
        END,
        %(priority)s, t.at, %(max_attempts)s, %(lease)s::interval,
        now() + %(commit_interval)s::interval
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
        commit_deadline
    )
    SELECT u.id, u.cn, u.ca,
        CASE WHEN u.ci IS NOT NULL THEN 'u' WHEN u.at > now() THEN 's' ELSE 'r' END,
        u.prio, u.at, u.ma, u.lease, now() + u.ci
    FROM (
        SELECT x.*, coalesce(x.run_at, now() + x.delay) AS at
        FROM unnest(
            %(ids)b::uuid[], %(channel_names)b::text[], %(channel_args)b::text[],
            %(priorities)b::integer[], %(run_ats)b::timestamptz[], %(delays)b::interval[],
            %(max_attempts)b::integer[], %(leases)b::interval[], %(commit_intervals)b::interval[]
        ) AS x(id, cn, ca, prio, run_at, delay, ma, lease, ci)
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
COPY mq_jobs (id, channel_name, channel_args, state, priority, max_attempts, lease)
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
-- Leases up to %(limit)s ready jobs for one runner. Fairness: the groups (channel_name,
-- channel_args) that have ready jobs are visited round-robin, starting after the runner's cursor
-- (the last group it leased from) and wrapping around; each visited group gives at most its
-- share of the batch, best priority first, then the earliest attempt_at. Every step is an index
-- descent, so the cost depends on the batch size, not on the number of ready jobs or groups.
-- Channels in %(excluded)s (those with a concurrency limit, leased separately) are stepped over
-- whole: one descent per excluded channel.
-- %(durable)s: the lease waits for the WAL flush (see the RETURNING list).
WITH RECURSIVE
after_cursor(cn, ca, n) AS (
    SELECT g.channel_name, g.channel_args, 1
    FROM mq_next_ready_group(%(channel_names)s::text[], %(cursor_name)s, %(cursor_args)s) AS g
    WHERE %(cursor_name)s::text IS NOT NULL
  UNION ALL
    SELECT g.channel_name, g.channel_args, a.n + 1
    FROM after_cursor AS a
    CROSS JOIN LATERAL mq_next_ready_group(
        %(channel_names)s::text[], a.cn,
        CASE WHEN a.cn = ANY(%(excluded)s::text[]) THEN NULL ELSE a.ca END
    ) AS g
    WHERE a.n < %(limit)s + cardinality(%(excluded)s::text[])
),
from_start(cn, ca, n) AS (
    SELECT g.channel_name, g.channel_args, 1
    FROM mq_next_ready_group(%(channel_names)s::text[], NULL, NULL) AS g
    WHERE %(cursor_name)s::text IS NULL
       OR (g.channel_name, g.channel_args) <= (%(cursor_name)s::text, %(cursor_args)s::text)
  UNION ALL
    SELECT g.channel_name, g.channel_args, f.n + 1
    FROM from_start AS f
    CROSS JOIN LATERAL mq_next_ready_group(
        %(channel_names)s::text[], f.cn,
        CASE WHEN f.cn = ANY(%(excluded)s::text[]) THEN NULL ELSE f.ca END
    ) AS g
    WHERE f.n < %(limit)s + cardinality(%(excluded)s::text[])
      AND (%(cursor_name)s::text IS NULL
           OR (g.channel_name, g.channel_args) <= (%(cursor_name)s::text, %(cursor_args)s::text))
),
groups AS MATERIALIZED (
    SELECT g.cn, g.ca, row_number() OVER () AS pos
    FROM (
        SELECT cn, ca FROM (
            SELECT cn, ca FROM after_cursor
            UNION ALL
            SELECT cn, ca FROM from_start
        ) AS visited
        WHERE NOT (cn = ANY(%(excluded)s::text[]))
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
    -- by primary key: joining picked directly lets the planner hash-join a full scan of the
    -- queue once it holds a few thousand rows
    UPDATE mq_jobs AS j
    SET state = 'l',
        attempts = j.attempts + 1,
        lease_token = gen_random_uuid(),
        attempt_at = now() + coalesce(j.lease, %(default_lease)s::interval)
    WHERE j.id = ANY (ARRAY(SELECT id FROM picked))
    RETURNING j.id, j.lease_token, j.attempts, j.max_attempts, j.channel_name, j.channel_args,
        coalesce(j.lease, %(default_lease)s::interval) AS lease, j.job_key,
        -- a runner's lease need not wait for the WAL flush: a lease that a database crash
        -- forgets only makes the job ready again, and the stale runner is fenced by its token.
        -- Transaction-local (is_local), so neither a pooled session nor a caller's own
        -- transaction (fetch() passes durable) is changed; evaluated only when rows are leased
        CASE WHEN NOT %(durable)s::boolean
            THEN set_config('synchronous_commit', 'off', true) END AS commit_mode
)
SELECT l.id, l.lease_token, l.attempts, l.max_attempts, l.channel_name, l.channel_args,
    l.lease, coalesce(p.name, 'sqlxmq:missing-payload'), p.payload_json::text, p.payload_bytes,
    coalesce(p.retry_backoff, interval '1 second'), l.job_key, p.retain_for, p.headers::text
FROM leased AS l
JOIN picked ON picked.id = l.id
LEFT JOIN LATERAL (
    SELECT * FROM mq_payloads AS p WHERE p.id = l.id
) AS p ON true
ORDER BY picked.pos

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
-- Jobs that ask to be kept (retain_for, or %(default_retain)s) go to mq_history with their
-- result; callers of wait_for_result are notified.
WITH t AS (
    SELECT * FROM unnest(%(ids)b::uuid[], %(tokens)b::uuid[], %(results)s::text[])
        AS t(id, token, result)
), done AS (
    DELETE FROM mq_jobs AS j
    USING t
    WHERE j.id = ANY(%(ids)b::uuid[]) AND j.id = t.id AND j.lease_token = t.token
    RETURNING j.id, j.channel_name, j.channel_args, j.attempts, j.max_attempts, j.priority,
        j.job_key, t.result
), payloads AS (
    -- joined by id, one index probe per job; it hands the job's columns on, so that keeping it
    -- below needs no further join
    DELETE FROM mq_payloads AS p
    USING done AS d
    WHERE p.id = d.id
    RETURNING p.id, p.name, p.payload_json, p.payload_bytes, p.headers, p.created_at,
        p.retain_for, p.notify_done, d.channel_name, d.channel_args, d.attempts, d.max_attempts,
        d.priority, d.job_key, d.result
), kept AS (
    INSERT INTO mq_history (
        id, name, channel_name, channel_args, state, attempts, max_attempts, priority, job_key,
        payload_json, payload_bytes, result, headers, created_at, expires_at
    )
    SELECT r.id, r.name, r.channel_name, r.channel_args, 'completed', r.attempts,
        r.max_attempts, r.priority, r.job_key, r.payload_json, r.payload_bytes, r.result::json,
        r.headers, r.created_at, now() + coalesce(r.retain_for, %(default_retain)s::interval)
    FROM payloads AS r
    WHERE coalesce(r.retain_for, %(default_retain)s::interval) > interval '0'
    ON CONFLICT (id) DO NOTHING
), notified AS (
    SELECT pg_notify('mq_done', r.id::text) FROM payloads AS r WHERE r.notify_done
), limited AS (
    -- a slot of a limited channel is free: runners waiting for one may lease again
    SELECT mq_wake(ARRAY(
        SELECT DISTINCT d.channel_name FROM done AS d
        WHERE EXISTS (SELECT 1 FROM mq_channel_limits AS l WHERE l.channel_name = d.channel_name)
    ))
)
SELECT done.id FROM done, (SELECT count(*) FROM notified) AS n, limited

-- name: fail
-- Records failed attempts. A job with attempts left waits %(delays)s (its backoff) or, with no
-- delay, is ready at once; a job without attempts left becomes failed and is kept. A job that
-- was asked to stop is cancelled instead ('c'). Jobs of limited channels wake their runners.
WITH t AS (
    SELECT * FROM unnest(
        %(ids)b::uuid[], %(tokens)b::uuid[], %(delays)s::interval[], %(errors)s::text[]
    ) AS t(id, token, delay, error)
), failed AS (
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
    FROM t
    WHERE j.id = ANY(%(ids)b::uuid[]) AND j.id = t.id AND j.lease_token = t.token
      AND NOT j.cancel_requested
    RETURNING j.id, j.state, j.channel_name, t.error
), errors AS (
    -- an upsert: a job written without its payload row still gets its error recorded
    INSERT INTO mq_payloads AS p (id, name, retry_backoff, last_error)
    SELECT failed.id, 'sqlxmq:missing-payload', interval '1 second', failed.error FROM failed
    ON CONFLICT (id) DO UPDATE SET last_error = excluded.last_error
), limited AS (
    SELECT mq_wake(ARRAY(
        SELECT DISTINCT f.channel_name FROM failed AS f
        WHERE EXISTS (SELECT 1 FROM mq_channel_limits AS l WHERE l.channel_name = f.channel_name)
    ))
)
SELECT id, state::text FROM failed, limited
UNION ALL
SELECT c, 'c' FROM mq_cancel_now(
    %(ids)b::uuid[],
    'cancelled while running',
    ARRAY(
        SELECT j.lease_token FROM mq_jobs AS j JOIN t ON j.id = t.id AND j.lease_token = t.token
        WHERE j.id = ANY(%(ids)b::uuid[]) AND j.cancel_requested
    ),
    false,
    ARRAY(SELECT 'cancelled while running: ' || t.error FROM t)
) AS c

-- name: renew
-- Extends the leases still held under the given tokens. Returns the tokens of the leases that
-- are gone ('lost') and of the jobs asked to stop ('cancel'). Rows locked by another transaction (the job's
-- own, completing it) are skipped, never waited for, and not reported as lost.
WITH held AS (
    SELECT t.id, t.token FROM unnest(%(ids)b::uuid[], %(tokens)b::uuid[]) AS t(id, token)
), lockable AS (
    SELECT j.id FROM mq_jobs AS j
    JOIN held ON j.id = held.id AND j.lease_token = held.token
    WHERE j.id = ANY(%(ids)b::uuid[])
    FOR UPDATE OF j SKIP LOCKED
), renewed AS (
    UPDATE mq_jobs AS j
    SET attempt_at = greatest(j.attempt_at, now() + coalesce(j.lease, %(default_lease)s::interval))
    FROM lockable
    WHERE j.id = ANY(%(ids)b::uuid[]) AND j.id = lockable.id
    RETURNING j.id
)
SELECT held.token, CASE WHEN j.id IS NULL THEN 'lost' ELSE 'cancel' END
FROM held
LEFT JOIN mq_jobs AS j ON j.id = held.id AND j.lease_token = held.token
WHERE j.id IS NULL OR j.cancel_requested

-- name: release
-- Hands leases back without using up an attempt (a runner stopping before its jobs finished).
WITH released AS (
    UPDATE mq_jobs AS j
    SET state = 'r', attempts = greatest(j.attempts - 1, 0), lease_token = NULL, attempt_at = now()
    FROM unnest(%(ids)b::uuid[], %(tokens)b::uuid[]) AS t(id, token)
    WHERE j.id = ANY(%(ids)b::uuid[]) AND j.id = t.id AND j.lease_token = t.token
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
    SET max_attempts = least(max_attempts::bigint + %(extra_retries)s, 2147483647)::integer,
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
    WHERE state = 'l' AND attempt_at <= now() AND NOT cancel_requested
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
    INSERT INTO mq_payloads AS p (id, name, retry_backoff, last_error)
    SELECT updated.id, 'sqlxmq:missing-payload', interval '1 second',
        'lease expired during attempt ' || updated.attempts
    FROM updated
    ON CONFLICT (id) DO UPDATE SET last_error = excluded.last_error
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

-- name: cancel_expired
-- Running jobs asked to stop whose runner died: cancelled rather than retried.
SELECT count(*) FROM mq_cancel_now(
    ARRAY(
        SELECT id FROM mq_jobs
        WHERE state = 'l' AND cancel_requested AND attempt_at <= now()
        LIMIT 1000
    ),
    'cancelled: the job was asked to stop and its runner is gone',
    NULL,
    true
)

-- name: expire_history
WITH gone AS (
    DELETE FROM mq_history
    WHERE id IN (
        SELECT id FROM mq_history WHERE expires_at <= now() ORDER BY expires_at LIMIT 5000
    )
    RETURNING id
)
SELECT count(*) FROM gone

-- name: expire_throttles
DELETE FROM mq_throttle WHERE until <= now()

-- name: sweep_waiting
SELECT mq_sweep_waiting()

-- name: status
SELECT j.id, p.name, j.state::text, j.attempts, j.max_attempts, j.channel_name, j.channel_args,
    j.priority, j.job_key, j.attempt_at, p.created_at, NULL::timestamptz, p.last_error, NULL::text,
    j.cancel_requested
FROM mq_jobs AS j JOIN mq_payloads AS p ON p.id = j.id
WHERE j.id = %(id)s
UNION ALL
SELECT h.id, h.name, h.state, h.attempts, h.max_attempts, h.channel_name, h.channel_args,
    h.priority, h.job_key, NULL, h.created_at, h.finished_at, h.last_error, h.result::text, false
FROM mq_history AS h
WHERE h.id = %(id)s

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
-- Jobs per channel and state, with the age of the oldest ready job.
SELECT c.channel_name, c.label, count(*),
    extract(epoch FROM now() - min(c.attempt_at) FILTER (WHERE c.label = 'ready'))::float8
FROM (
    SELECT j.channel_name, j.attempt_at,
        CASE j.state
            WHEN 'r' THEN 'ready'
            WHEN 'l' THEN 'running'
            WHEN 'b' THEN 'waiting'
            WHEN 'w' THEN 'waiting'
            WHEN 'u' THEN 'uncommitted'
            WHEN 'f' THEN 'failed'
            ELSE CASE WHEN j.attempts > 0 THEN 'retrying' ELSE 'scheduled' END
        END AS label
    FROM mq_jobs AS j
) AS c
GROUP BY c.channel_name, c.label
ORDER BY c.channel_name, c.label

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
WITH failed AS (
    DELETE FROM mq_jobs
    WHERE %(failed)s AND state = 'f'
      AND attempt_at < coalesce(%(failed_at)s::timestamptz, now() - %(failed_age)s::interval)
    RETURNING id
), failed_payloads AS (
    DELETE FROM mq_payloads AS p USING failed WHERE p.id = failed.id
), history AS (
    DELETE FROM mq_history
    WHERE expires_at <= now()
       OR finished_at < coalesce(%(history_at)s::timestamptz, now() - %(history_age)s::interval)
    RETURNING id
)
SELECT (SELECT count(*) FROM failed), (SELECT count(*) FROM history)

-- name: set_channel_limit
INSERT INTO mq_channel_limits (channel_name, max_running)
VALUES (%(channel_name)s, %(max_running)s)
ON CONFLICT (channel_name) DO UPDATE SET max_running = excluded.max_running

-- name: delete_channel_limit
DELETE FROM mq_channel_limits WHERE channel_name = %(channel_name)s

-- name: channel_limits
SELECT channel_name, max_running FROM mq_channel_limits ORDER BY channel_name

-- name: lock_channel_limit
-- Serialises leasing from a limited channel across runners, until the leasing transaction ends.
SELECT max_running FROM mq_channel_limits WHERE channel_name = %(channel_name)s FOR UPDATE

-- name: count_running
SELECT count(*) FROM mq_jobs WHERE state = 'l' AND channel_name = %(channel_name)s

-- name: schedule_upsert
INSERT INTO mq_schedules (
    name, cron, timezone, job_name, channel_name, channel_args, payload_json, max_attempts,
    retry_backoff, priority, lease, retain_for, dead_letter, dead_letter_channel, ordered,
    backfill, last_tick
)
VALUES (
    %(name)s, %(cron)s, %(timezone)s, %(job_name)s, %(channel_name)s, %(channel_args)s,
    %(payload_json)s::json, %(max_attempts)s, %(retry_backoff)s, %(priority)s, %(lease)s,
    %(retain_for)s, %(dead_letter)s, %(dead_letter_channel)s, %(ordered)s, %(backfill)s, now()
)
ON CONFLICT (name) DO UPDATE
SET cron = excluded.cron, timezone = excluded.timezone, job_name = excluded.job_name,
    channel_name = excluded.channel_name, channel_args = excluded.channel_args,
    payload_json = excluded.payload_json, max_attempts = excluded.max_attempts,
    retry_backoff = excluded.retry_backoff, priority = excluded.priority,
    lease = excluded.lease, retain_for = excluded.retain_for,
    dead_letter = excluded.dead_letter, dead_letter_channel = excluded.dead_letter_channel,
    ordered = excluded.ordered, backfill = excluded.backfill, updated_at = now()

-- name: schedules
SELECT name, cron, timezone, job_name, channel_name, channel_args, payload_json::text,
    max_attempts, retry_backoff, priority, lease, retain_for, dead_letter, dead_letter_channel,
    ordered, backfill, last_tick, now()
FROM mq_schedules
ORDER BY name

-- name: schedule_delete
DELETE FROM mq_schedules WHERE name = %(name)s RETURNING name

-- name: schedule_advance
-- Compare-and-set: only the caller that saw %(last_tick)s moves the schedule on.
UPDATE mq_schedules SET last_tick = %(new_tick)s
WHERE name = %(name)s AND last_tick = %(last_tick)s
RETURNING name

-- name: listen_done
LISTEN mq_done

-- name: unlisten_done
UNLISTEN mq_done

-- name: stats_add
-- A runner's counts of finished attempts since its last flush, per minute and channel.
INSERT INTO mq_stats AS s (bucket, channel_name, completed, retried, failed)
SELECT * FROM unnest(
    %(buckets)s::timestamptz[], %(channel_names)s::text[], %(completed)s::bigint[],
    %(retried)s::bigint[], %(failed)s::bigint[]
)
ON CONFLICT (bucket, channel_name) DO UPDATE
SET completed = s.completed + excluded.completed,
    retried = s.retried + excluded.retried,
    failed = s.failed + excluded.failed

-- name: stats_expire
DELETE FROM mq_stats WHERE bucket < now() - interval '7 days'

-- name: stats
-- Finished attempts per minute (all channels, or one) since a time.
SELECT bucket, sum(completed)::bigint, sum(retried)::bigint, sum(failed)::bigint
FROM mq_stats
WHERE bucket >= %(since)s::timestamptz
  AND (%(channel_name)s::text IS NULL OR channel_name = %(channel_name)s)
GROUP BY bucket
ORDER BY bucket

-- name: set_statement_timeout
-- For short-lived connections that must not hang (metrics scrapes).
SELECT set_config('statement_timeout', %(milliseconds)s, false)

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

-- Admin reads on big queues (sqlxmq_py.admin.list_jobs, the dashboard's counts). Each
-- list_jobs_by_* statement serves one kind of filter from an index (chosen in Python by which
-- filters are set) and returns the columns of list_jobs. In all of them a job's "label" is
--     (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
-- ('t': retrying), spelt exactly as in mq_jobs_admin_idx (0004), which holds every job that
-- is not leased ordered by (label, channel_name, id); `j.state <> 'l'` is repeated next to it
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
          AND j.state <> 'l'
        ORDER BY j.channel_name
        LIMIT 1)
    FROM unnest(%(labels)s::"char"[]) AS s(label)
  UNION ALL
    SELECT c.label, (
        SELECT j.channel_name FROM mq_jobs AS j
        WHERE (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
              = c.label
          AND j.state <> 'l' AND j.channel_name > c.channel_name
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
          AND j.state <> 'l' AND j.channel_name = c.channel_name AND j.id <= %(upto)s::uuid
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
          AND j.state <> 'l' AND j.channel_name = %(channel_name)s::text
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
     WHERE j.state <> 'l'
     ORDER BY 1, 2
     LIMIT 1)
  UNION ALL
    SELECT n.label, n.channel_name
    FROM pairs AS c
    CROSS JOIN LATERAL (
        SELECT (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
            AS label, j.channel_name
        FROM mq_jobs AS j
        WHERE j.state <> 'l'
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
              AND j.state <> 'l' AND j.channel_name = c.channel_name
            LIMIT %(cap)s::integer + 1) AS x) AS n,
        (SELECT min(x.attempt_at) FROM (
            SELECT j.attempt_at FROM mq_jobs AS j
            WHERE c.label = 'r'
              AND (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
                  = c.label
              AND j.state <> 'l' AND j.channel_name = c.channel_name
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
     WHERE j.state <> 'l'
     ORDER BY 1, 2
     LIMIT 1)
  UNION ALL
    SELECT n.label, n.channel_name
    FROM pairs AS c
    CROSS JOIN LATERAL (
        SELECT (CASE WHEN j.state = 's' AND j.attempts > 0 THEN 't'::"char" ELSE j.state END)
            AS label, j.channel_name
        FROM mq_jobs AS j
        WHERE j.state <> 'l'
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
