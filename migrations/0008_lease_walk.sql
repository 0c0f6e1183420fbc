-- sqlxmq_py schema: a lease that costs less per call (issue 11).
--
-- Measured with perf on the backend of a runner leasing 10 jobs per call (the library's default
-- set_concurrency(10, 20) leases about that many), a fifth of the lease's CPU went to starting
-- the executor, and half of that to the group walk: mq_next_ready_group, inlined four times
-- into the lease, holds four branches (any channel or some, from the start or after a group)
-- whose sixteen index scans were all set up on every call, though each call can take only
-- one branch of each. The walk now lives in mq_ready_groups, which picks one of four
-- statements by whether the runner names its channels and whether it has a cursor, each
-- made of the one- or two-branch step functions below; the lease itself keeps its shape and
-- semantics (round-robin over the ready groups from the cursor, each group at most its share).
--
-- mq_complete runs its second statement (which jobs another transaction holds) only when some
-- job of the batch was not locked, instead of on every call.

-- The steps of the walk: the first ready group (of any channel, or of the channels p_names), and
-- the next one after a group.
CREATE FUNCTION mq_group_first_any()
RETURNS TABLE(channel_name text, channel_args text) LANGUAGE sql STABLE AS $$
    SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
    WHERE j.state = 'r' ORDER BY j.channel_name, j.channel_args LIMIT 1
$$;
CREATE FUNCTION mq_group_first_in(p_names text[])
RETURNS TABLE(channel_name text, channel_args text) LANGUAGE sql STABLE AS $$
    SELECT h.channel_name, h.channel_args
    FROM (SELECT DISTINCT u.n FROM unnest(p_names) AS u(n) ORDER BY u.n) AS names
    CROSS JOIN LATERAL (
        SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
        WHERE j.state = 'r' AND j.channel_name = names.n
        ORDER BY j.channel_args LIMIT 1) AS h
    LIMIT 1
$$;
CREATE FUNCTION mq_group_after_any(p_after_name text, p_after_args text)
RETURNS TABLE(channel_name text, channel_args text) LANGUAGE sql STABLE AS $$
    (SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
      WHERE j.state = 'r' AND j.channel_name = p_after_name AND j.channel_args > p_after_args
      ORDER BY j.channel_args LIMIT 1)
    UNION ALL
    (SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
      WHERE j.state = 'r' AND j.channel_name > p_after_name
      ORDER BY j.channel_name, j.channel_args LIMIT 1)
    LIMIT 1
$$;
CREATE FUNCTION mq_group_after_in(p_names text[], p_after_name text, p_after_args text)
RETURNS TABLE(channel_name text, channel_args text) LANGUAGE sql STABLE AS $$
    (SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
      WHERE j.state = 'r' AND j.channel_name = p_after_name AND j.channel_args > p_after_args
        AND p_after_name = ANY(p_names)
      ORDER BY j.channel_args LIMIT 1)
    UNION ALL
    (SELECT h.channel_name, h.channel_args
      FROM (SELECT DISTINCT u.n FROM unnest(p_names) AS u(n)
            WHERE u.n > p_after_name ORDER BY u.n) AS names
      CROSS JOIN LATERAL (
          SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
          WHERE j.state = 'r' AND j.channel_name = names.n
          ORDER BY j.channel_args LIMIT 1) AS h)
    LIMIT 1
