-- sqlxmq_py schema, version 2: scheduling and job management.
--
-- Adds job keys (dedupe, replace, throttle), absolute run times, continuations (jobs that wait
-- for parent jobs), history with results, dead letters, cancellation, retry and reschedule,
-- recurring schedules, per-channel concurrency limits, and headers (small string metadata
-- carried from spawn to run, e.g. a trace context). New job state:
--
--   'w'  waiting      waits for parent jobs (continuations) to complete

ALTER TABLE mq_jobs
    ADD COLUMN job_key text,
    ADD COLUMN has_children boolean NOT NULL DEFAULT false,
    ADD COLUMN cancel_requested boolean NOT NULL DEFAULT false;
ALTER TABLE mq_jobs DROP CONSTRAINT mq_jobs_state_check;
ALTER TABLE mq_jobs
    ADD CONSTRAINT mq_jobs_state_check CHECK (state IN ('r', 's', 'l', 'b', 'u', 'f', 'w'));

-- Bounds that keep timestamps computable (now() + lease) and readable by clients.
ALTER TABLE mq_jobs
    ADD CONSTRAINT mq_jobs_lease_bound_check CHECK (lease <= interval '36525 days'),
    ADD CONSTRAINT mq_jobs_attempt_at_bound_check CHECK (attempt_at < '9000-01-01');

-- A key is unique among unfinished jobs.
CREATE UNIQUE INDEX mq_jobs_job_key_idx ON mq_jobs (job_key) WHERE job_key IS NOT NULL;

ALTER TABLE mq_payloads
    ADD COLUMN retain_for interval,
    ADD COLUMN dead_letter text,
    ADD COLUMN dead_letter_channel text,
    ADD COLUMN notify_done boolean NOT NULL DEFAULT false,
    ADD COLUMN run_after_failed_parents boolean NOT NULL DEFAULT false,
    ADD COLUMN headers jsonb;

-- Continuations: child waits for parent. Rows go when the parent completes.
CREATE TABLE mq_deps (
    parent_id uuid NOT NULL,
    child_id uuid NOT NULL,
    PRIMARY KEY (parent_id, child_id)
);
CREATE INDEX mq_deps_child_idx ON mq_deps (child_id);

-- Finished jobs that were asked to be kept (retain_for), and cancelled jobs. Never read by the
-- lease path.
CREATE TABLE mq_history (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    channel_name text NOT NULL,
    channel_args text NOT NULL,
    state text NOT NULL CHECK (state IN ('completed', 'cancelled')),
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    priority integer NOT NULL,
    job_key text,
    payload_json json,
    payload_bytes bytea,
    result json,
    last_error text,
    headers jsonb,
    created_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
) WITH (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_insert_scale_factor = 0.05);
CREATE INDEX mq_history_expires_idx ON mq_history (expires_at);
CREATE INDEX mq_history_finished_idx ON mq_history (finished_at);

-- Throttle windows: at most one job per key per window, finished jobs included.
CREATE TABLE mq_throttle (
    job_key text PRIMARY KEY,
    job_id uuid NOT NULL,
    until timestamptz NOT NULL
);
CREATE INDEX mq_throttle_until_idx ON mq_throttle (until);

