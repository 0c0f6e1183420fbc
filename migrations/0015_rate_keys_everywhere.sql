-- sqlxmq_py schema: rate keys everywhere a job is spawned (issue 13 follow-ups).
--
-- 1. A schedule stores the rate keys of its job (mq_schedules.rate_keys, NULL for none), so
--    that its ticks carry them like any other spawn of the job.
-- 2. mq_spawn takes rate_keys (DEFAULT NULL: every existing call works and costs what it did).
--    A dead-letter job spawned by the failure trigger carries none: its definition (its
--    @job(rate_keys)) lives in the application, and SQL does not know it.
-- 3. A rule changed or removed re-judges the jobs it deferred (mq_rate_change): when the rule
--    of a key allows more than before (a higher max_starts, a shorter period, or no rule any
--    more), its deferred jobs become due now, and the next lease admits or defers them again
--    under the rule as it is. A deferred job is recognised by its instant: the lease deferred
--    it to (a start in its key's window) + (the rule's period), which a job scheduled for
--    later by its spawner (run_at) does not meet but by a microsecond-exact coincidence.

ALTER TABLE mq_schedules ADD COLUMN rate_keys text[];

-- A job's rate keys from SQL, checked as sqlxmq_py.rate_limit.check_rate_keys checks them, and
-- stored as the lease expects them: distinct, sorted, NULL for none.
CREATE FUNCTION mq_rate_keys_checked(p_keys text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_key text;
    v_keys text[];
BEGIN
    IF p_keys IS NULL OR cardinality(p_keys) = 0 THEN
        RETURN NULL;
    END IF;
    FOREACH v_key IN ARRAY p_keys LOOP
        IF v_key IS NULL OR v_key = '' THEN
            RAISE EXCEPTION 'mq_spawn: a rate key must be a non-empty text, got %',
                coalesce(quote_literal(v_key), 'NULL') USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF octet_length(v_key) > 200 THEN
            RAISE EXCEPTION 'mq_spawn: a rate key must be at most 200 bytes of UTF-8, got % '
                'bytes: %', octet_length(v_key), left(v_key, 40)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF strpos(v_key, '*') > 0 THEN
            RAISE EXCEPTION 'mq_spawn: a rate key may not hold ''*'' (only rules use it), got %',
                v_key USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    SELECT array_agg(DISTINCT k ORDER BY k) INTO v_keys FROM unnest(p_keys) AS u(k);
    IF cardinality(v_keys) > 16 THEN
        RAISE EXCEPTION 'mq_spawn: a job carries at most 16 rate keys, got %', cardinality(v_keys)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_keys;
END;
$$;

-- mq_spawn of 0002, with rate_keys last. Dropped and created (not replaced): a second
-- overload with a defaulted parameter would make every existing call ambiguous.
DROP FUNCTION mq_spawn(
    text, json, text, text, interval, integer, interval, boolean, integer, bytea, interval,
    interval, timestamptz, text, text, interval, interval, text, uuid[], boolean, jsonb
);

-- Spawns one job from SQL (a trigger, a script, another language); returns its id.
-- Example: SELECT mq_spawn('send_email', '{"to": "a@example.com"}', channel_name => 'emails',
--     rate_keys => ARRAY['smtp']);
CREATE FUNCTION mq_spawn(
    name text,
    payload_json json DEFAULT NULL,
    channel_name text DEFAULT '',
    channel_args text DEFAULT '',
    delay interval DEFAULT interval '0',
    retries integer DEFAULT 4,
    retry_backoff interval DEFAULT interval '1 second',
    ordered boolean DEFAULT false,
    priority integer DEFAULT 0,
    payload_bytes bytea DEFAULT NULL,
    lease interval DEFAULT NULL,
    commit_interval interval DEFAULT NULL,
    run_at timestamptz DEFAULT NULL,
    job_key text DEFAULT NULL,
    job_key_mode text DEFAULT 'replace',
    throttle interval DEFAULT NULL,
    retain_for interval DEFAULT NULL,
    dead_letter text DEFAULT NULL,
    after uuid[] DEFAULT '{}',
    run_after_failed_parents boolean DEFAULT false,
    headers jsonb DEFAULT NULL,
    rate_keys text[] DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
    v_keys text[];
BEGIN
    IF retries IS NULL OR retries < 0 THEN
        RAISE EXCEPTION 'mq_spawn: retries must be >= 0, got %', retries
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF job_key_mode NOT IN ('replace', 'preserve_run_at', 'unsafe_dedupe') THEN
        RAISE EXCEPTION 'mq_spawn: job_key_mode must be replace, preserve_run_at or '
            'unsafe_dedupe, got %', job_key_mode USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF throttle IS NOT NULL AND job_key IS NULL THEN
        RAISE EXCEPTION 'mq_spawn: a throttle needs a job_key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_keys := mq_rate_keys_checked(rate_keys);
    IF v_keys IS NULL THEN
        -- the path of every job without keys: the same call as before this migration
        SELECT i.id INTO v_id FROM mq_insert(
            ARRAY[mq_uuid7()], ARRAY[name], ARRAY[channel_name], ARRAY[channel_args],
            ARRAY[payload_json::text], ARRAY[payload_bytes], ARRAY[delay], ARRAY[run_at],
            ARRAY[retries + 1], ARRAY[retry_backoff], ARRAY[lease], ARRAY[ordered],
            ARRAY[commit_interval], ARRAY[priority], ARRAY[job_key], ARRAY[job_key_mode],
            ARRAY[throttle], ARRAY[retain_for], ARRAY[dead_letter], ARRAY[NULL::text],
            ARRAY[run_after_failed_parents],
            array_fill(1, ARRAY[cardinality(coalesce(after, '{}'))]), coalesce(after, '{}'),
            ARRAY[headers]
        ) AS i;
    ELSE
        -- as the Python spawn of a keyed job: the job and its keys in one statement
        SELECT i.id INTO v_id FROM mq_insert_rated(
            ARRAY[mq_uuid7()], ARRAY[name], ARRAY[channel_name], ARRAY[channel_args],
            ARRAY[payload_json::text], ARRAY[payload_bytes], ARRAY[delay], ARRAY[run_at],
            ARRAY[retries + 1], ARRAY[retry_backoff], ARRAY[lease], ARRAY[ordered],
            ARRAY[commit_interval], ARRAY[priority], ARRAY[job_key], ARRAY[job_key_mode],
            ARRAY[throttle], ARRAY[retain_for], ARRAY[dead_letter], ARRAY[NULL::text],
            ARRAY[run_after_failed_parents],
            array_fill(1, ARRAY[cardinality(coalesce(after, '{}'))]), coalesce(after, '{}'),
            ARRAY[headers], array_fill(1, ARRAY[cardinality(v_keys)]), v_keys
        ) AS i;
    END IF;
    RETURN v_id;
END;
$$;

-- Sets (p_max_starts and p_period) or removes (both NULL) the rule of p_pattern; returns
-- whether the pattern had a rule, and how many deferred jobs became due again (at most
-- p_limit). The windows of the keys the pattern names are locked first, in key order as leases
-- lock them: a lease deferring jobs of these keys finishes first, and its deferrals are seen
-- here. (A prefix pattern cannot wait so for a lease that is making the window of a key under
-- it for the first time: that lease's deferrals keep their instant.) A removed rule's keys that no other rule names lose their windows, so that a lease
-- that read the rule before it was removed, and waits for a window, finds it empty and admits.
CREATE FUNCTION mq_rate_change(
    p_pattern text, p_max_starts integer, p_period interval, p_limit integer
) RETURNS TABLE (existed boolean, woken integer)
LANGUAGE plpgsql
-- index look-ups only, as the lease does (a plan that scans every scheduled job, or compiles
-- itself for a cost that disabling the scans inflates, costs far more than the look-ups)
SET enable_seqscan = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_old record;
    v_keys text[];
    v_old_max integer[];
    v_old_period interval[];
    v_woken integer := 0;
    v_channels text[];
BEGIN
    SELECT r.max_starts, r.period INTO v_old FROM mq_rate_limits AS r
    WHERE r.key_pattern = p_pattern;
    IF FOUND AND v_old.max_starts = p_max_starts AND v_old.period = p_period THEN
        -- unchanged (every runner writes its registry's rules at start): nothing to do
        RETURN QUERY SELECT true, 0;
        RETURN;
    END IF;
    IF right(p_pattern, 1) <> '*' AND EXISTS (SELECT 1 FROM mq_rate_rule(p_pattern)) THEN
        -- a lease making this key's window right now (its first lease) is waited for too: its
        -- uncommitted row is not seen by the locking read below, but conflicts with this one
        -- (a key that no rule limits yet has no deferred jobs to wait for)
        INSERT INTO mq_rate_windows AS w (rate_key, starts, idle_at)
        VALUES (p_pattern, '{}', '-infinity')
        ON CONFLICT (rate_key) DO NOTHING;
    END IF;
    SELECT coalesce(array_agg(w.rate_key ORDER BY w.rate_key), '{}') INTO v_keys
    FROM (
        SELECT w.rate_key FROM mq_rate_windows AS w
        WHERE w.rate_key = p_pattern
           OR (right(p_pattern, 1) = '*' AND starts_with(w.rate_key, left(p_pattern, -1)))
        ORDER BY w.rate_key
        FOR UPDATE
    ) AS w;
    -- each key's rule before the change (the pattern's own, or one it overrides)
    SELECT coalesce(array_agg(o.max_starts ORDER BY k.n), '{}'),
        coalesce(array_agg(o.period ORDER BY k.n), '{}')
    INTO v_old_max, v_old_period
    FROM unnest(v_keys) WITH ORDINALITY AS k(key, n)
    LEFT JOIN LATERAL mq_rate_rule(k.key) AS o ON true;
    IF p_max_starts IS NULL THEN
        DELETE FROM mq_rate_limits AS r WHERE r.key_pattern = p_pattern;
    ELSE
        INSERT INTO mq_rate_limits (key_pattern, max_starts, period)
        VALUES (p_pattern, p_max_starts, p_period)
        ON CONFLICT (key_pattern) DO UPDATE
        SET max_starts = excluded.max_starts, period = excluded.period;
        -- a longer period must not find the windows dropped as idle under the shorter one
        UPDATE mq_rate_windows AS w
        SET idle_at = w.starts[cardinality(w.starts)] + p_period
        WHERE w.rate_key = ANY(v_keys) AND cardinality(w.starts) > 0
          AND w.idle_at < w.starts[cardinality(w.starts)] + p_period;
    END IF;
    WITH looser AS (
        SELECT k.key, k.old_period
        FROM unnest(v_keys, v_old_max, v_old_period) AS k(key, old_max, old_period)
        LEFT JOIN LATERAL mq_rate_rule(k.key) AS n ON true
        WHERE k.old_max IS NOT NULL
          AND (n.max_starts IS NULL OR n.max_starts > k.old_max OR n.period < k.old_period)
    ),
    instants AS (
        -- where a lease under the old rule deferred this key's jobs to
        SELECT DISTINCT l.key, s.at + l.old_period AS until
        FROM looser AS l
        JOIN mq_rate_windows AS w ON w.rate_key = l.key
        CROSS JOIN unnest(w.starts) AS s(at)
    ),
    deferred AS (
        -- one look-up of the scheduled jobs' index per instant (at most max_starts a key),
        -- never a scan of every scheduled job
        SELECT DISTINCT j.id
        FROM instants AS i
        CROSS JOIN LATERAL (
            SELECT j.id FROM mq_jobs AS j
            WHERE j.state = 's' AND j.attempt_at = i.until AND i.key = ANY(j.rate_keys)
            OFFSET 0
        ) AS j
        LIMIT p_limit
    ),
    moved AS (
        UPDATE mq_jobs AS j SET attempt_at = least(j.attempt_at, now())
        FROM deferred AS d
        WHERE j.id = d.id AND j.state = 's'
        RETURNING j.channel_name
    )
    SELECT count(*)::integer, array_agg(DISTINCT m.channel_name) INTO v_woken, v_channels
    FROM moved AS m;
    IF v_woken > 0 THEN
        PERFORM mq_wake(v_channels, 's');
    END IF;
    IF p_max_starts IS NULL THEN
        DELETE FROM mq_rate_windows AS w
        WHERE w.rate_key = ANY(v_keys) AND NOT EXISTS (SELECT 1 FROM mq_rate_rule(w.rate_key));
    END IF;
    RETURN QUERY SELECT v_old.max_starts IS NOT NULL, v_woken;
END;
$$;
