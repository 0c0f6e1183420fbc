-- sqlxmq_py schema: rate limits per key (issue 13).
--
-- A job may carry rate keys (mq_jobs.rate_keys; NULL for almost every job, so that a job without
-- them costs the lease one NULL test). A rule of mq_rate_limits allows at most max_starts starts
-- in ANY window of length period for a key: the rule 'openai' gives the key 'openai' one budget,
-- shared by every job that carries it; the rule 'customer:*' gives each key under the prefix
-- ('customer:acme', 'customer:bolt', ...) a budget of its own. A key without a rule is not
-- limited. A job with several keys starts only if every one of them allows it, and its start is
-- counted in all of them, in one transaction.
--
-- The budget is a sliding log: mq_rate_windows holds, per key, the instants of its last
-- max_starts starts. A start at t is allowed iff fewer than max_starts of them are later than
-- t - period, i.e. every half-open window [t0, t0 + period) holds at most max_starts starts.
-- (A fixed-window counter would allow twice the budget across a boundary, and a token bucket
-- bursts beyond it.) The lease locks the windows of its keys in key order (no deadlock between
-- runners), reads the clock after the locks (a lease that waited for one would otherwise count
-- an instant earlier than the start it waited for) and records that instant as the job's
-- leased_at.
--
-- A job whose key is exhausted is deferred in the lease itself: it becomes scheduled until the
-- instant its keys allow it (for the d-th job of a key deferred by one lease, the d-th oldest
-- start leaving the window), so that it leaves the ready set, blocks nobody, and is not looked at
-- again before then; the promotion of scheduled jobs makes it ready at that instant. The lease
-- returns it as a row without a lease token, so that the runner knows that it looked at more jobs
-- than it leased and may lease again at once.

ALTER TABLE mq_jobs ADD COLUMN rate_keys text[];

CREATE TABLE mq_rate_limits (
    key_pattern text PRIMARY KEY,
    max_starts integer NOT NULL CHECK (max_starts > 0),
    period interval NOT NULL CHECK (period > interval '0')
);

CREATE TABLE mq_rate_windows (
    rate_key text PRIMARY KEY,
    -- the last starts, ascending, at most the rule's max_starts
    starts timestamptz[] NOT NULL,
    -- when the newest start leaves the window: from then on the row says nothing
    idle_at timestamptz NOT NULL
) WITH (fillfactor = 70);

CREATE INDEX mq_rate_windows_idle_idx ON mq_rate_windows (idle_at);

-- The rule of a key: the rule named by the key itself, else the longest prefix rule ('p*')
-- whose prefix starts the key; none if neither exists.
CREATE FUNCTION mq_rate_rule(p_key text)
RETURNS TABLE (max_starts integer, period interval)
LANGUAGE sql STABLE AS $$
    SELECT r.max_starts, r.period FROM mq_rate_limits AS r
    WHERE r.key_pattern = p_key
       OR (right(r.key_pattern, 1) = '*' AND starts_with(p_key, left(r.key_pattern, -1)))
    ORDER BY r.key_pattern = p_key DESC, length(r.key_pattern) DESC
    LIMIT 1
$$;

