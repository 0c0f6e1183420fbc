-- sqlxmq_py schema: one lock order for workflows and their steps' jobs (no deadlock between an
-- operator and a runner acting on steps of the same workflow).
--
-- A step's end is settled at commit: the deferred trigger of 0012 locks the workflow row, then
-- the settlement changes other steps' rows and jobs (releases them, cancels them). Until now
-- every other path that ends or changes a step's job took the job's row first and the
-- workflow's only at commit, the reverse order. Two transactions could then wait for each
-- other, and PostgreSQL aborted one after deadlock_timeout:
-- - a runner completes (or fails for good) step A; an operator cancels waiting step B's job
--   (mq_cancel, mq_cancel_now, a bulk cancel): the runner's settlement at commit holds the
--   workflow and waits for B's row, which the operator holds until it commits, and the
--   operator's commit waits for the workflow;
-- - an operator cancels the workflow (mq_workflow_cancel holds it, then asks every step's job
--   to stop) while a runner completes step A: the cancel waits for A's row, the runner's
--   commit for the workflow.
--
-- The order is now: the workflows first (FOR NO KEY UPDATE, in id order, the mode and order
-- of the settlement), then the jobs. mq_workflow_lock_jobs takes the workflows of a list of
-- jobs; mq_complete, mq_fail, mq_cancel, mq_cancel_now, mq_retry, mq_park and mq_release
-- call it before they lock a job (mq_workflow_cancel, mq_workflow_retry and mq_workflow_link
-- took the workflow first already). A transaction that ends a step therefore holds its
-- workflow from that statement to its commit, not only during its commit: two transactions
-- ending steps of one workflow (or adding steps to it) queue one behind the other from then
-- on. The runner's batched statements (p_wait false: they never wait for a job another
-- transaction holds) do wait for the workflow: they hold nothing yet, and they waited for it
-- at their commit before. (Skipping a held workflow and writing its jobs again later cost a
-- workflow of 2,100 steps on two runners about 40% more time; waiting about 5 to 15%.)
--
-- mq_expire_leases (maintenance) fails for good the steps' jobs whose last lease expired: it
-- takes their workflows first too, without waiting (a job whose workflow is held expires at a
-- later run). The purge and the bulk delete of failed jobs (statements of queries.sql) take
-- the workflows first as well. Left in the old order: jobs deleted or changed by hand.
--
-- Jobs outside workflows (workflow_id NULL) pay one lookup of their own rows by key while some
-- workflow is open, and one probe of an index of the open workflows otherwise (the completions
-- and failures of every job call it: most databases hold no open workflow).

-- The workflows not finished: those whose steps' jobs may still be in the queue.
CREATE INDEX IF NOT EXISTS mq_workflows_open_idx ON mq_workflows (id) WHERE finished_at IS NULL;

CREATE FUNCTION mq_workflow_lock_jobs(p_ids uuid[], p_wait boolean DEFAULT true)
RETURNS uuid[]
LANGUAGE plpgsql AS $$
DECLARE
    v_workflows uuid[];
    v_locked uuid[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM mq_workflows AS w WHERE w.finished_at IS NULL) THEN
        -- no workflow open: no job in the queue is a step (a workflow finishes only once none
        -- of its steps' jobs is left, and one being made in another transaction is not seen,
        -- nor are its jobs, which these ids cannot name)
        RETURN '{}';
    END IF;
    v_workflows := ARRAY(
        SELECT DISTINCT j.workflow_id FROM mq_jobs AS j
        WHERE j.id = ANY(p_ids) AND j.workflow_id IS NOT NULL
    );
    IF cardinality(v_workflows) = 0 THEN
        RETURN '{}';
    END IF;
    IF p_wait THEN
        PERFORM 1 FROM mq_workflows AS w WHERE w.id = ANY(v_workflows)
        ORDER BY w.id FOR NO KEY UPDATE;
        RETURN '{}';
    END IF;
    v_locked := ARRAY(
        SELECT w.id FROM mq_workflows AS w WHERE w.id = ANY(v_workflows)
        ORDER BY w.id FOR NO KEY UPDATE SKIP LOCKED
    );
    -- the jobs whose workflow another transaction holds (a workflow gone, expired, is no lock)
    RETURN ARRAY(
        SELECT j.id FROM mq_jobs AS j
        WHERE j.id = ANY(p_ids) AND j.workflow_id = ANY(v_workflows)
          AND NOT (j.workflow_id = ANY(v_locked))
          AND EXISTS (SELECT 1 FROM mq_workflows AS w WHERE w.id = j.workflow_id)
    );
