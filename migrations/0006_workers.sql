-- sqlxmq_py schema, version 6: live workers.
--
-- Every runner announces itself in mq_listeners (0001): it now also says which version of the
-- library it runs and its concurrency, so that `sqlxmq workers`, GET /api/workers and the
-- dashboard can list the live runners. A lease records the runner that took the job and when
-- (leased_by, leased_at), written by the lease's own UPDATE: no statement is added per job.
-- Both are meaningful only while the job is leased (state 'l'); later states leave them as they
-- were, since clearing them would cost every settling statement a wider write.

ALTER TABLE mq_listeners
    ADD COLUMN version text,
    ADD COLUMN min_concurrency integer,
    ADD COLUMN max_concurrency integer;

ALTER TABLE mq_jobs
    ADD COLUMN leased_by uuid,
    ADD COLUMN leased_at timestamptz;

-- The lease functions of 0003 with one more, optional, argument: the leasing runner's id.
DROP FUNCTION mq_lease_limited(text, text, text, integer, interval, boolean, bigint);
DROP FUNCTION mq_lease(text[], text, text, integer, interval, text[], boolean, bigint);

CREATE FUNCTION mq_lease(
    p_channel_names text[],
    p_cursor_name text,
    p_cursor_args text,
    p_limit integer,
    p_default_lease interval,
    p_excluded text[],
    p_durable boolean,
    p_max_bytes bigint,
    p_runner uuid DEFAULT NULL
) RETURNS TABLE (
    id uuid, lease_token uuid, attempt integer, max_attempts integer, channel_name text,
    channel_args text, lease interval, name text, payload_json text, payload_bytes bytea,
    retry_backoff interval, job_key text, retain_for interval, headers text,
    payload_size integer
)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH RECURSIVE
    after_cursor(cn, ca, n) AS (
        SELECT g.channel_name, g.channel_args, 1
        FROM mq_next_ready_group(p_channel_names, p_cursor_name, p_cursor_args) AS g
        WHERE p_cursor_name IS NOT NULL
      UNION ALL
        SELECT g.channel_name, g.channel_args, a.n + 1
        FROM after_cursor AS a
        CROSS JOIN LATERAL mq_next_ready_group(
            p_channel_names, a.cn, CASE WHEN a.cn = ANY(p_excluded) THEN NULL ELSE a.ca END
        ) AS g
        WHERE a.n < p_limit + cardinality(p_excluded)
    ),
    from_start(cn, ca, n) AS (
        SELECT g.channel_name, g.channel_args, 1
        FROM mq_next_ready_group(p_channel_names, NULL, NULL) AS g
        WHERE p_cursor_name IS NULL
           OR (g.channel_name, g.channel_args) <= (p_cursor_name, p_cursor_args)
      UNION ALL
        SELECT g.channel_name, g.channel_args, f.n + 1
        FROM from_start AS f
        CROSS JOIN LATERAL mq_next_ready_group(
            p_channel_names, f.cn, CASE WHEN f.cn = ANY(p_excluded) THEN NULL ELSE f.ca END
        ) AS g
        WHERE f.n < p_limit + cardinality(p_excluded)
          AND (p_cursor_name IS NULL
               OR (g.channel_name, g.channel_args) <= (p_cursor_name, p_cursor_args))
    ),
    groups AS MATERIALIZED (
        SELECT g.cn, g.ca, row_number() OVER () AS pos
        FROM (
            SELECT v.cn, v.ca FROM (
                SELECT a.cn, a.ca FROM after_cursor AS a
                UNION ALL
                SELECT f.cn, f.ca FROM from_start AS f
            ) AS v
            WHERE NOT (v.cn = ANY(p_excluded))
            LIMIT p_limit
        ) AS g
    ),
    picked AS MATERIALIZED (
        SELECT c.id, c.size, row_number() OVER (ORDER BY g.pos, c.rank) AS ord
        FROM groups AS g
        CROSS JOIN LATERAL (
            SELECT j.id, j.payload_size AS size,
                row_number() OVER (ORDER BY j.priority DESC, j.attempt_at) AS rank
            FROM (
                SELECT j.id, j.payload_size, j.priority, j.attempt_at FROM mq_jobs AS j
                WHERE j.state = 'r' AND j.channel_name = g.cn AND j.channel_args = g.ca
                ORDER BY j.priority DESC, j.attempt_at
                LIMIT (SELECT ceil(p_limit::float8 / count(*))::integer FROM groups)
                FOR UPDATE SKIP LOCKED
            ) AS j
        ) AS c
        ORDER BY g.pos, c.rank
        LIMIT p_limit
    ),
    taken AS MATERIALIZED (
        SELECT b.id, b.ord FROM (
            SELECT p.id, p.ord,
                sum(p.size) OVER (ORDER BY p.ord ROWS UNBOUNDED PRECEDING) - p.size AS before
            FROM picked AS p
        ) AS b
        WHERE b.before < p_max_bytes
    ),
    leased AS (
        UPDATE mq_jobs AS j
        SET state = 'l',
            attempts = j.attempts + 1,
            lease_token = gen_random_uuid(),
            attempt_at = now() + coalesce(j.lease, p_default_lease),
            leased_by = p_runner,
            leased_at = now()
        WHERE j.id = ANY (ARRAY(SELECT t.id FROM taken AS t))
        RETURNING j.id, j.lease_token, j.attempts, j.max_attempts, j.channel_name,
            j.channel_args, coalesce(j.lease, p_default_lease) AS lease, j.job_key,
            j.payload_size,
            -- transaction-local (is_local): neither a pooled session nor a caller's own
            -- transaction (the pull API passes p_durable) is changed
            CASE WHEN NOT p_durable
                THEN set_config('synchronous_commit', 'off', true) END AS commit_mode
    )
    SELECT l.id, l.lease_token, l.attempts, l.max_attempts, l.channel_name, l.channel_args,
        l.lease, coalesce(p.name, 'sqlxmq:missing-payload'), p.payload_json::text,
        p.payload_bytes, coalesce(p.retry_backoff, interval '1 second'), l.job_key,
        p.retain_for, p.headers::text, l.payload_size
    FROM leased AS l
    JOIN taken AS t ON t.id = l.id
    LEFT JOIN LATERAL (
        SELECT p.name, p.payload_json, p.payload_bytes, p.retry_backoff, p.retain_for,
            p.headers
        FROM mq_payloads AS p WHERE p.id = l.id
        OFFSET 0
    ) AS p ON true
    ORDER BY t.ord;
