-- sqlxmq_py schema, version 3: what adversarial probes broke, fixed where it happens.
--
-- - Leases bound the payload bytes they take: mq_jobs.payload_size holds each job's payload
--   bytes, so that the lease can stop at a budget without reading payloads it does not take.
-- - Replacing a keyed job deletes its row and writes it again under the same id, so that a
--   lease whose snapshot predates the replacement finds the old row gone and skips it, instead
--   of taking the job with the payload the replacement overwrote. The new spawn's parents join
--   the job's parents.
-- - Chains and continuations are resolved by the transactions that change them, not by a later
--   sweep: deleters of an ordered chain take its head lock, a finishing parent locks its
--   children before it counts what they still wait for, and a spawn re-checks parents that
--   finished while it ran.
-- - A two-phase job discarded at its deadline is cancelled (kept as cancelled history, its
--   continuations cancelled), never taken for completed.
-- - The runner's statements are functions: plans pinned to index scans whatever the statistics
--   say (SET clauses, and lookups written as parameterised index probes), cached by PL/pgSQL in
--   each server session (nothing depends on client-side prepared statements, so a transaction
--   pooler is safe), each one statement that holds its locks only while it runs on the server.

ALTER TABLE mq_jobs
    ADD COLUMN payload_size integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT mq_jobs_payload_size_check CHECK (payload_size >= 0);

-- Names and keys are index keys, and a B-tree entry must fit in a third of a page: a spawn that
-- passes these bounds fails naming them (the Python API refuses such values before, with a
-- ConfigurationError). NOT VALID: rows written before are not re-read.
ALTER TABLE mq_jobs
    ADD CONSTRAINT mq_jobs_channel_name_length CHECK (octet_length(channel_name) <= 1000)
        NOT VALID,
    ADD CONSTRAINT mq_jobs_channel_args_length CHECK (octet_length(channel_args) <= 1000)
        NOT VALID,
    ADD CONSTRAINT mq_jobs_job_key_length CHECK (octet_length(job_key) <= 2000) NOT VALID;

-- A new state: 'n' parked. A runner that leases a job whose name it does not know (a rolling
-- deploy where producers spawn a new job before the runners that know it start; several
-- services sharing a database) does not spend the job's attempts: it parks the job, which then
-- waits, untouched, until a runner that knows its name unparks it (mq_unpark).
ALTER TABLE mq_jobs DROP CONSTRAINT mq_jobs_state_check;
ALTER TABLE mq_jobs
    ADD CONSTRAINT mq_jobs_state_check CHECK (state IN ('r', 's', 'l', 'b', 'u', 'f', 'w', 'n'));
CREATE INDEX mq_jobs_parked_idx ON mq_jobs (id) WHERE state = 'n';

-- Every attempt's error, not only the last (up to the last 25, each cut to 4,000 characters;
-- last_error keeps the whole last one): on the job, and on its kept history.
ALTER TABLE mq_payloads ADD COLUMN errors jsonb;
ALTER TABLE mq_history ADD COLUMN errors jsonb;

-- p_errors with one more attempt's error appended, keeping the last 25.
CREATE FUNCTION mq_add_error(p_errors jsonb, p_attempt integer, p_error text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_agg(x.e ORDER BY x.n)
    FROM (
        SELECT a.e, a.n
        FROM jsonb_array_elements(
            coalesce(p_errors, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
                'attempt', p_attempt, 'at', now(), 'error', left(p_error, 4000)
            ))
        ) WITH ORDINALITY AS a(e, n)
        ORDER BY a.n DESC
        LIMIT 25
    ) AS x
$$;

-- See version 2; the attempts' errors are kept too.
CREATE OR REPLACE FUNCTION mq_keep(
    p_ids uuid[], p_state text, p_error text, p_default_retain interval,
    p_error_ids uuid[] DEFAULT NULL, p_errors text[] DEFAULT NULL
) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO mq_history (
        id, name, channel_name, channel_args, state, attempts, max_attempts, priority, job_key,
        payload_json, payload_bytes, result, last_error, headers, created_at, expires_at, errors
    )
    SELECT j.id, p.name, j.channel_name, j.channel_args, p_state, j.attempts, j.max_attempts,
        j.priority, j.job_key, p.payload_json, p.payload_bytes, NULL,
        coalesce(e.error, p_error, p.last_error), p.headers, p.created_at,
        now() + coalesce(p.retain_for, p_default_retain), p.errors
    FROM mq_jobs AS j
    JOIN mq_payloads AS p ON p.id = j.id
    LEFT JOIN unnest(p_error_ids, p_errors) AS e(id, error) ON e.id = j.id
    WHERE j.id = ANY(p_ids) AND coalesce(p.retain_for, p_default_retain) > interval '0'
    ON CONFLICT (id) DO NOTHING
$$;

-- The bytes of a job's payloads, as leases count them.
CREATE FUNCTION mq_payload_size(p_json text, p_bytes bytea) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (coalesce(octet_length(p_json), 0) + coalesce(octet_length(p_bytes), 0))::integer
$$;