END;
$$;

-- mq_cancel asks leased jobs to stop (an UPDATE of their rows) before mq_cancel_now: restated
-- in full, with the workflows locked first.
CREATE OR REPLACE FUNCTION mq_cancel(p_ids uuid[], p_reason text DEFAULT 'cancelled')
RETURNS TABLE (id uuid, outcome text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM mq_workflow_lock_jobs(p_ids);
    RETURN QUERY
        UPDATE mq_jobs AS j SET cancel_requested = true
        WHERE j.id = ANY(p_ids) AND j.state = 'l'
        RETURNING j.id, 'requested'::text;
    RETURN QUERY SELECT c, 'cancelled'::text FROM mq_cancel_now(p_ids, p_reason) AS c;
END;
$$;

-- mq_retry: restated in full, with the workflows locked first (a failed step's job made
-- pending again changes its step and, at commit, settles its workflow).
CREATE OR REPLACE FUNCTION mq_retry(p_ids uuid[]) RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_channels text[];
    v_ids uuid[];
BEGIN
    PERFORM mq_workflow_lock_jobs(p_ids);
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

-- mq_cancel_now, mq_complete, mq_fail, mq_park, mq_release and mq_expire_leases are patched
-- in place (mq_patch_function, 0016): whatever earlier migrations made of them otherwise stays.
-- Each text replaced must occur exactly once.
SELECT mq_patch_function('mq_cancel_now', ARRAY[ARRAY[
    E'    PERFORM mq_lock_chains(p_ids);\n',
    E'    PERFORM mq_workflow_lock_jobs(p_ids);\n    PERFORM mq_lock_chains(p_ids);\n'
]]);

-- mq_complete and mq_fail: the workflows first, with or without p_wait (the statement holds no
-- lock yet, so waiting for a workflow cannot close a cycle)
SELECT mq_patch_function('mq_complete', ARRAY[ARRAY[
    E'    IF p_wait THEN\n',
    E'    PERFORM mq_workflow_lock_jobs(p_ids);\n    IF p_wait THEN\n'
]]);

SELECT mq_patch_function('mq_fail', ARRAY[ARRAY[
    E'    IF p_wait THEN\n',
    E'    PERFORM mq_workflow_lock_jobs(p_ids);\n    IF p_wait THEN\n'
]]);

-- mq_park and mq_release cancel the jobs asked to stop: the workflows first, if there are any
SELECT mq_patch_function('mq_park', ARRAY[ARRAY[
    E'    RETURN QUERY\n    WITH parked AS (',
    E'    IF cardinality(v_cancel) > 0 THEN\n'
    '        PERFORM mq_workflow_lock_jobs(p_ids);\n'
    '    END IF;\n'
    '    RETURN QUERY\n    WITH parked AS ('
]]);

SELECT mq_patch_function('mq_release', ARRAY[ARRAY[
    E'    RETURN QUERY\n    WITH released AS (',
    E'    IF cardinality(v_cancel) > 0 THEN\n'
    '        PERFORM mq_workflow_lock_jobs(p_ids);\n'
    '    END IF;\n'
    '    RETURN QUERY\n    WITH released AS ('
]]);

SELECT mq_patch_function('mq_expire_leases', ARRAY[ARRAY[
    E'    WITH expired AS (\n'
    '        SELECT j.id FROM mq_jobs AS j\n'
    '        WHERE j.state = ''l'' AND j.attempt_at <= now() AND NOT j.cancel_requested\n'
    '        ORDER BY j.attempt_at',
    E'    WITH held AS MATERIALIZED (\n'
    '        -- the workflows of the steps whose last attempt expired, without waiting:\n'
    '        -- the jobs of those another transaction holds are left for a later run\n'
    '        SELECT mq_workflow_lock_jobs(ARRAY(\n'
    '            SELECT j.id FROM mq_jobs AS j\n'
    '            WHERE j.state = ''l'' AND j.attempt_at <= now() AND NOT j.cancel_requested\n'
    '              AND j.workflow_id IS NOT NULL AND j.attempts >= j.max_attempts\n'
    '            ORDER BY j.attempt_at\n'
    '            LIMIT 1000\n'
    '        ), false) AS ids\n'
    '    ), expired AS (\n'
    '        SELECT j.id FROM mq_jobs AS j\n'
    '        WHERE j.state = ''l'' AND j.attempt_at <= now() AND NOT j.cancel_requested\n'
    '          AND NOT EXISTS (SELECT 1 FROM held AS h WHERE j.id = ANY(h.ids))\n'
    '        ORDER BY j.attempt_at'
]]);