$$;
-- The ready groups a lease visits, at most p_limit of them, in the order of (channel_name,
-- channel_args): those after the runner's cursor, then from the first up to the cursor; among
-- the channels p_names (NULL: every channel), stepping over the channels p_excluded (leased
-- apart, under their concurrency limit).
CREATE FUNCTION mq_ready_groups(
    p_names text[], p_cursor_name text, p_cursor_args text, p_limit integer, p_excluded text[]
) RETURNS TABLE(cn text, ca text) LANGUAGE plpgsql STABLE
SET enable_seqscan = off SET enable_bitmapscan = off SET jit = off
SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
BEGIN
    IF p_names IS NULL AND p_cursor_name IS NOT NULL THEN
        RETURN QUERY
        WITH RECURSIVE after_cursor(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1
            FROM mq_group_after_any(p_cursor_name, p_cursor_args) AS g
          UNION ALL
            SELECT g.channel_name, g.channel_args, a.n + 1
            FROM after_cursor AS a
            CROSS JOIN LATERAL mq_group_after_any(
                a.cn, CASE WHEN a.cn = ANY(p_excluded) THEN NULL ELSE a.ca END) AS g
            WHERE a.n < p_limit + cardinality(p_excluded)
        ), from_start(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1
            FROM mq_group_first_any() AS g
            WHERE (g.channel_name, g.channel_args) <= (p_cursor_name, p_cursor_args)
          UNION ALL
            SELECT g.channel_name, g.channel_args, f.n + 1
            FROM from_start AS f
            CROSS JOIN LATERAL mq_group_after_any(
                f.cn, CASE WHEN f.cn = ANY(p_excluded) THEN NULL ELSE f.ca END) AS g
            WHERE f.n < p_limit + cardinality(p_excluded)
              AND (g.channel_name, g.channel_args) <= (p_cursor_name, p_cursor_args)
        )
        SELECT v.cn, v.ca FROM (
            SELECT a.cn, a.ca FROM after_cursor AS a
            UNION ALL
            SELECT f.cn, f.ca FROM from_start AS f
        ) AS v
        WHERE NOT (v.cn = ANY(p_excluded))
        LIMIT p_limit;
    ELSIF p_names IS NULL THEN
        RETURN QUERY
        WITH RECURSIVE from_start(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1 FROM mq_group_first_any() AS g
          UNION ALL
            SELECT g.channel_name, g.channel_args, f.n + 1
            FROM from_start AS f
            CROSS JOIN LATERAL mq_group_after_any(
                f.cn, CASE WHEN f.cn = ANY(p_excluded) THEN NULL ELSE f.ca END) AS g
            WHERE f.n < p_limit + cardinality(p_excluded)
        )
        SELECT f.cn, f.ca FROM from_start AS f WHERE NOT (f.cn = ANY(p_excluded)) LIMIT p_limit;
    ELSIF p_cursor_name IS NOT NULL THEN
        RETURN QUERY
        WITH RECURSIVE after_cursor(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1
            FROM mq_group_after_in(p_names, p_cursor_name, p_cursor_args) AS g
          UNION ALL
            SELECT g.channel_name, g.channel_args, a.n + 1
            FROM after_cursor AS a
            CROSS JOIN LATERAL mq_group_after_in(
                p_names, a.cn, CASE WHEN a.cn = ANY(p_excluded) THEN NULL ELSE a.ca END) AS g
            WHERE a.n < p_limit + cardinality(p_excluded)
        ), from_start(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1
            FROM mq_group_first_in(p_names) AS g
            WHERE (g.channel_name, g.channel_args) <= (p_cursor_name, p_cursor_args)
          UNION ALL
            SELECT g.channel_name, g.channel_args, f.n + 1
            FROM from_start AS f
            CROSS JOIN LATERAL mq_group_after_in(
                p_names, f.cn, CASE WHEN f.cn = ANY(p_excluded) THEN NULL ELSE f.ca END) AS g
            WHERE f.n < p_limit + cardinality(p_excluded)
              AND (g.channel_name, g.channel_args) <= (p_cursor_name, p_cursor_args)
        )
        SELECT v.cn, v.ca FROM (
            SELECT a.cn, a.ca FROM after_cursor AS a
            UNION ALL
            SELECT f.cn, f.ca FROM from_start AS f
        ) AS v
        WHERE NOT (v.cn = ANY(p_excluded))
        LIMIT p_limit;
    ELSE
        RETURN QUERY
        WITH RECURSIVE from_start(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1 FROM mq_group_first_in(p_names) AS g
          UNION ALL
            SELECT g.channel_name, g.channel_args, f.n + 1
            FROM from_start AS f
            CROSS JOIN LATERAL mq_group_after_in(
                p_names, f.cn, CASE WHEN f.cn = ANY(p_excluded) THEN NULL ELSE f.ca END) AS g
            WHERE f.n < p_limit + cardinality(p_excluded)
        )
        SELECT f.cn, f.ca FROM from_start AS f WHERE NOT (f.cn = ANY(p_excluded)) LIMIT p_limit;
    END IF;