-- Recurring schedules. Each tick is spawned once: the spawner moves last_tick forward with a
-- compare-and-set in the same transaction as the spawn.
CREATE TABLE mq_schedules (
    name text PRIMARY KEY,
    cron text NOT NULL,
    timezone text NOT NULL DEFAULT 'UTC',
    job_name text NOT NULL,
    channel_name text NOT NULL DEFAULT '',
    channel_args text NOT NULL DEFAULT '',
    payload_json json,
    max_attempts integer NOT NULL DEFAULT 5,
    retry_backoff interval NOT NULL DEFAULT interval '1 second',
    priority integer NOT NULL DEFAULT 0,
    lease interval,
    retain_for interval,
    dead_letter text,
    dead_letter_channel text,
    ordered boolean NOT NULL DEFAULT false,
    backfill interval NOT NULL DEFAULT interval '0',
    last_tick timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Finished attempts per minute and channel, added up by every runner (for dashboards).
CREATE TABLE mq_stats (
    bucket timestamptz NOT NULL,
    channel_name text NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    retried bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (bucket, channel_name)
);

-- Most jobs of a channel that may run at once, across all runners.
CREATE TABLE mq_channel_limits (
    channel_name text PRIMARY KEY,
    max_running integer NOT NULL CHECK (max_running >= 0)
);

-- The state a job that is not running, failed or uncommitted should be in.
CREATE FUNCTION mq_runnable_state(
    p_id uuid, p_channel_name text, p_channel_args text, p_ord_seq bigint, p_attempt_at timestamptz
) RETURNS "char"
LANGUAGE sql STABLE AS $$
    SELECT (CASE
        WHEN EXISTS (SELECT 1 FROM mq_deps AS d WHERE d.child_id = p_id) THEN 'w'
        WHEN p_ord_seq IS NOT NULL AND EXISTS (
            SELECT 1 FROM mq_jobs AS e
            WHERE e.channel_name = p_channel_name AND e.channel_args = p_channel_args
              AND e.ord_seq < p_ord_seq
        ) THEN 'b'
        WHEN p_attempt_at > now() THEN 's'
        ELSE 'r'
    END)::"char"
$$;

-- Records jobs as kept history (if they ask to be kept) before they leave the hot table. The
-- error recorded for a job is p_errors[i] where p_error_ids[i] is its id, else p_error, else its
-- last error. The caller deletes them.
CREATE FUNCTION mq_keep(
    p_ids uuid[], p_state text, p_error text, p_default_retain interval,
    p_error_ids uuid[] DEFAULT NULL, p_errors text[] DEFAULT NULL
) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO mq_history (
        id, name, channel_name, channel_args, state, attempts, max_attempts, priority, job_key,
        payload_json, payload_bytes, result, last_error, headers, created_at, expires_at
    )
    SELECT j.id, p.name, j.channel_name, j.channel_args, p_state, j.attempts, j.max_attempts,
        j.priority, j.job_key, p.payload_json, p.payload_bytes, NULL,
        coalesce(e.error, p_error, p.last_error), p.headers, p.created_at,
        now() + coalesce(p.retain_for, p_default_retain)
    FROM mq_jobs AS j
    JOIN mq_payloads AS p ON p.id = j.id
    LEFT JOIN unnest(p_error_ids, p_errors) AS e(id, error) ON e.id = j.id
    WHERE j.id = ANY(p_ids) AND coalesce(p.retain_for, p_default_retain) > interval '0'
    ON CONFLICT (id) DO NOTHING
$$;

-- Cancels jobs that are not running; with p_tokens, the running jobs holding those leases too
-- (their runner is finishing them after a cancellation request); with p_expired, running jobs
-- whose lease ran out (their runner is gone). They leave the queue, are kept as cancelled
-- history (7 days unless they ask otherwise), their ordered chain closes up, their waiters are
-- told, and continuations waiting on them are cancelled too (unless they run after failed
-- parents). p_reasons[i], if given, is the reason for p_ids[i]. Returns the ids cancelled.
CREATE FUNCTION mq_cancel_now(
    p_ids uuid[], p_reason text, p_tokens uuid[] DEFAULT NULL, p_expired boolean DEFAULT false,
    p_reasons text[] DEFAULT NULL
)
RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_previous text := current_setting('mq.cancelling', true);
    v_ids uuid[];
BEGIN
    v_ids := ARRAY(
        SELECT j.id FROM mq_jobs AS j
        WHERE j.id = ANY(p_ids)
          AND (j.state <> 'l'
               OR j.lease_token = ANY(p_tokens)
               OR (p_expired AND j.attempt_at <= now()))
          AND (p_tokens IS NULL OR j.state = 'l')
        FOR UPDATE
    );
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM mq_keep(v_ids, 'cancelled', p_reason, interval '7 days', p_ids, p_reasons);
    PERFORM pg_notify('mq_done', p.id::text) FROM mq_payloads AS p
    WHERE p.id = ANY(v_ids) AND p.notify_done;
    DELETE FROM mq_deps WHERE child_id = ANY(v_ids);
    -- the triggers below see this setting: the jobs leave as cancelled, not completed
    PERFORM set_config('mq.cancelling', 'on', true);
    DELETE FROM mq_jobs WHERE id = ANY(v_ids);
    PERFORM set_config('mq.cancelling', coalesce(v_previous, ''), true);
    DELETE FROM mq_payloads WHERE id = ANY(v_ids);
    RETURN QUERY SELECT unnest(v_ids);
END;
$$;

-- Cancels jobs: waiting ones at once (see mq_cancel_now), running ones by asking their runner
-- to stop (current_job.cancelled). Returns each job found with 'cancelled' or 'requested'.
CREATE FUNCTION mq_cancel(p_ids uuid[], p_reason text DEFAULT 'cancelled')
RETURNS TABLE (id uuid, outcome text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY
        UPDATE mq_jobs AS j SET cancel_requested = true
        WHERE j.id = ANY(p_ids) AND j.state = 'l'
        RETURNING j.id, 'requested'::text;
    RETURN QUERY SELECT c, 'cancelled'::text FROM mq_cancel_now(p_ids, p_reason) AS c;
END;
$$;

-- Children whose parent left or failed: drop the dependency, and start those with no
-- dependency left.
CREATE FUNCTION mq_release_children(p_parent uuid, p_children uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM mq_deps WHERE parent_id = p_parent AND child_id = ANY(p_children);
    UPDATE mq_jobs AS c
    SET state = mq_runnable_state(c.id, c.channel_name, c.channel_args, c.ord_seq, c.attempt_at)
    WHERE c.id = ANY(p_children) AND c.state = 'w';
    IF FOUND THEN
        PERFORM mq_wake(ARRAY(SELECT channel_name FROM mq_jobs WHERE id = ANY(p_children)), 's');
    END IF;
END;
$$;

-- A parent that failed for good or was cancelled: its children are cancelled, except those
-- that asked to run after failed parents.
CREATE FUNCTION mq_parent_failed(p_parent uuid, p_reason text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_run uuid[];
    v_cancel uuid[];
BEGIN
    SELECT
        coalesce(array_agg(d.child_id) FILTER (WHERE p.run_after_failed_parents), '{}'),
        coalesce(array_agg(d.child_id) FILTER (WHERE NOT p.run_after_failed_parents), '{}')
    INTO v_run, v_cancel
    FROM mq_deps AS d JOIN mq_payloads AS p ON p.id = d.child_id
    WHERE d.parent_id = p_parent;
    PERFORM mq_cancel_now(v_cancel, p_reason);
    PERFORM mq_release_children(p_parent, v_run);
END;
$$;

-- A parent left the queue: completed (its children may start) or cancelled.
CREATE FUNCTION mq_jobs_parent_gone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mq.cancelling', true) = 'on' THEN
        PERFORM mq_parent_failed(OLD.id, 'parent job ' || OLD.id || ' was cancelled');
    ELSE
        PERFORM mq_release_children(
            OLD.id, ARRAY(SELECT child_id FROM mq_deps WHERE parent_id = OLD.id)
        );
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER mq_jobs_parent_gone_trg
    AFTER DELETE ON mq_jobs
    FOR EACH ROW WHEN (OLD.has_children)
    EXECUTE FUNCTION mq_jobs_parent_gone();

-- A job failed for good: spawn its dead letter, cancel (or release) its children, tell waiters.
CREATE FUNCTION mq_jobs_failed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v record;
BEGIN
    SELECT p.name, p.payload_json, p.payload_bytes, p.last_error, p.dead_letter,
        p.dead_letter_channel, p.notify_done
    INTO v FROM mq_payloads AS p WHERE p.id = NEW.id;
    IF v.dead_letter IS NOT NULL THEN
        PERFORM mq_spawn(
            v.dead_letter,
            json_build_object(
                'job_id', NEW.id, 'job_name', v.name, 'channel_name', NEW.channel_name,
                'channel_args', NEW.channel_args, 'attempts', NEW.attempts,
                'error', v.last_error, 'payload', v.payload_json
            ),
            channel_name => coalesce(v.dead_letter_channel, ''),
            payload_bytes => v.payload_bytes
        );
    END IF;
    IF NEW.has_children THEN
        PERFORM mq_parent_failed(NEW.id, 'parent job ' || NEW.id || ' failed');
    END IF;
    IF v.notify_done THEN
        PERFORM pg_notify('mq_done', NEW.id::text);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER mq_jobs_failed_trg
    AFTER UPDATE OF state ON mq_jobs
    FOR EACH ROW WHEN (NEW.state = 'f' AND OLD.state <> 'f')
    EXECUTE FUNCTION mq_jobs_failed();

-- Wakes idle runners (see version 1); returns at once when no runner is idle, which is the
-- common case under load, so a spawn then costs one index-free look at a tiny table.
CREATE OR REPLACE FUNCTION mq_wake(p_channel_names text[], p_payload text DEFAULT '')
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(p_channel_names) = 0 OR NOT EXISTS (
        SELECT 1 FROM mq_listeners
        WHERE idle AND heartbeat_at > now() - interval '1 minute'
    ) THEN
        RETURN;
    END IF;
    PERFORM pg_notify('mq', p_payload)
    WHERE EXISTS (
        SELECT 1 FROM mq_listeners
        WHERE idle AND channel_names IS NULL AND heartbeat_at > now() - interval '1 minute'
    );
    PERFORM pg_notify(mq_notify_channel(n.name), p_payload)
    FROM (SELECT DISTINCT name FROM unnest(p_channel_names) AS u(name)) AS n
    WHERE EXISTS (
        SELECT 1 FROM mq_listeners AS l
        WHERE l.idle AND n.name = ANY(l.channel_names)
          AND l.heartbeat_at > now() - interval '1 minute'
    );
END;
$$;

-- Ordered chains: the next head may also be waiting for parents, or scheduled.
CREATE OR REPLACE FUNCTION mq_jobs_unblock_next() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mq_jobs AS j
    SET state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, j.attempt_at)
    WHERE j.id = (
            SELECT h.id FROM mq_jobs AS h
            WHERE h.channel_name = OLD.channel_name
              AND h.channel_args = OLD.channel_args
              AND h.ord_seq IS NOT NULL
            ORDER BY h.ord_seq
            LIMIT 1
        )
      AND j.state = 'b';
    IF FOUND THEN
        PERFORM mq_wake(ARRAY[OLD.channel_name], 's');
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION mq_commit(p_ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_channels text[];
BEGIN
    WITH committed AS (
        UPDATE mq_jobs AS j
        SET state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, j.attempt_at),
            commit_deadline = NULL
        WHERE j.id = ANY(p_ids) AND j.state = 'u'
        RETURNING j.channel_name
    )
    SELECT array_agg(channel_name) INTO v_channels FROM committed;
    PERFORM mq_wake(coalesce(v_channels, '{}'), 's');
END;
$$;

-- Continuations whose parent left without resolving them (a spawn that raced with the parent's
-- completion or cancellation, which could not see the new child): a cancelled parent cancels
-- them, any other departed parent releases them. Run by the runners' maintenance.
CREATE FUNCTION mq_sweep_waiting() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_cancel uuid[];
    v_release uuid[];
    v_released integer;
BEGIN
    WITH orphaned AS (
        DELETE FROM mq_deps AS d
        WHERE NOT EXISTS (SELECT 1 FROM mq_jobs AS p WHERE p.id = d.parent_id)
        RETURNING d.parent_id, d.child_id
    ), judged AS (
        SELECT o.child_id,
            EXISTS (SELECT 1 FROM mq_history AS h
                    WHERE h.id = o.parent_id AND h.state = 'cancelled')
            AND NOT coalesce(p.run_after_failed_parents, false) AS cancel
        FROM orphaned AS o LEFT JOIN mq_payloads AS p ON p.id = o.child_id
    )
    SELECT coalesce(array_agg(child_id) FILTER (WHERE cancel), '{}'),
        coalesce(array_agg(child_id) FILTER (WHERE NOT cancel), '{}')
    INTO v_cancel, v_release
    FROM judged;
    PERFORM mq_cancel_now(v_cancel, 'a parent job was cancelled');
    UPDATE mq_jobs AS c
    SET state = mq_runnable_state(c.id, c.channel_name, c.channel_args, c.ord_seq, c.attempt_at)
    WHERE c.id = ANY(v_release) AND c.state = 'w'
      AND NOT EXISTS (SELECT 1 FROM mq_deps AS d WHERE d.child_id = c.id);
    GET DIAGNOSTICS v_released = ROW_COUNT;
    IF v_released > 0 THEN
        PERFORM mq_wake(ARRAY(SELECT channel_name FROM mq_jobs WHERE id = ANY(v_release)), 's');
    END IF;
    RETURN v_released + cardinality(v_cancel);
END;
$$;

-- Failed jobs run again with a fresh set of attempts. Returns the ids retried.
CREATE FUNCTION mq_retry(p_ids uuid[]) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_channels text[];
    v_ids uuid[];
BEGIN
    WITH retried AS (
        UPDATE mq_jobs AS j
        SET attempts = 0,
            attempt_at = now(),
            state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, now())
        WHERE j.id = ANY(p_ids) AND j.state = 'f'
        RETURNING j.id, j.channel_name
    )
    SELECT array_agg(id), array_agg(channel_name) INTO v_ids, v_channels FROM retried;
    PERFORM mq_wake(coalesce(v_channels, '{}'));
    RETURN QUERY SELECT unnest(coalesce(v_ids, '{}'));
END;
$$;

-- Moves waiting (not running) jobs: a new run time, priority or number of retries left.
CREATE FUNCTION mq_reschedule(
    p_ids uuid[], p_run_at timestamptz, p_priority integer, p_retries integer
) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_channels text[];
    v_ids uuid[];
BEGIN
    WITH moved AS (
        UPDATE mq_jobs AS j
        SET attempt_at = coalesce(p_run_at, j.attempt_at),
            priority = coalesce(p_priority, j.priority),
            max_attempts = coalesce(j.attempts + p_retries + 1, j.max_attempts),
            state = CASE
                WHEN j.state IN ('r', 's')
                THEN mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq,
                                       coalesce(p_run_at, j.attempt_at))
                ELSE j.state
            END
        WHERE j.id = ANY(p_ids) AND j.state NOT IN ('l', 'f')
        RETURNING j.id, j.channel_name
    )
    SELECT array_agg(id), array_agg(channel_name) INTO v_ids, v_channels FROM moved;
    PERFORM mq_wake(coalesce(v_channels, '{}'), 's');
    RETURN QUERY SELECT unnest(coalesce(v_ids, '{}'));
END;
$$;

DROP FUNCTION mq_spawn(
    text, json, text, text, interval, integer, interval, boolean, integer, bytea, interval,
    interval
);
DROP FUNCTION mq_insert(
    uuid[], text[], text[], text[], text[], bytea[], interval[], integer[], interval[],
    interval[], boolean[], interval[], integer[]
);

-- Inserts jobs; the arrays are parallel, one element per job (dependencies are edges: the
-- position of the child and the id of a parent). Returns, for each position, the id of the job
-- that stands for it: the new job, or an existing one for job keys (dedupe, replace) and
-- throttle windows. Runs in the caller's transaction.
--
-- Ordered jobs: see version 1. Job keys are unique among unfinished jobs; modes:
--   replace          update the waiting job with the key (payload, run time, options)
--   preserve_run_at  the same, keeping its run time
--   unsafe_dedupe    leave the existing job untouched
-- A running job with the key is never changed: it gives up the key and a new job is spawned.
-- A throttle (with a key) allows one job per key per window, finished jobs included.
CREATE FUNCTION mq_insert(
    p_ids uuid[],
    p_names text[],
    p_channel_names text[],
    p_channel_args text[],
    p_payload_json text[],
    p_payload_bytes bytea[],
    p_delays interval[],
    p_run_ats timestamptz[],
    p_max_attempts integer[],
    p_retry_backoffs interval[],
    p_leases interval[],
    p_ordered boolean[],
    p_commit_intervals interval[],
    p_priorities integer[],
    p_job_keys text[],
    p_job_key_modes text[],
    p_throttles interval[],
    p_retain_fors interval[],
    p_dead_letters text[],
    p_dead_letter_channels text[],
    p_run_after_failed_parents boolean[],
    p_dep_positions integer[],
    p_dep_parents uuid[],
    p_headers jsonb[]
) RETURNS TABLE (pos integer, id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    v_n integer := cardinality(p_ids);
    v_ids uuid[] := p_ids;
    v_new boolean[] := array_fill(true, ARRAY[v_n]);
    v_fresh_snapshot boolean := current_setting('transaction_isolation') = 'read committed';
    v_seqs bigint[];
    v_existing record;
    v_window_job uuid;
    i integer;
BEGIN
    IF true = ANY(p_ordered) THEN
        PERFORM pg_advisory_xact_lock(1836146531, k.key)
        FROM (
            SELECT DISTINCT mq_chain_lock_key(u.cn, u.ca) AS key
            FROM unnest(p_channel_names, p_channel_args, p_ordered) AS u(cn, ca, o)
            WHERE u.o
        ) AS k
        ORDER BY k.key;
        v_seqs := ARRAY(SELECT nextval('mq_ord_seq') FROM generate_series(1, v_n));
    END IF;

    -- keyed and throttled jobs, one at a time (unkeyed jobs are inserted in bulk below); a
    -- keyed job is complete (payload included) when its turn ends, so a later job of the same
    -- call with the same key finds it
    FOR i IN 1 .. v_n LOOP
        CONTINUE WHEN p_job_keys[i] IS NULL;
        v_new[i] := false;
        IF p_throttles[i] IS NOT NULL THEN
            INSERT INTO mq_throttle AS t (job_key, job_id, until)
            VALUES (p_job_keys[i], p_ids[i], now() + p_throttles[i])
            ON CONFLICT (job_key) DO UPDATE
                SET job_id = excluded.job_id, until = excluded.until
                WHERE t.until <= now();
            IF NOT FOUND THEN
                SELECT t.job_id INTO STRICT v_window_job FROM mq_throttle AS t
                WHERE t.job_key = p_job_keys[i];
                v_ids[i] := v_window_job;
                CONTINUE;
            END IF;
        END IF;
        LOOP
            SELECT j.id, j.state INTO v_existing FROM mq_jobs AS j
            WHERE j.job_key = p_job_keys[i] FOR UPDATE;
            IF NOT FOUND THEN
                INSERT INTO mq_jobs AS j (
                    id, channel_name, channel_args, state, priority, attempt_at, max_attempts,
                    lease, ord_seq, commit_deadline, job_key
                )
                VALUES (
                    p_ids[i], p_channel_names[i], p_channel_args[i],
                    CASE WHEN p_commit_intervals[i] IS NULL THEN 'r' ELSE 'u' END,
                    p_priorities[i],
                    coalesce(p_run_ats[i], now() + p_delays[i]), p_max_attempts[i],
                    p_leases[i], CASE WHEN p_ordered[i] THEN v_seqs[i] END,
                    now() + p_commit_intervals[i], p_job_keys[i]
                )
                ON CONFLICT (job_key) WHERE job_key IS NOT NULL DO NOTHING;
                IF FOUND THEN
                    v_new[i] := true;  -- its state is set with the others, below
                    v_ids[i] := p_ids[i];
                    INSERT INTO mq_payloads (
                        id, name, payload_json, payload_bytes, retry_backoff, retain_for,
                        dead_letter, dead_letter_channel, run_after_failed_parents, headers
                    )
                    VALUES (
                        p_ids[i], p_names[i], p_payload_json[i]::json, p_payload_bytes[i],
                        p_retry_backoffs[i], p_retain_fors[i], p_dead_letters[i],
                        p_dead_letter_channels[i], p_run_after_failed_parents[i], p_headers[i]
                    );
                    EXIT;
                END IF;
                CONTINUE;  -- a concurrent spawn took the key first: look again
            END IF;
            v_ids[i] := v_existing.id;
            EXIT WHEN p_job_key_modes[i] = 'unsafe_dedupe';
            IF v_existing.state IN ('l', 'u') THEN
                -- never change a job under its runner, nor one its spawner has yet to commit:
                -- it gives the key up and this spawn makes a new job
                UPDATE mq_jobs SET job_key = NULL WHERE mq_jobs.id = v_existing.id;
                CONTINUE;
            END IF;
            UPDATE mq_jobs AS j
            SET priority = p_priorities[i],
                max_attempts = CASE WHEN j.state = 'f' THEN 0 ELSE j.attempts END
                    + p_max_attempts[i],
                lease = p_leases[i],
                attempts = CASE WHEN j.state = 'f' THEN 0 ELSE j.attempts END,
                attempt_at = CASE
                    WHEN p_job_key_modes[i] = 'preserve_run_at' AND j.state <> 'f'
                    THEN j.attempt_at
                    ELSE coalesce(p_run_ats[i], now() + p_delays[i])
                END
            WHERE j.id = v_existing.id;
            UPDATE mq_jobs AS j
            SET state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq,
                                          j.attempt_at)
            WHERE j.id = v_existing.id AND j.state IN ('r', 's', 'f');
            UPDATE mq_payloads AS p
            SET name = p_names[i],
                headers = p_headers[i],
                payload_json = p_payload_json[i]::json,
                payload_bytes = p_payload_bytes[i],
                retry_backoff = p_retry_backoffs[i],
                retain_for = p_retain_fors[i],
                dead_letter = p_dead_letters[i],
                dead_letter_channel = p_dead_letter_channels[i]
            WHERE p.id = v_existing.id;
            EXIT;
        END LOOP;
        IF p_throttles[i] IS NOT NULL THEN
            -- the window stands for the job that does this work: new, or replaced
            UPDATE mq_throttle SET job_id = v_ids[i] WHERE job_key = p_job_keys[i];
        END IF;
    END LOOP;

    INSERT INTO mq_payloads (
        id, name, payload_json, payload_bytes, retry_backoff, retain_for, dead_letter,
        dead_letter_channel, run_after_failed_parents, headers
    )
    SELECT v_ids[u.pos], u.name, u.pj::json, u.pb, u.rb, u.rf, u.dl, u.dlc, u.rafp, u.h
    FROM unnest(
        p_names, p_payload_json, p_payload_bytes, p_retry_backoffs, p_retain_fors,
        p_dead_letters, p_dead_letter_channels, p_run_after_failed_parents, p_headers,
        p_job_keys
    ) WITH ORDINALITY AS u(name, pj, pb, rb, rf, dl, dlc, rafp, h, k, pos)
    WHERE u.k IS NULL;

    -- states: uncommitted, blocked behind an earlier ordered job, scheduled, or ready
    INSERT INTO mq_jobs (
        id, channel_name, channel_args, state, priority, attempt_at, max_attempts, lease,
        ord_seq, commit_deadline
    )
    SELECT
        u.id, u.cn, u.ca,
        CASE
            WHEN u.ci IS NOT NULL THEN 'u'
            WHEN u.o AND (
                u.chain_rank > 1
                OR NOT v_fresh_snapshot
                OR EXISTS (
                    SELECT 1 FROM mq_jobs AS e
                    WHERE e.channel_name = u.cn AND e.channel_args = u.ca
                      AND e.ord_seq IS NOT NULL
                )
            ) THEN 'b'
            WHEN coalesce(u.run_at, now() + u.delay) > now() THEN 's'
            ELSE 'r'
        END,
        u.prio,
        coalesce(u.run_at, now() + u.delay),
        u.ma,
        u.lease,
        CASE WHEN u.o THEN v_seqs[u.pos] END,
        now() + u.ci
    FROM (
        SELECT x.*, row_number() OVER (PARTITION BY x.cn, x.ca, x.o ORDER BY x.pos) AS chain_rank
        FROM unnest(
            p_ids, p_channel_names, p_channel_args, p_delays, p_run_ats, p_max_attempts,
            p_leases, p_ordered, p_commit_intervals, p_priorities, p_job_keys
        ) WITH ORDINALITY AS x(id, cn, ca, delay, run_at, ma, lease, o, ci, prio, k, pos)
    ) AS u
    WHERE u.k IS NULL;

    -- keyed new jobs were inserted above with a provisional state
    UPDATE mq_jobs AS j
    SET state = CASE
            WHEN j.commit_deadline IS NOT NULL THEN 'u'
            WHEN j.ord_seq IS NOT NULL AND NOT v_fresh_snapshot THEN 'b'
            ELSE mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, j.attempt_at)
        END
    FROM unnest(p_job_keys, v_new, v_ids) AS u(k, new, id)
    WHERE u.k IS NOT NULL AND u.new AND j.id = u.id;

    -- continuations: a parent still in the queue must finish first; a parent that failed or
    -- was cancelled cancels the child (unless it runs after failed parents); a parent that is
    -- gone otherwise completed
    IF cardinality(p_dep_positions) > 0 THEN
        INSERT INTO mq_deps (parent_id, child_id)
        SELECT DISTINCT d.parent, v_ids[d.pos]
        FROM unnest(p_dep_positions, p_dep_parents) AS d(pos, parent)
        JOIN mq_jobs AS parent ON parent.id = d.parent AND parent.state <> 'f'
        WHERE v_new[d.pos]
        ON CONFLICT DO NOTHING;
        UPDATE mq_jobs AS parent SET has_children = true
        FROM mq_deps AS d
        WHERE d.parent_id = parent.id AND NOT parent.has_children
          AND d.child_id = ANY(v_ids);
        UPDATE mq_jobs AS child SET state = 'w'
        WHERE child.id = ANY(v_ids) AND child.state IN ('r', 's', 'b')
          AND EXISTS (SELECT 1 FROM mq_deps AS d WHERE d.child_id = child.id);
        PERFORM mq_cancel_now(
            ARRAY(
                SELECT v_ids[d.pos]
                FROM unnest(p_dep_positions, p_dep_parents) AS d(pos, parent)
                WHERE v_new[d.pos] AND NOT p_run_after_failed_parents[d.pos]
                  AND (EXISTS (SELECT 1 FROM mq_jobs AS f WHERE f.id = d.parent AND f.state = 'f')
                       OR EXISTS (SELECT 1 FROM mq_history AS h
                                  WHERE h.id = d.parent AND h.state = 'cancelled'))
            ),
            'a parent job failed or was cancelled before this job was spawned'
        );
    END IF;

    PERFORM mq_wake(ARRAY(
        SELECT u.cn FROM unnest(p_channel_names, p_commit_intervals, p_delays, p_run_ats)
            AS u(cn, ci, d, ra)
        WHERE u.ci IS NULL AND coalesce(u.ra, now() + u.d) <= now()
    ));
    PERFORM mq_wake(ARRAY(
        SELECT u.cn FROM unnest(p_channel_names, p_commit_intervals, p_delays, p_run_ats)
            AS u(cn, ci, d, ra)
        WHERE u.ci IS NULL AND coalesce(u.ra, now() + u.d) > now()
    ), 's');

    RETURN QUERY SELECT u.pos::integer, u.id FROM unnest(v_ids) WITH ORDINALITY AS u(id, pos);