END;
$$;


CREATE FUNCTION mq_lease_limited(
    p_channel_name text,
    p_cursor_name text,
    p_cursor_args text,
    p_limit integer,
    p_default_lease interval,
    p_durable boolean,
    p_max_bytes bigint,
    p_runner uuid DEFAULT NULL
) RETURNS TABLE (
    id uuid, lease_token uuid, attempt integer, max_attempts integer, channel_name text,
    channel_args text, lease interval, name text, payload_json text, payload_bytes bytea,
    retry_backoff interval, job_key text, retain_for interval, headers text,
    payload_size integer
)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_max integer;
    v_running integer;
BEGIN
    SELECT l.max_running INTO v_max FROM mq_channel_limits AS l
    WHERE l.channel_name = p_channel_name
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT count(*) INTO v_running FROM mq_jobs AS j
    WHERE j.state = 'l' AND j.channel_name = p_channel_name;
    IF least(p_limit, v_max - v_running) <= 0 THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM mq_lease(
        ARRAY[p_channel_name], p_cursor_name, p_cursor_args, least(p_limit, v_max - v_running),
        p_default_lease, '{}', p_durable, p_max_bytes, p_runner
    );
END;
$$;

-- The announced runners, with the jobs each holds now and whether its heartbeat is older than
-- p_stale (a runner that stopped without unregistering; mq_maintain deletes it after 5
-- minutes). Running jobs are few (at most the runners' concurrency): mq_jobs_leased_idx finds
-- them. Ages are taken from the clock, not from now(): in a caller's long transaction, now()
-- would predate heartbeats the statement sees, and hide a runner going stale.
CREATE FUNCTION mq_workers(p_stale interval)
RETURNS TABLE (
    id uuid, host text, pid integer, version text, channel_names text[],
    min_concurrency integer, max_concurrency integer, idle boolean, started_at timestamptz,
    heartbeat_at timestamptz, running integer, stale boolean, now timestamptz
)
LANGUAGE sql VOLATILE AS $$
    SELECT l.id, l.host, l.pid, l.version, l.channel_names, l.min_concurrency,
        l.max_concurrency, l.idle, l.started_at, l.heartbeat_at, coalesce(r.n, 0)::integer,
        l.heartbeat_at < c.now - p_stale, c.now
    FROM (SELECT clock_timestamp() AS now) AS c
    CROSS JOIN mq_listeners AS l
    LEFT JOIN (
        SELECT j.leased_by, count(*) AS n FROM mq_jobs AS j
        WHERE j.state = 'l' AND j.leased_by IS NOT NULL
        GROUP BY j.leased_by
    ) AS r ON r.leased_by = l.id
    ORDER BY l.host, l.pid, l.started_at, l.id
$$;