END;
$$;

-- The lease of 0006, unchanged but for its group walk, which is now mq_ready_groups.
CREATE OR REPLACE FUNCTION mq_lease(
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
    WITH groups AS MATERIALIZED (
        SELECT g.cn, g.ca, row_number() OVER () AS pos
        FROM mq_ready_groups(
            p_channel_names, p_cursor_name, p_cursor_args, p_limit, p_excluded
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

-- The completion of 0003, unchanged but for its second statement, now run only when needed.
CREATE OR REPLACE FUNCTION mq_complete(
    p_ids uuid[], p_tokens uuid[], p_results text[], p_default_retain interval,
    p_wait boolean DEFAULT true
) RETURNS TABLE (id uuid, outcome text)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_ids uuid[];
BEGIN
    IF p_wait THEN
        v_ids := ARRAY(
            SELECT j.id FROM mq_jobs AS j
            JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
            WHERE j.id = ANY(p_ids) AND j.lease_token = t.token
            ORDER BY j.id
            FOR UPDATE OF j
        );
    ELSE
        v_ids := ARRAY(
            SELECT j.id FROM mq_jobs AS j
            JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
            WHERE j.id = ANY(p_ids) AND j.lease_token = t.token
            FOR UPDATE OF j SKIP LOCKED
        );
    END IF;
    RETURN QUERY
    WITH t AS (
        SELECT * FROM unnest(p_ids, p_results) AS t(id, result)
    ), done AS (
        DELETE FROM mq_jobs AS j
        WHERE j.id = ANY(v_ids)
        RETURNING j.id, j.channel_name, j.channel_args, j.attempts, j.max_attempts,
            j.priority, j.job_key
    ), payloads AS (
        DELETE FROM mq_payloads AS p
        WHERE p.id = ANY(v_ids)
        RETURNING p.id, p.name, p.payload_json, p.payload_bytes, p.headers, p.created_at,
            p.retain_for, p.notify_done, p.errors
    ), kept AS (
        INSERT INTO mq_history (
            id, name, channel_name, channel_args, state, attempts, max_attempts, priority,
            job_key, payload_json, payload_bytes, result, headers, created_at, expires_at, errors
        )
        SELECT r.id, r.name, d.channel_name, d.channel_args, 'completed', d.attempts,
            d.max_attempts, d.priority, d.job_key, r.payload_json, r.payload_bytes,
            t.result::json, r.headers, r.created_at,
            now() + coalesce(r.retain_for, p_default_retain), r.errors
        FROM payloads AS r
        JOIN done AS d ON d.id = r.id
        JOIN t ON t.id = r.id
        WHERE coalesce(r.retain_for, p_default_retain) > interval '0'
        ON CONFLICT (id) DO NOTHING
    ), notified AS (
        SELECT pg_notify('mq_done', r.id::text) FROM payloads AS r WHERE r.notify_done
    ), limited AS (
        -- a slot of a limited channel is free: runners waiting for one may lease again
        SELECT mq_wake(ARRAY(
            SELECT DISTINCT d.channel_name FROM done AS d
            WHERE EXISTS (
                SELECT 1 FROM mq_channel_limits AS l WHERE l.channel_name = d.channel_name
            )
        ))
    )
    SELECT d.id, 'completed'::text FROM done AS d, (SELECT count(*) FROM notified) AS n, limited;
    IF NOT p_wait AND cardinality(v_ids) < cardinality(p_ids) THEN
        RETURN QUERY
        SELECT j.id, 'busy'::text FROM mq_jobs AS j
        JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
        WHERE j.id = ANY(p_ids) AND j.lease_token = t.token AND NOT (j.id = ANY(v_ids));
    END IF;
END;
$$;

-- nothing calls the four-branch step any more
DROP FUNCTION mq_next_ready_group(text[], text, text);