END;
$$;

-- Spawns one job from SQL (a trigger, a script, another language) and returns its id.
-- Example: SELECT mq_spawn('send_email', '{"to": "a@example.com"}', channel_name => 'emails');
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
    headers jsonb DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid;
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
    RETURN v_id;
END;
$$;

-- Grants a role what the library needs at run time, and nothing more: to spawn, run and manage
-- jobs it may read and write the mq_ tables and use the chain sequence (functions are executable
-- by everyone by default). Creating and changing the schema (migrate) stays with the owner.
-- Run it again after a migration that adds tables. Example: SELECT mq_grant_usage('app');
CREATE FUNCTION mq_grant_usage(p_role text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_name text;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), p_role);
    FOR v_name IN
        SELECT c.relname FROM pg_class AS c
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p') AND c.relname LIKE 'mq\_%'
          AND c.relname <> 'mq_migrations'
    LOOP
        EXECUTE format(
            'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %I.%I TO %I',
            current_schema(), v_name, p_role
        );
    END LOOP;
    EXECUTE format(
        'GRANT USAGE, SELECT, UPDATE ON SEQUENCE %I.mq_ord_seq TO %I', current_schema(), p_role
    );
    -- the migration record is the owner's: readable (to check the schema version), not writable
    IF to_regclass('mq_migrations') IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON TABLE %I.mq_migrations TO %I', current_schema(), p_role);
    END IF;
END;
$$;