-- The lock that every deleter of an ordered chain's jobs holds: explicit deleters (cancel,
-- discard) take it before they lock rows, the chain trigger below after its row is gone. Of
-- two concurrent deletions in one chain, the second to get the lock then looks at the chain in
-- a fresh snapshot and sees the first. Spawns use another lock (1836146531), so a spawning
-- transaction never holds up completions.
CREATE FUNCTION mq_lock_chains(p_ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1836146534, k.key)
    FROM (
        SELECT DISTINCT mq_chain_lock_key(j.channel_name, j.channel_args) AS key
        FROM mq_jobs AS j
        WHERE j.id = ANY(p_ids) AND j.ord_seq IS NOT NULL
    ) AS k
    ORDER BY k.key;
END;
$$;

-- The next head is locked without waiting: a transaction holding its row is either deleting it
-- without the head lock (clear, purge, a DELETE by hand), and its own trigger, waiting for
-- the head lock, looks at the chain once this one commits; or changing it (a reschedule, a
-- key replacement), and the maintenance repair makes it runnable. Waiting instead would hold
-- up a runner's completions behind an application's transaction, or deadlock.
CREATE OR REPLACE FUNCTION mq_jobs_unblock_next() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_head uuid;
BEGIN
    IF current_setting('mq.replacing', true) = 'on' THEN
        RETURN NULL;  -- the job is written again under its id in this transaction
    END IF;
    PERFORM pg_advisory_xact_lock(
        1836146534, mq_chain_lock_key(OLD.channel_name, OLD.channel_args)
    );
    SELECT h.id INTO v_head FROM mq_jobs AS h
    WHERE h.channel_name = OLD.channel_name
      AND h.channel_args = OLD.channel_args
      AND h.ord_seq IS NOT NULL
    ORDER BY h.ord_seq
    LIMIT 1;
    UPDATE mq_jobs AS j
    SET state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, j.attempt_at)
    WHERE j.id = (
            SELECT l.id FROM mq_jobs AS l
            WHERE l.id = v_head AND l.state = 'b'
            FOR UPDATE SKIP LOCKED
        );
    IF FOUND THEN
        PERFORM mq_wake(ARRAY[OLD.channel_name], 's');
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION mq_jobs_parent_gone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('mq.replacing', true) = 'on' THEN
        RETURN NULL;
    END IF;
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