-- Decides, for the jobs p_ids (locked by the caller's lease, in the order it would start them),
-- which start now: each is returned with started_at (the instant counted in its keys' windows)
-- or with wait_until (it was deferred: made scheduled until then). A spent key costs a read of
-- its window and the deferral; only a start writes the window.
CREATE FUNCTION mq_rate_admit(p_ids uuid[])
RETURNS TABLE (id uuid, started_at timestamptz, wait_until timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_keys text[];
    v_max integer[];
    v_period interval[];
    v_denied integer[];
    v_now timestamptz;
    v_job record;
    v_key text;
    v_i integer;
    v_starts timestamptz[];
    v_in integer;
    v_until timestamptz;
    v_admitted uuid[] := '{}';
    v_deferred uuid[] := '{}';
    v_untils timestamptz[] := '{}';
    v_channels text[];
    v_locked integer;
BEGIN
    SELECT array_agg(k.key ORDER BY k.key), array_agg(r.max_starts ORDER BY k.key),
        array_agg(r.period ORDER BY k.key)
    INTO v_keys, v_max, v_period
    FROM (
        SELECT DISTINCT u.key FROM mq_jobs AS j CROSS JOIN unnest(j.rate_keys) AS u(key)
        WHERE j.id = ANY(p_ids)
    ) AS k
    CROSS JOIN LATERAL mq_rate_rule(k.key) AS r;
    v_keys := coalesce(v_keys, '{}');
    -- the windows of these keys, created if missing, then locked: both in key order, the same
    -- in every lease, so that two leases never wait for each other in a cycle. An idle window
    -- dropped (mq_rate_prune) between the two is not locked: created again, until all are held.
    LOOP
        INSERT INTO mq_rate_windows AS w (rate_key, starts, idle_at)
        SELECT k.key, '{}', '-infinity' FROM unnest(v_keys) AS k(key)
        WHERE NOT EXISTS (SELECT 1 FROM mq_rate_windows AS x WHERE x.rate_key = k.key)
        ORDER BY k.key
        ON CONFLICT (rate_key) DO NOTHING;
        PERFORM 1 FROM mq_rate_windows AS w WHERE w.rate_key = ANY(v_keys)
        ORDER BY w.rate_key FOR UPDATE;
        GET DIAGNOSTICS v_locked = ROW_COUNT;
        EXIT WHEN v_locked = cardinality(v_keys);
    END LOOP;
    -- after the locks: an earlier lease of these keys has committed its starts by now
    v_now := clock_timestamp();
    v_denied := array_fill(0, ARRAY[cardinality(v_keys)]);
    FOR v_job IN
        SELECT j.id, j.rate_keys, j.channel_name
        FROM unnest(p_ids) WITH ORDINALITY AS u(id, n)
        JOIN mq_jobs AS j ON j.id = u.id
        ORDER BY u.n
    LOOP
        v_until := NULL;
        FOREACH v_key IN ARRAY v_job.rate_keys LOOP
            v_i := array_position(v_keys, v_key);
            CONTINUE WHEN v_i IS NULL;  -- no rule: not limited
            -- the log is ascending: the starts still inside the window ending now
            SELECT w.starts, (
                SELECT count(*) FROM unnest(w.starts) AS s(at) WHERE s.at > v_now - v_period[v_i]
            )
            INTO v_starts, v_in
            FROM mq_rate_windows AS w WHERE w.rate_key = v_key;
            IF v_in >= v_max[v_i] THEN
                -- the d-th job deferred here waits for the d-th oldest of the counted starts
                v_denied[v_i] := v_denied[v_i] + 1;
                v_until := greatest(v_until,
                    v_starts[cardinality(v_starts) - v_in + least(v_denied[v_i], v_in)]
                    + v_period[v_i]);
            END IF;
        END LOOP;
        IF v_until IS NULL THEN
            UPDATE mq_rate_windows AS w
            SET starts = (w.starts || v_now)[
                    greatest(1, cardinality(w.starts) + 2 - r.max_starts):cardinality(w.starts) + 1],
                idle_at = v_now + r.period
            FROM (
                SELECT DISTINCT k.key, v_max[array_position(v_keys, k.key)] AS max_starts,
                    v_period[array_position(v_keys, k.key)] AS period
                FROM unnest(v_job.rate_keys) AS k(key)
                WHERE k.key = ANY(v_keys)
            ) AS r
            WHERE w.rate_key = r.key;
            v_admitted := v_admitted || v_job.id;
        ELSE
            v_deferred := v_deferred || v_job.id;
            v_untils := v_untils || v_until;
        END IF;
    END LOOP;
    IF cardinality(v_deferred) > 0 THEN
        -- idle runners' promoters learn of the new scheduled jobs (a busy runner's own lease
        -- loop promotes after a lease that deferred)
        WITH moved AS (
            UPDATE mq_jobs AS j SET state = 's', attempt_at = d.until
            FROM unnest(v_deferred, v_untils) AS d(id, until)
            WHERE j.id = d.id
            RETURNING j.channel_name
        )
        SELECT array_agg(DISTINCT m.channel_name) INTO v_channels FROM moved AS m;
        PERFORM mq_wake(v_channels, 's');
    END IF;
    RETURN QUERY
    SELECT a.id, v_now, NULL::timestamptz FROM unnest(v_admitted) AS a(id)
    UNION ALL
    SELECT d.id, NULL::timestamptz, d.until FROM unnest(v_deferred, v_untils) AS d(id, until);
END;
$$;

-- Keys whose every start has left its window say nothing: dropped, at most p_limit at a time, so
-- that one-off keys (one per customer) do not pile up. A lease holding one is skipped.
CREATE FUNCTION mq_rate_prune(p_limit integer) RETURNS integer
LANGUAGE sql AS $$
    WITH idle AS (
        SELECT w.rate_key FROM mq_rate_windows AS w
        WHERE w.idle_at <= clock_timestamp()
        ORDER BY w.idle_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), dropped AS (
        DELETE FROM mq_rate_windows AS w USING idle
        WHERE w.rate_key = idle.rate_key AND w.idle_at <= clock_timestamp()
        RETURNING 1
    )
    SELECT count(*)::integer FROM dropped
$$;

-- mq_insert for jobs with rate keys: the same jobs, then their keys (p_rate_positions: the
-- 1-based position of the job each key of p_rate_keys belongs to), in the same transaction, so
-- that no runner ever sees such a job without its keys. Jobs without keys never come here.
CREATE FUNCTION mq_insert_rated(
    p_ids uuid[], p_names text[], p_channel_names text[], p_channel_args text[],
    p_payload_json text[], p_payload_bytes bytea[], p_delays interval[],
    p_run_ats timestamptz[], p_max_attempts integer[], p_retry_backoffs interval[],
    p_leases interval[], p_ordered boolean[], p_commit_intervals interval[],
    p_priorities integer[], p_job_keys text[], p_job_key_modes text[], p_throttles interval[],
    p_retain_fors interval[], p_dead_letters text[], p_dead_letter_channels text[],
    p_run_after_failed_parents boolean[], p_dep_positions integer[], p_dep_parents uuid[],
    p_headers jsonb[], p_rate_positions integer[], p_rate_keys text[]
) RETURNS TABLE (pos integer, id uuid)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_pos integer[];
    v_ids uuid[];
BEGIN
    SELECT array_agg(i.pos ORDER BY i.pos), array_agg(i.id ORDER BY i.pos) INTO v_pos, v_ids
    FROM mq_insert(
        p_ids, p_names, p_channel_names, p_channel_args, p_payload_json, p_payload_bytes,
        p_delays, p_run_ats, p_max_attempts, p_retry_backoffs, p_leases, p_ordered,
        p_commit_intervals, p_priorities, p_job_keys, p_job_key_modes, p_throttles,
        p_retain_fors, p_dead_letters, p_dead_letter_channels, p_run_after_failed_parents,
        p_dep_positions, p_dep_parents, p_headers
    ) AS i;
    UPDATE mq_jobs AS j SET rate_keys = k.keys
    FROM (
        SELECT u.id, array_agg(DISTINCT r.key ORDER BY r.key) AS keys
        FROM unnest(v_pos, v_ids) AS u(pos, id)
        JOIN unnest(p_rate_positions, p_rate_keys) AS r(pos, key) ON r.pos = u.pos
        GROUP BY u.id
    ) AS k
    WHERE j.id = k.id;
    RETURN QUERY SELECT u.pos, u.id FROM unnest(v_pos, v_ids) AS u(pos, id) ORDER BY u.pos;
END;
$$;

-- The lease of 0008 (its walk unchanged), with rate keys: the jobs it takes that carry some are
-- admitted or deferred by mq_rate_admit (a one-time test skips the call when none does), and
-- the deferred ones are returned too, without a lease token, after the leased ones.
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
        SELECT c.id, c.size, c.rk, row_number() OVER (ORDER BY g.pos, c.rank) AS ord
        FROM groups AS g
        CROSS JOIN LATERAL (
            SELECT j.id, j.payload_size AS size, j.rate_keys AS rk,
                row_number() OVER (ORDER BY j.priority DESC, j.attempt_at) AS rank
            FROM (
                SELECT j.id, j.payload_size, j.priority, j.attempt_at, j.rate_keys
                FROM mq_jobs AS j
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
        SELECT b.id, b.ord, b.rk FROM (
            SELECT p.id, p.ord, p.rk,
                sum(p.size) OVER (ORDER BY p.ord ROWS UNBOUNDED PRECEDING) - p.size AS before
            FROM picked AS p
        ) AS b
        WHERE b.before < p_max_bytes
    ),
    admitted AS MATERIALIZED (
        SELECT a.id, a.started_at, a.wait_until
        FROM mq_rate_admit(
            ARRAY(SELECT t.id FROM taken AS t WHERE t.rk IS NOT NULL ORDER BY t.ord)
        ) AS a
        WHERE EXISTS (SELECT 1 FROM taken AS t WHERE t.rk IS NOT NULL)
    ),
    leased AS (
        UPDATE mq_jobs AS j
        SET state = 'l',
            attempts = j.attempts + 1,
            lease_token = gen_random_uuid(),
            attempt_at = now() + coalesce(j.lease, p_default_lease),
            leased_by = p_runner,
            leased_at = CASE WHEN j.rate_keys IS NULL THEN now() ELSE coalesce(
                (SELECT a.started_at FROM admitted AS a WHERE a.id = j.id), now()) END
        WHERE j.id = ANY (ARRAY(
            SELECT t.id FROM taken AS t WHERE t.rk IS NULL
            UNION ALL
            SELECT a.id FROM admitted AS a WHERE a.wait_until IS NULL
        ))
        RETURNING j.id, j.lease_token, j.attempts, j.max_attempts, j.channel_name,
            j.channel_args, coalesce(j.lease, p_default_lease) AS lease, j.job_key,
            j.payload_size,
            -- transaction-local (is_local): neither a pooled session nor a caller's own
            -- transaction (the pull API passes p_durable) is changed
            CASE WHEN NOT p_durable
                THEN set_config('synchronous_commit', 'off', true) END AS commit_mode
    )
    (
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
        ORDER BY t.ord
    )
    UNION ALL
    SELECT a.id, NULL::uuid, NULL::integer, NULL::integer, NULL::text, NULL::text,
        NULL::interval, NULL::text, NULL::text, NULL::bytea, NULL::interval, NULL::text,
        NULL::interval, NULL::text, 0
    FROM admitted AS a WHERE a.wait_until IS NOT NULL;
END;
$$;