-- Children whose parent left or failed: drop the dependency, and start those with no
-- dependency left. The children are locked first: a concurrent release by another of their
-- parents waits, and the count of what they still wait for (a fresh snapshot per statement)
-- then sees that parent's dependency gone.
CREATE OR REPLACE FUNCTION mq_release_children(p_parent uuid, p_children uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(cardinality(p_children), 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM mq_jobs AS c WHERE c.id = ANY(p_children) ORDER BY c.id FOR UPDATE;
    DELETE FROM mq_deps WHERE parent_id = p_parent AND child_id = ANY(p_children);
    UPDATE mq_jobs AS c
    SET state = mq_runnable_state(c.id, c.channel_name, c.channel_args, c.ord_seq, c.attempt_at)
    WHERE c.id = ANY(p_children) AND c.state = 'w';
    IF FOUND THEN
        PERFORM mq_wake(ARRAY(SELECT channel_name FROM mq_jobs WHERE id = ANY(p_children)), 's');
    END IF;
END;
$$;

-- See version 2; ordered jobs now take their chains' locks before their rows.
CREATE OR REPLACE FUNCTION mq_cancel_now(
    p_ids uuid[], p_reason text, p_tokens uuid[] DEFAULT NULL, p_expired boolean DEFAULT false,
    p_reasons text[] DEFAULT NULL
)
RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_previous text := current_setting('mq.cancelling', true);
    v_ids uuid[];
BEGIN
    IF coalesce(cardinality(p_ids), 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM mq_lock_chains(p_ids);
    v_ids := ARRAY(
        SELECT j.id FROM mq_jobs AS j
        WHERE j.id = ANY(p_ids)
          AND (j.state <> 'l'
               OR j.lease_token = ANY(p_tokens)
               OR (p_expired AND j.attempt_at <= now()))
          AND (p_tokens IS NULL OR j.state = 'l')
        ORDER BY j.id
        FOR UPDATE
    );
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM mq_keep(v_ids, 'cancelled', p_reason, interval '7 days', p_ids, p_reasons);
    PERFORM pg_notify('mq_done', p.id::text) FROM mq_payloads AS p
    WHERE p.id = ANY(v_ids) AND p.notify_done;
    DELETE FROM mq_deps WHERE child_id = ANY(v_ids);
    -- the triggers see this setting: the jobs leave as cancelled, not completed
    PERFORM set_config('mq.cancelling', 'on', true);
    DELETE FROM mq_jobs WHERE id = ANY(v_ids);
    PERFORM set_config('mq.cancelling', coalesce(v_previous, ''), true);
    DELETE FROM mq_payloads WHERE id = ANY(v_ids);
    RETURN QUERY SELECT unnest(v_ids);
END;
$$;

-- Continuations whose parent finished without resolving them: a spawn that raced with the
-- parent's completion, failure or cancellation, which could not see the new child. A parent
-- failed for good, or gone as cancelled, cancels them (unless they run after failed parents);
-- a parent gone otherwise completed, and releases them. With p_children, only those children
-- are looked at (a spawn checking its own, in its transaction); without, all (maintenance).
-- Returns how many children were resolved.
CREATE FUNCTION mq_resolve_deps(p_children uuid[] DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_cancel uuid[];
    v_release uuid[];
    v_released integer;
BEGIN
    WITH settled AS (
        DELETE FROM mq_deps AS d
        WHERE (p_children IS NULL OR d.child_id = ANY(p_children))
          AND NOT EXISTS (
              SELECT 1 FROM mq_jobs AS p WHERE p.id = d.parent_id AND p.state <> 'f'
          )
        RETURNING d.parent_id, d.child_id
    ), judged AS (
        SELECT s.child_id,
            (EXISTS (SELECT 1 FROM mq_jobs AS f WHERE f.id = s.parent_id)
             OR EXISTS (SELECT 1 FROM mq_history AS h
                        WHERE h.id = s.parent_id AND h.state = 'cancelled'))
            AND NOT coalesce(p.run_after_failed_parents, false) AS cancel
        FROM settled AS s LEFT JOIN mq_payloads AS p ON p.id = s.child_id
    )
    SELECT coalesce(array_agg(DISTINCT child_id) FILTER (WHERE cancel), '{}'),
        coalesce(array_agg(DISTINCT child_id) FILTER (WHERE NOT cancel), '{}')
    INTO v_cancel, v_release
    FROM judged;
    PERFORM mq_cancel_now(v_cancel, 'a parent job failed or was cancelled');
    v_release := ARRAY(SELECT unnest(v_release) EXCEPT SELECT unnest(v_cancel));
    IF cardinality(v_release) = 0 THEN
        RETURN cardinality(v_cancel);
    END IF;
    PERFORM 1 FROM mq_jobs AS c WHERE c.id = ANY(v_release) ORDER BY c.id FOR UPDATE;
    UPDATE mq_jobs AS c
    SET state = mq_runnable_state(c.id, c.channel_name, c.channel_args, c.ord_seq, c.attempt_at)
    WHERE c.id = ANY(v_release) AND c.state = 'w';
    GET DIAGNOSTICS v_released = ROW_COUNT;
    IF v_released > 0 THEN
        PERFORM mq_wake(ARRAY(SELECT channel_name FROM mq_jobs WHERE id = ANY(v_release)), 's');
    END IF;
    RETURN v_released + cardinality(v_cancel);
END;
$$;

DROP FUNCTION mq_sweep_waiting();

-- Inserts jobs; see version 2 for the arrays and the job key modes. What changed:
-- - a replaced job is deleted and written again under its id (see the top of this file), and
--   the parents given with the replacing spawn join its own;
-- - parents are locked (FOR KEY SHARE) while their children are recorded, so a parent that
--   finishes concurrently either waits for this transaction and then sees the children, or
--   finished first and is found gone by the re-check that follows;
-- - every job records its payload size.
CREATE OR REPLACE FUNCTION mq_insert(
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
    v_replaced boolean[] := array_fill(false, ARRAY[v_n]);
    v_fresh_snapshot boolean := current_setting('transaction_isolation') = 'read committed';
    v_seqs bigint[];
    v_old mq_jobs%ROWTYPE;
    v_window_job uuid;
    v_at timestamptz;
    v_children uuid[];
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
            SELECT j.* INTO v_old FROM mq_jobs AS j WHERE j.job_key = p_job_keys[i] FOR UPDATE;
            IF NOT FOUND THEN
                INSERT INTO mq_jobs AS j (
                    id, channel_name, channel_args, state, priority, attempt_at, max_attempts,
                    lease, ord_seq, commit_deadline, job_key, payload_size
                )
                VALUES (
                    p_ids[i], p_channel_names[i], p_channel_args[i],
                    CASE WHEN p_commit_intervals[i] IS NULL THEN 'r' ELSE 'u' END,
                    p_priorities[i],
                    coalesce(p_run_ats[i], now() + p_delays[i]), p_max_attempts[i],
                    p_leases[i], CASE WHEN p_ordered[i] THEN v_seqs[i] END,
                    now() + p_commit_intervals[i], p_job_keys[i],
                    mq_payload_size(p_payload_json[i], p_payload_bytes[i])
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
            v_ids[i] := v_old.id;
            EXIT WHEN p_job_key_modes[i] = 'unsafe_dedupe';
            IF v_old.state IN ('l', 'u') THEN
                -- never change a job under its runner, nor one its spawner has yet to commit:
                -- it gives the key up and this spawn makes a new job
                UPDATE mq_jobs SET job_key = NULL WHERE mq_jobs.id = v_old.id;
                CONTINUE;
            END IF;
            v_replaced[i] := true;
            v_at := CASE
                WHEN p_job_key_modes[i] = 'preserve_run_at' AND v_old.state <> 'f'
                THEN v_old.attempt_at
                ELSE coalesce(p_run_ats[i], now() + p_delays[i])
            END;
            PERFORM set_config('mq.replacing', 'on', true);
            DELETE FROM mq_jobs AS j WHERE j.id = v_old.id;
            PERFORM set_config('mq.replacing', '', true);
            INSERT INTO mq_jobs (
                id, channel_name, channel_args, state, priority, attempt_at, attempts,
                max_attempts, lease, ord_seq, job_key, has_children, payload_size
            )
            VALUES (
                v_old.id, v_old.channel_name, v_old.channel_args,
                CASE
                    WHEN v_old.state IN ('r', 's', 'f')
                    THEN mq_runnable_state(
                        v_old.id, v_old.channel_name, v_old.channel_args, v_old.ord_seq, v_at
                    )
                    ELSE v_old.state
                END,
                p_priorities[i], v_at,
                CASE WHEN v_old.state = 'f' THEN 0 ELSE v_old.attempts END,
                CASE WHEN v_old.state = 'f' THEN 0 ELSE v_old.attempts END + p_max_attempts[i],
                p_leases[i], v_old.ord_seq, p_job_keys[i], v_old.has_children,
                mq_payload_size(p_payload_json[i], p_payload_bytes[i])
            );
            UPDATE mq_payloads AS p
            SET name = p_names[i],
                headers = p_headers[i],
                payload_json = p_payload_json[i]::json,
                payload_bytes = p_payload_bytes[i],
                retry_backoff = p_retry_backoffs[i],
                retain_for = p_retain_fors[i],
                dead_letter = p_dead_letters[i],
                dead_letter_channel = p_dead_letter_channels[i],
                run_after_failed_parents = p_run_after_failed_parents[i]
            WHERE p.id = v_old.id;
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
        ord_seq, commit_deadline, payload_size
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
        now() + u.ci,
        mq_payload_size(u.pj, u.pb)
    FROM (
        SELECT x.*, row_number() OVER (PARTITION BY x.cn, x.ca, x.o ORDER BY x.pos) AS chain_rank
        FROM unnest(
            p_ids, p_channel_names, p_channel_args, p_delays, p_run_ats, p_max_attempts,
            p_leases, p_ordered, p_commit_intervals, p_priorities, p_job_keys, p_payload_json,
            p_payload_bytes
        ) WITH ORDINALITY AS x(id, cn, ca, delay, run_at, ma, lease, o, ci, prio, k, pj, pb, pos)
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
        -- parents that finish concurrently wait for this transaction (and then see the
        -- children) or finished first (and the re-check below finds them gone)
        PERFORM 1 FROM mq_jobs AS parent
        WHERE parent.id = ANY(p_dep_parents)
        ORDER BY parent.id
        FOR KEY SHARE;
        INSERT INTO mq_deps (parent_id, child_id)
        SELECT DISTINCT d.parent, v_ids[d.pos]
        FROM unnest(p_dep_positions, p_dep_parents) AS d(pos, parent)
        JOIN mq_jobs AS parent ON parent.id = d.parent AND parent.state <> 'f'
        WHERE v_new[d.pos] OR v_replaced[d.pos]
        ON CONFLICT DO NOTHING;
        UPDATE mq_jobs AS parent SET has_children = true
        FROM mq_deps AS d
        WHERE d.parent_id = parent.id AND NOT parent.has_children
          AND d.child_id = ANY(v_ids);
        v_children := ARRAY(
            SELECT DISTINCT v_ids[d.pos] FROM unnest(p_dep_positions) AS d(pos)
            WHERE v_new[d.pos] OR v_replaced[d.pos]
        );
        UPDATE mq_jobs AS child SET state = 'w'
        WHERE child.id = ANY(v_children) AND child.state IN ('r', 's', 'b')
          AND EXISTS (SELECT 1 FROM mq_deps AS d WHERE d.child_id = child.id);
        PERFORM mq_cancel_now(
            ARRAY(
                SELECT v_ids[d.pos]
                FROM unnest(p_dep_positions, p_dep_parents) AS d(pos, parent)
                WHERE (v_new[d.pos] OR v_replaced[d.pos])
                  AND NOT p_run_after_failed_parents[d.pos]
                  AND (EXISTS (SELECT 1 FROM mq_jobs AS f WHERE f.id = d.parent AND f.state = 'f')
                       OR EXISTS (SELECT 1 FROM mq_history AS h
                                  WHERE h.id = d.parent AND h.state = 'cancelled'))
            ),
            'a parent job failed or was cancelled before this job was spawned'
        );
        PERFORM mq_resolve_deps(v_children);
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

-- The runner's statements. Each is one call, and each pins its plans: sequential and bitmap
-- scans are disabled, so that statistics saying the table is empty (autovacuum records that
-- after a held snapshot is released) cannot turn an index probe into a scan of every row; rows
-- are looked up by key (= ANY, or a parameterised lateral probe fenced with OFFSET 0), never
-- joined where the planner could choose a full index scan with a join filter; and PL/pgSQL
-- keeps one generic plan per session, so no statement depends on a client-side prepared one.
-- JIT is off: a disabled scan's cost counts as 10^10, which would otherwise make PostgreSQL
-- compile every statement (hundreds of milliseconds each) where a tiny table has no index.

-- Leases up to p_limit ready jobs for one runner, as version 2's lease statement did (fairness:
-- the groups with ready jobs are visited round-robin from the runner's cursor, each giving at
-- most its share, best priority first), and stops once the jobs taken hold p_max_bytes of
-- payload (the first job is always taken). Channels in p_excluded (those with a concurrency
-- limit, leased with mq_lease_limited) are stepped over. Unless p_durable, the lease's
-- transaction skips the WAL flush: a lease that a database crash forgets only makes the job
-- ready again, and the stale runner is fenced by its token.
CREATE FUNCTION mq_lease(
    p_channel_names text[],
    p_cursor_name text,
    p_cursor_args text,
    p_limit integer,
    p_default_lease interval,
    p_excluded text[],
    p_durable boolean,
    p_max_bytes bigint
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
            attempt_at = now() + coalesce(j.lease, p_default_lease)
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

-- Leases from one channel with a concurrency limit: the limit's row lock serialises the
-- runners (one that finds it taken skips its turn rather than wait), and the running jobs are
-- counted under it. One statement, so that the lock is never held across a client's pause.
CREATE FUNCTION mq_lease_limited(
    p_channel_name text,
    p_cursor_name text,
    p_cursor_args text,
    p_limit integer,
    p_default_lease interval,
    p_durable boolean,
    p_max_bytes bigint
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
        p_default_lease, '{}', p_durable, p_max_bytes
    );
END;
$$;

-- Completes jobs whose lease is still held under the given tokens: deletes them, keeps those
-- that ask to be kept (retain_for, or p_default_retain) in mq_history with their result, and
-- tells callers of wait_for_result. Returns each job with 'completed' or, when p_wait is
-- false, 'busy' for a job another transaction has locked (the runner retries it, rather than
-- wait for a spawner of its children to commit); a job not returned has lost its lease.
CREATE FUNCTION mq_complete(
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
    IF NOT p_wait THEN
        RETURN QUERY
        SELECT j.id, 'busy'::text FROM mq_jobs AS j
        JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
        WHERE j.id = ANY(p_ids) AND j.lease_token = t.token AND NOT (j.id = ANY(v_ids));
    END IF;
END;
$$;

-- Records failed attempts. A job with attempts left waits its delay (its backoff) or, with no
-- delay, is ready at once; a job without attempts left becomes failed and is kept. A job that
-- was asked to stop is cancelled instead ('c'). Returns each job with its new state ('r', 's',
-- 'f', 'c') or, when p_wait is false, 'busy' (see mq_complete); a job not returned has lost
-- its lease.
CREATE FUNCTION mq_fail(
    p_ids uuid[], p_tokens uuid[], p_delays interval[], p_errors text[],
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
    v_cancel uuid[];
    v_tokens uuid[];
    v_reasons text[];
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
    SELECT coalesce(array_agg(j.id ORDER BY j.id), '{}'),
        coalesce(array_agg(j.lease_token ORDER BY j.id), '{}'),
        coalesce(array_agg('cancelled while running: ' || t.error ORDER BY j.id), '{}')
    INTO v_cancel, v_tokens, v_reasons
    FROM mq_jobs AS j
    JOIN unnest(p_ids, p_errors) AS t(id, error) ON t.id = j.id
    WHERE j.id = ANY(v_ids) AND j.cancel_requested;
    RETURN QUERY
    WITH t AS (
        SELECT * FROM unnest(p_ids, p_delays, p_errors) AS t(id, delay, error)
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
        WHERE j.id = ANY(v_ids) AND NOT (j.id = ANY(v_cancel)) AND t.id = j.id
        RETURNING j.id, j.state, j.channel_name, j.attempts, t.error
    ), errors AS (
        -- an upsert: a job written without its payload row still gets its error recorded
        INSERT INTO mq_payloads AS p (id, name, retry_backoff, last_error, errors)
        SELECT f.id, 'sqlxmq:missing-payload', interval '1 second', f.error,
            mq_add_error(NULL, f.attempts, f.error)
        FROM failed AS f
        ON CONFLICT (id) DO UPDATE
        SET last_error = excluded.last_error,
            errors = mq_add_error(p.errors, (excluded.errors -> 0 ->> 'attempt')::integer,
                                  excluded.last_error)
    ), limited AS (
        SELECT mq_wake(ARRAY(
            SELECT DISTINCT f.channel_name FROM failed AS f
            WHERE EXISTS (
                SELECT 1 FROM mq_channel_limits AS l WHERE l.channel_name = f.channel_name
            )
        ))
    )
    SELECT f.id, f.state::text FROM failed AS f, limited;
    IF cardinality(v_cancel) > 0 THEN
        RETURN QUERY
        SELECT c, 'c'::text
        FROM mq_cancel_now(v_cancel, 'cancelled while running', v_tokens, false, v_reasons) AS c;
    END IF;
    IF NOT p_wait THEN
        RETURN QUERY
        SELECT j.id, 'busy'::text FROM mq_jobs AS j
        JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
        WHERE j.id = ANY(p_ids) AND j.lease_token = t.token AND NOT (j.id = ANY(v_ids));
    END IF;
END;
$$;

-- Extends the leases still held under the given tokens. Returns the tokens of the leases that
-- are gone ('lost') and of the jobs asked to stop ('cancel'). Rows locked by another
-- transaction (the job's own, completing it) are skipped, never waited for, and not reported
-- as lost.
CREATE FUNCTION mq_renew(p_ids uuid[], p_tokens uuid[], p_default_lease interval)
RETURNS TABLE (lease_token uuid, report text)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH held AS (
        SELECT t.id, t.token FROM unnest(p_ids, p_tokens) AS t(id, token)
    ), lockable AS (
        SELECT j.id FROM mq_jobs AS j
        JOIN held AS h ON h.id = j.id AND j.lease_token = h.token
        WHERE j.id = ANY(p_ids)
        FOR UPDATE OF j SKIP LOCKED
    ), renewed AS (
        UPDATE mq_jobs AS j
        SET attempt_at = greatest(j.attempt_at, now() + coalesce(j.lease, p_default_lease))
        WHERE j.id = ANY(ARRAY(SELECT l.id FROM lockable AS l))
        RETURNING j.id
    )
    SELECT h.token, CASE WHEN s.cancel_requested IS NULL THEN 'lost' ELSE 'cancel' END
    FROM held AS h
    LEFT JOIN LATERAL (
        SELECT j.cancel_requested FROM mq_jobs AS j
        WHERE j.id = h.id AND j.lease_token = h.token
        OFFSET 0
    ) AS s ON true
    WHERE s.cancel_requested IS NOT FALSE;
END;
$$;

-- Hands leases back without using up an attempt (a runner stopping before its jobs finished,
-- or one that could not start them). A job someone asked to cancel is cancelled instead: a
-- deploy does not run it again. Returns each job with 'released' or 'cancelled'.
CREATE FUNCTION mq_release(p_ids uuid[], p_tokens uuid[])
RETURNS TABLE (id uuid, outcome text)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_cancel uuid[];
    v_tokens uuid[];
BEGIN
    SELECT coalesce(array_agg(j.id), '{}'), coalesce(array_agg(j.lease_token), '{}')
    INTO v_cancel, v_tokens
    FROM mq_jobs AS j
    JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
    WHERE j.id = ANY(p_ids) AND j.lease_token = t.token AND j.cancel_requested;
    RETURN QUERY
    WITH released AS (
        UPDATE mq_jobs AS j
        SET state = 'r', attempts = greatest(j.attempts - 1, 0), lease_token = NULL,
            attempt_at = now()
        FROM unnest(p_ids, p_tokens) AS t(id, token)
        WHERE j.id = ANY(p_ids) AND j.id = t.id AND j.lease_token = t.token
          AND NOT (j.id = ANY(v_cancel))
        RETURNING j.id, j.channel_name
    ), woken AS (
        SELECT mq_wake(ARRAY(SELECT r.channel_name FROM released AS r))
    )
    SELECT r.id, 'released'::text FROM released AS r, woken;
    RETURN QUERY
    SELECT c, 'cancelled'::text
    FROM mq_cancel_now(
        v_cancel, 'cancelled while running (its runner stopped before it finished)', v_tokens
    ) AS c;
END;
$$;

-- Makes scheduled jobs whose time has come ready (at most 5,000 per call) and wakes the idle
-- runners of their channels. With p_exclusive (runners), only one caller at a time promotes:
-- the others return at once with promoted NULL. Also says how many seconds remain until the
-- next scheduled job of p_channel_names (NULL: all channels); wait_s is NULL if there is none.
CREATE FUNCTION mq_promote(p_channel_names text[], p_exclusive boolean)
RETURNS TABLE (promoted integer, wait_s float8)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_promoted integer;
    v_channels text[];
BEGIN
    IF NOT p_exclusive OR pg_try_advisory_xact_lock(1836146535, 0) THEN
        WITH due AS (
            SELECT j.id FROM mq_jobs AS j
            WHERE j.state = 's' AND j.attempt_at <= now()
            ORDER BY j.attempt_at
            LIMIT 5000
            FOR UPDATE SKIP LOCKED
        ), made_ready AS (
            UPDATE mq_jobs AS j SET state = 'r'
            WHERE j.id = ANY(ARRAY(SELECT d.id FROM due AS d))
            RETURNING j.channel_name
        )
        SELECT count(*), coalesce(array_agg(DISTINCT m.channel_name), '{}')
        INTO v_promoted, v_channels
        FROM made_ready AS m;
        PERFORM mq_wake(v_channels);
    END IF;
    RETURN QUERY SELECT v_promoted, extract(epoch FROM (
        CASE WHEN p_channel_names IS NULL THEN (
            SELECT min(j.attempt_at) FROM mq_jobs AS j
            WHERE j.state = 's' AND j.attempt_at > now()
        ) ELSE (
            SELECT min(n.at)
            FROM unnest(p_channel_names) AS u(name)
            CROSS JOIN LATERAL (
                SELECT j.attempt_at AS at FROM mq_jobs AS j
                WHERE j.state = 's' AND j.channel_name = u.name AND j.attempt_at > now()
                ORDER BY j.attempt_at
                LIMIT 1
            ) AS n
        ) END - now()
    ))::float8;
END;
$$;

-- Ordered chains whose head is still marked blocked although nothing is ahead of it: a spawn
-- that raced with the deletion of its predecessor (neither transaction could see the other's
-- work), or a spawn under REPEATABLE READ, whose snapshot predates its chain's lock. Visits one
-- index entry per chain. Returns the channels of the heads made runnable.
CREATE FUNCTION mq_unblock_heads() RETURNS SETOF text
LANGUAGE sql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
    WITH RECURSIVE heads AS (
        (SELECT j.id, j.channel_name, j.channel_args, j.state FROM mq_jobs AS j
         WHERE j.ord_seq IS NOT NULL
         ORDER BY j.channel_name, j.channel_args, j.ord_seq
         LIMIT 1)
      UNION ALL
        SELECT n.id, n.channel_name, n.channel_args, n.state
        FROM heads AS h
        CROSS JOIN LATERAL (
            SELECT j.id, j.channel_name, j.channel_args, j.state FROM mq_jobs AS j
            WHERE j.ord_seq IS NOT NULL
              AND (j.channel_name, j.channel_args) > (h.channel_name, h.channel_args)
            ORDER BY j.channel_name, j.channel_args, j.ord_seq
            LIMIT 1
        ) AS n
    ), unlocked AS (
        SELECT j.id FROM mq_jobs AS j
        WHERE j.id = ANY(ARRAY(SELECT h.id FROM heads AS h WHERE h.state = 'b'))
          AND j.state = 'b'
        FOR UPDATE SKIP LOCKED
    ), promoted AS (
        UPDATE mq_jobs AS j
        SET state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq,
                                      j.attempt_at)
        WHERE j.id = ANY(ARRAY(SELECT u.id FROM unlocked AS u))
        RETURNING j.channel_name
    ), woken AS (
        SELECT mq_wake(ARRAY(SELECT p.channel_name FROM promoted AS p), 's')
    )
    SELECT p.channel_name FROM promoted AS p, woken
$$;

-- The repairs that no transaction could make for itself (see mq_unblock_heads and
-- mq_resolve_deps). Runners run them in their maintenance; the pull API (fetch) runs them too,
-- at most once a second per process, so a deployment without runners needs no sweeper.
-- Returns how many jobs were unblocked or resolved.
CREATE FUNCTION mq_repair() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_unblocked integer;
BEGIN
    SELECT count(*) INTO v_unblocked FROM mq_unblock_heads();
    RETURN v_unblocked + mq_resolve_deps(NULL);
END;
$$;

-- Leases that ran out (their runner died or stalled): the job runs again, or fails if that was
-- its last attempt. At most 1,000 per call; returns each job. Runners call it in their
-- maintenance, the pull API before each fetch.
CREATE FUNCTION mq_expire_leases()
RETURNS TABLE (job_id uuid, job_name text, attempt integer, final boolean)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH expired AS (
        SELECT j.id FROM mq_jobs AS j
        WHERE j.state = 'l' AND j.attempt_at <= now() AND NOT j.cancel_requested
        ORDER BY j.attempt_at
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    ), updated AS (
        UPDATE mq_jobs AS j
        SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'f' ELSE 'r' END,
            lease_token = NULL,
            attempt_at = now()
        WHERE j.id = ANY(ARRAY(SELECT e.id FROM expired AS e))
        RETURNING j.id, j.state, j.attempts, j.channel_name
    ), errors AS (
        INSERT INTO mq_payloads AS p (id, name, retry_backoff, last_error, errors)
        SELECT u.id, 'sqlxmq:missing-payload', interval '1 second',
            'lease expired during attempt ' || u.attempts,
            mq_add_error(NULL, u.attempts, 'lease expired during attempt ' || u.attempts)
        FROM updated AS u
        ON CONFLICT (id) DO UPDATE
        SET last_error = excluded.last_error,
            errors = mq_add_error(p.errors, (excluded.errors -> 0 ->> 'attempt')::integer,
                                  excluded.last_error)
        RETURNING p.id, p.name
    ), woken AS (
        SELECT mq_wake(ARRAY(SELECT u.channel_name FROM updated AS u WHERE u.state = 'r'))
    )
    SELECT u.id, e.name, u.attempts, u.state = 'f'
    FROM updated AS u JOIN errors AS e ON e.id = u.id, woken;
END;
$$;

-- The periodic upkeep shared by all runners, in one statement, so that the lock that makes it
-- one runner's at a time is never held across a pause of that runner's process. Skipped (no
-- rows) while another runner does it. Returns one row per event to log: cancelled_jobs_expired
-- (a count), lease_expired and uncommitted_job_discarded (each job, up to 200 of each, then a
-- count of the rest), repaired (a count).
CREATE FUNCTION mq_maintain()
RETURNS TABLE (event text, job_id uuid, job_name text, attempt integer, final boolean, n integer)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_count integer;
    v_ids uuid[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(1836146533, 0) THEN
        RETURN;
    END IF;

    -- running jobs asked to stop whose runner is gone: cancelled rather than retried
    SELECT count(*) INTO v_count FROM mq_cancel_now(
        ARRAY(
            SELECT j.id FROM mq_jobs AS j
            WHERE j.state = 'l' AND j.cancel_requested AND j.attempt_at <= now()
            ORDER BY j.attempt_at
            LIMIT 1000
        ),
        'cancelled: the job was asked to stop and its runner is gone',
        NULL,
        true
    );
    IF v_count > 0 THEN
        RETURN QUERY SELECT 'cancelled_jobs_expired', NULL::uuid, NULL::text, NULL::integer,
            NULL::boolean, v_count;
    END IF;

    RETURN QUERY
    WITH expired AS MATERIALIZED (
        SELECT x.*, row_number() OVER (ORDER BY x.job_id) AS rn, count(*) OVER () AS total
        FROM mq_expire_leases() AS x
    )
    SELECT 'lease_expired', x.job_id, x.job_name, x.attempt, x.final, 1
    FROM expired AS x WHERE x.rn <= 200
    UNION ALL
    SELECT 'lease_expired', NULL, NULL, NULL, NULL, (x.total - 200)::integer
    FROM expired AS x WHERE x.rn = 1 AND x.total > 200;

    -- two-phase jobs not committed within their commit interval are discarded: cancelled, so
    -- that their continuations are cancelled too (a discarded parent never completed)
    v_ids := ARRAY(
        SELECT j.id FROM mq_jobs AS j
        WHERE j.state = 'u' AND j.commit_deadline <= now()
        ORDER BY j.commit_deadline
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    );
    IF cardinality(v_ids) > 0 THEN
        RETURN QUERY
        WITH named AS MATERIALIZED (
            SELECT p.id, p.name, row_number() OVER (ORDER BY p.id) AS rn
            FROM mq_payloads AS p WHERE p.id = ANY(v_ids)
        ), cancelled AS MATERIALIZED (
            SELECT c AS id FROM mq_cancel_now(
                v_ids, 'discarded: not committed within its commit interval'
            ) AS c
        )
        SELECT 'uncommitted_job_discarded', c.id, nm.name, NULL::integer, NULL::boolean, 1
        FROM cancelled AS c LEFT JOIN named AS nm ON nm.id = c.id
        WHERE coalesce(nm.rn, 0) <= 200
        UNION ALL
        SELECT 'uncommitted_job_discarded', NULL, NULL, NULL, NULL, (count(*) - 200)::integer
        FROM cancelled AS c HAVING count(*) > 200;
    END IF;

    v_count := mq_repair();
    IF v_count > 0 THEN
        RETURN QUERY SELECT 'repaired', NULL::uuid, NULL::text, NULL::integer, NULL::boolean,
            v_count;
    END IF;

    DELETE FROM mq_history AS h
    WHERE h.id = ANY(ARRAY(
        SELECT x.id FROM mq_history AS x WHERE x.expires_at <= now()
        ORDER BY x.expires_at LIMIT 5000
    ));
    DELETE FROM mq_throttle AS t WHERE t.until <= now();
    DELETE FROM mq_stats AS s WHERE s.bucket < now() - interval '7 days';
    DELETE FROM mq_listeners AS l WHERE l.heartbeat_at < now() - interval '5 minutes';
END;
$$;

-- Parks leased jobs whose name the leasing runner does not know (see the state 'n' above):
-- the attempt is not counted, and p_reasons[i] is recorded as the job's last error, saying
-- what it waits for. A job someone asked to cancel is cancelled instead. Returns each job with
-- 'parked' or 'cancelled'; a job not returned has lost its lease.
CREATE FUNCTION mq_park(p_ids uuid[], p_tokens uuid[], p_reasons text[])
RETURNS TABLE (id uuid, outcome text)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_cancel uuid[];
    v_tokens uuid[];
BEGIN
    SELECT coalesce(array_agg(j.id), '{}'), coalesce(array_agg(j.lease_token), '{}')
    INTO v_cancel, v_tokens
    FROM mq_jobs AS j
    JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
    WHERE j.id = ANY(p_ids) AND j.lease_token = t.token AND j.cancel_requested;
    RETURN QUERY
    WITH parked AS (
        UPDATE mq_jobs AS j
        SET state = 'n', attempts = greatest(j.attempts - 1, 0), lease_token = NULL,
            attempt_at = now()
        FROM unnest(p_ids, p_tokens) AS t(id, token)
        WHERE j.id = ANY(p_ids) AND j.id = t.id AND j.lease_token = t.token
          AND NOT (j.id = ANY(v_cancel))
        RETURNING j.id
    ), noted AS (
        UPDATE mq_payloads AS p SET last_error = r.reason
        FROM unnest(p_ids, p_reasons) AS r(id, reason)
        WHERE p.id = ANY(ARRAY(SELECT k.id FROM parked AS k)) AND p.id = r.id
    )
    SELECT k.id, 'parked'::text FROM parked AS k;
    RETURN QUERY
    SELECT c, 'cancelled'::text
    FROM mq_cancel_now(
        v_cancel, 'cancelled while waiting for a runner that knows its name', v_tokens
    ) AS c;
END;
$$;

-- Makes parked jobs of these names (the names a runner knows) runnable again and wakes the
-- runners of their channels; returns how many. Visits the parked jobs only.
CREATE FUNCTION mq_unpark(p_names text[]) RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_channels text[];
BEGIN
    WITH known AS (
        SELECT j.id FROM mq_jobs AS j
        WHERE j.state = 'n'
          AND (SELECT p.name FROM mq_payloads AS p WHERE p.id = j.id) = ANY(p_names)
        FOR UPDATE SKIP LOCKED
    ), unparked AS (
        UPDATE mq_jobs AS j
        SET state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, now()),
            attempt_at = now()
        WHERE j.id = ANY(ARRAY(SELECT k.id FROM known AS k)) AND j.state = 'n'
        RETURNING j.channel_name
    )
    SELECT coalesce(array_agg(u.channel_name), '{}') INTO v_channels FROM unparked AS u;
    PERFORM mq_wake(v_channels);
    RETURN cardinality(v_channels);
END;
$$;
