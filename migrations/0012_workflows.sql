-- sqlxmq_py schema: workflows, graphs of steps with dependencies (sqlxmq_py.workflow).
--
-- A workflow is a row of mq_workflows; each step is an ordinary job (mq_jobs.workflow_id names
-- its workflow) with a row of mq_workflow_steps that outlives the job and records how it ended
-- (and its result or error); mq_workflow_edges holds the dependencies by step name. A step
-- whose parents have not all ended is parked in the waiting state 'w' with no row of mq_deps:
-- nothing but its workflow releases it (as batch callbacks). Step states:
--
--   waiting    parked: a parent has not ended, or its group is at its max_running
--   pending    released to the queue: ready, running, or retrying after a failed attempt
--   completed  its job completed (its result is kept here)
--   failed     its job failed for good (out of attempts); retry_step makes it pending again
--   cancelled  its job was cancelled, or a parent failed or was cancelled (policy 'cancel')
--   skipped    a parent failed or was cancelled (policy 'skip'), or the step skipped itself
--              (it completed after WorkflowContext.skip); its dependents treat it as
--              completed without a result
--
-- A step with policy 'run' is released once every parent has ended, whatever the outcome. A
-- step cancelled or skipped because of a parent (held_by names that parent) keeps its job
-- parked: if the parent is retried (its failed job made pending again) the step waits again and
-- runs once the parent succeeds. Parked jobs are cancelled for real when the workflow finishes:
-- no step waiting or pending, and no failed step whose job is still in the queue (retryable).
--
-- How a step's end is acted on exactly once, whatever races it (the shape of batches):
-- - Triggers on mq_jobs (only rows with a workflow_id, by their WHEN clause, so other jobs pay
--   nothing) record the step's end on its own mq_workflow_steps row and note the workflow as
--   touched by the transaction. No completion, failure or lease function is replaced.
-- - A deferred constraint trigger on mq_workflow_steps locks every touched workflow row at
--   commit, in id order, and settles each (mq_workflow_settle): with the lock held and a fresh
--   snapshot per statement it sees every step end committed before, so of two parents of a join
--   ending at the same instant on two runners, the second to commit releases the join, once.
-- - Adding steps (spawn, or a running step adding to its own workflow) and cancelling take the
--   same lock first.

-- (no index: the workflow's own tables find its jobs; jobs outside workflows pay nothing)
ALTER TABLE mq_jobs ADD COLUMN IF NOT EXISTS workflow_id uuid;

CREATE TABLE IF NOT EXISTS mq_workflows (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    -- how long the workflow (its steps and their results) is kept once it finished
    retain_for interval NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz,
    cancel_reason text,
    finished_at timestamptz,
    expires_at timestamptz
);
CREATE INDEX IF NOT EXISTS mq_workflows_expires_idx ON mq_workflows (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS mq_workflows_created_idx ON mq_workflows (created_at);

CREATE TABLE IF NOT EXISTS mq_workflow_steps (
    workflow_id uuid NOT NULL REFERENCES mq_workflows (id) ON DELETE CASCADE,
    step text NOT NULL,
    -- the order steps were added in (releases within a group follow it)
    seq integer NOT NULL,
    job_id uuid NOT NULL UNIQUE,
    job_name text NOT NULL,
    on_parent_failure text NOT NULL CHECK (on_parent_failure IN ('cancel', 'skip', 'run')),
    step_group text,
    state text NOT NULL DEFAULT 'waiting' CHECK (
        state IN ('waiting', 'pending', 'completed', 'failed', 'cancelled', 'skipped')
    ),
    -- the parent whose failure or cancellation cancelled or skipped this step
    held_by text,
    -- set by the running step itself (WorkflowContext.skip): it ends as skipped, not completed
    skip_reason text,
    result json,
    error text,
    -- the step's job left the queue (completed, cancelled, purged)
    job_gone boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (workflow_id, step)
);
-- (settling reads a workflow's steps by state, and its waiting steps in the order they were
-- added: per group, and those of no group; each settle reads what it may act on, not the
-- whole workflow)
CREATE INDEX IF NOT EXISTS mq_workflow_steps_state_idx ON mq_workflow_steps (workflow_id, state);
CREATE INDEX IF NOT EXISTS mq_workflow_steps_waiting_idx
    ON mq_workflow_steps (workflow_id, step_group, seq) WHERE state = 'waiting';
CREATE INDEX IF NOT EXISTS mq_workflow_steps_waiting_free_idx
    ON mq_workflow_steps (workflow_id, seq) WHERE state = 'waiting' AND step_group IS NULL;

CREATE TABLE IF NOT EXISTS mq_workflow_edges (
    workflow_id uuid NOT NULL,
    child text NOT NULL,
    parent text NOT NULL,
    PRIMARY KEY (workflow_id, child, parent),
    FOREIGN KEY (workflow_id, child) REFERENCES mq_workflow_steps (workflow_id, step)
        ON DELETE CASCADE,
    FOREIGN KEY (workflow_id, parent) REFERENCES mq_workflow_steps (workflow_id, step)
        ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS mq_workflow_edges_parent_idx
    ON mq_workflow_edges (workflow_id, parent);

-- The groups of a workflow's steps, each with the most of its steps released at once (NULL:
-- no limit).
CREATE TABLE IF NOT EXISTS mq_workflow_groups (
    workflow_id uuid NOT NULL REFERENCES mq_workflows (id) ON DELETE CASCADE,
    step_group text NOT NULL,
    max_running integer CHECK (max_running > 0),
    PRIMARY KEY (workflow_id, step_group)
);

-- Notes the workflow as touched by this transaction (a transaction-local setting, rolled back
-- with a savepoint), so that its settlement at commit locks every touched workflow at once.
CREATE OR REPLACE FUNCTION mq_workflow_touch(p_workflow uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_touched text := coalesce(current_setting('mq.workflows_touched', true), '');
BEGIN
    IF strpos(v_touched, p_workflow::text) = 0 THEN
        PERFORM set_config('mq.workflows_touched', v_touched || p_workflow::text || ',', true);
    END IF;
END;
$$;

-- Acts on what the steps' states call for (see the top of this file). The caller holds the
-- workflow row's lock; a second call changes nothing.
CREATE OR REPLACE FUNCTION mq_workflow_settle(p_workflow uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_wf mq_workflows%ROWTYPE;
    v_changed integer;
    v_n integer;
    v_released uuid[];
    v_channels text[];
    v_doom record;
BEGIN
    SELECT * INTO v_wf FROM mq_workflows AS w WHERE w.id = p_workflow;
    IF NOT FOUND OR v_wf.finished_at IS NOT NULL THEN
        RETURN;
    END IF;
    LOOP
        v_changed := 0;
        IF v_wf.cancelled_at IS NULL THEN
            -- re-arm: the parent that held these steps was retried
            UPDATE mq_workflow_steps AS s
            SET state = 'waiting', held_by = NULL, error = NULL, finished_at = NULL
            WHERE s.workflow_id = p_workflow AND s.state IN ('cancelled', 'skipped')
              AND s.held_by IS NOT NULL AND NOT s.job_gone
              AND EXISTS (
                  SELECT 1 FROM mq_workflow_steps AS h
                  WHERE h.workflow_id = p_workflow AND h.step = s.held_by
                    AND h.state IN ('waiting', 'pending')
              );
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_changed := v_changed + v_n;
        END IF;
        -- doom: a waiting step (not 'run') with a parent that failed or was cancelled (one
        -- by one, each by its key: there are few, and no plan can then scan for them)
        FOR v_doom IN
            SELECT DISTINCT ON (e.child) e.child, e.parent, p.state
            FROM mq_workflow_steps AS p
            JOIN mq_workflow_edges AS e
              ON e.workflow_id = p.workflow_id AND e.parent = p.step
            JOIN mq_workflow_steps AS c
              ON c.workflow_id = e.workflow_id AND c.step = e.child
            WHERE p.workflow_id = p_workflow AND p.state IN ('failed', 'cancelled')
              AND c.state = 'waiting' AND c.on_parent_failure <> 'run'
            ORDER BY e.child, e.parent
        LOOP
            UPDATE mq_workflow_steps AS s
            SET state = CASE s.on_parent_failure WHEN 'skip' THEN 'skipped' ELSE 'cancelled' END,
                held_by = v_doom.parent,
                error = 'parent step ' || v_doom.parent || ' ' || v_doom.state,
                finished_at = now()
            WHERE s.workflow_id = p_workflow AND s.step = v_doom.child AND s.state = 'waiting';
            v_changed := v_changed + 1;
        END LOOP;
        EXIT WHEN v_changed = 0;
    END LOOP;

    IF v_wf.cancelled_at IS NULL THEN
        -- release: every parent ended as the step's policy requires, and its group has room
        -- (per group, its first waiting steps, as many as it has room for; then those of no
        -- group)
        WITH room AS MATERIALIZED (
            SELECT g.step_group, g.max_running - (
                SELECT count(*) FROM mq_workflow_steps AS r
                WHERE r.workflow_id = p_workflow AND r.state = 'pending'
                  AND r.step_group = g.step_group
            ) AS free
            FROM mq_workflow_groups AS g
            WHERE g.workflow_id = p_workflow
        ), ready AS MATERIALIZED (
            SELECT c.step
            FROM room AS m
            CROSS JOIN LATERAL (
                SELECT s.step FROM mq_workflow_steps AS s
                WHERE s.workflow_id = p_workflow AND s.state = 'waiting'
                  AND s.step_group = m.step_group
                  AND NOT EXISTS (
                      SELECT 1 FROM mq_workflow_edges AS e
                      JOIN mq_workflow_steps AS p
                        ON p.workflow_id = e.workflow_id AND p.step = e.parent
                      WHERE e.workflow_id = p_workflow AND e.child = s.step
                        AND (p.state IN ('waiting', 'pending')
                             OR (p.state IN ('failed', 'cancelled')
                                 AND s.on_parent_failure <> 'run'))
                  )
                ORDER BY s.seq
                LIMIT CASE WHEN m.free IS NOT NULL THEN greatest(m.free, 0) END
            ) AS c
            UNION ALL
            SELECT s.step FROM mq_workflow_steps AS s
            WHERE s.workflow_id = p_workflow AND s.state = 'waiting' AND s.step_group IS NULL
              AND NOT EXISTS (
                  SELECT 1 FROM mq_workflow_edges AS e
                  JOIN mq_workflow_steps AS p
                    ON p.workflow_id = e.workflow_id AND p.step = e.parent
                  WHERE e.workflow_id = p_workflow AND e.child = s.step
                    AND (p.state IN ('waiting', 'pending')
                         OR (p.state IN ('failed', 'cancelled')
                             AND s.on_parent_failure <> 'run'))
              )
        ), released AS (
            UPDATE mq_workflow_steps AS s SET state = 'pending'
            WHERE s.workflow_id = p_workflow
              AND s.step = ANY (ARRAY(SELECT r.step FROM ready AS r))
              AND s.state = 'waiting'
            RETURNING s.job_id
        )
        SELECT coalesce(array_agg(r.job_id ORDER BY r.job_id), '{}') INTO v_released
        FROM released AS r;
        IF cardinality(v_released) > 0 THEN
            PERFORM 1 FROM mq_jobs AS j WHERE j.id = ANY(v_released) ORDER BY j.id FOR UPDATE;
            WITH up AS (
                UPDATE mq_jobs AS j
                SET attempt_at = greatest(j.attempt_at, now()),
                    state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq,
                                              greatest(j.attempt_at, now()))
                WHERE j.id = ANY(v_released) AND j.state = 'w'
                RETURNING j.channel_name
            )
            SELECT array_agg(DISTINCT up.channel_name) INTO v_channels FROM up;
            PERFORM mq_wake(coalesce(v_channels, '{}'), 's');
        END IF;
    END IF;

    -- finished: nothing waiting or pending, nothing left to retry
    IF EXISTS (
        SELECT 1 FROM mq_workflow_steps AS s
        WHERE s.workflow_id = p_workflow
          AND (s.state IN ('waiting', 'pending') OR (s.state = 'failed' AND NOT s.job_gone))
    ) THEN
        RETURN;
    END IF;
    UPDATE mq_workflows AS w SET finished_at = now(), expires_at = now() + w.retain_for
    WHERE w.id = p_workflow;
    PERFORM mq_cancel_now(
        ARRAY(
            SELECT s.job_id FROM mq_workflow_steps AS s
            WHERE s.workflow_id = p_workflow AND s.state IN ('cancelled', 'skipped')
              AND NOT s.job_gone
            ORDER BY s.job_id
        ),
        'workflow ' || p_workflow || ' finished'
    );
END;
$$;

-- Settles, at commit (deferred), every workflow this transaction touched, locked in one order
-- (no deadlock between two transactions that end steps of the same workflows). The first call
-- in a transaction does the work; the others find nothing touched.
CREATE OR REPLACE FUNCTION mq_workflow_steps_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_touched text := coalesce(current_setting('mq.workflows_touched', true), '');
    v_ids uuid[];
    v_id uuid;
BEGIN
    IF v_touched = '' THEN
        RETURN NULL;
    END IF;
    v_ids := string_to_array(rtrim(v_touched, ','), ',')::uuid[];
    PERFORM 1 FROM mq_workflows AS w WHERE w.id = ANY(v_ids) ORDER BY w.id FOR NO KEY UPDATE;
    PERFORM set_config('mq.workflows_touched', '', true);
    FOR v_id IN SELECT unnest(v_ids) ORDER BY 1 LOOP
        PERFORM mq_workflow_settle(v_id);
    END LOOP;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS mq_workflow_steps_changed_trg ON mq_workflow_steps;
CREATE CONSTRAINT TRIGGER mq_workflow_steps_changed_trg
    AFTER UPDATE ON mq_workflow_steps
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW
    EXECUTE FUNCTION mq_workflow_steps_changed();

-- A step's job left the queue: completed if it left a completed history row (steps are always
-- kept), cancelled otherwise (mq_cancel_now, a DELETE by hand). A step already ended (failed,
-- or cancelled or skipped because of a parent) keeps its state.
CREATE OR REPLACE FUNCTION mq_jobs_workflow_step_gone() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_result json;
    v_error text;
BEGIN
    SELECT h.state, h.result, h.last_error INTO v_state, v_result, v_error
    FROM mq_history AS h WHERE h.id = OLD.id;
    IF v_state IS DISTINCT FROM 'completed' THEN
        v_state := 'cancelled';
        v_result := NULL;
        v_error := coalesce(v_error, 'deleted from the queue');
    END IF;
    UPDATE mq_workflow_steps AS s
    SET job_gone = true,
        state = CASE
            WHEN s.state NOT IN ('waiting', 'pending') THEN s.state
            WHEN v_state = 'completed' AND s.skip_reason IS NOT NULL THEN 'skipped'
            ELSE v_state
        END,
        result = CASE
            WHEN s.state NOT IN ('waiting', 'pending') THEN s.result
            WHEN s.skip_reason IS NOT NULL THEN NULL
            ELSE v_result
        END,
        error = CASE
            WHEN s.state NOT IN ('waiting', 'pending') THEN s.error
            WHEN v_state = 'completed' THEN s.skip_reason
            ELSE v_error
        END,
        finished_at = coalesce(s.finished_at, now())
    WHERE s.job_id = OLD.id;
    IF FOUND THEN
        PERFORM mq_workflow_touch(OLD.workflow_id);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS mq_jobs_workflow_step_gone_trg ON mq_jobs;
CREATE TRIGGER mq_jobs_workflow_step_gone_trg
    AFTER DELETE ON mq_jobs
    FOR EACH ROW WHEN (OLD.workflow_id IS NOT NULL)
    EXECUTE FUNCTION mq_jobs_workflow_step_gone();

-- A step's job failed for good (out of attempts), or a failed one was retried (by retry_step
-- or any retry by hand) and is pending again.
CREATE OR REPLACE FUNCTION mq_jobs_workflow_step_failed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'f' THEN
        UPDATE mq_workflow_steps AS s
        SET state = 'failed', result = NULL, finished_at = now(),
            error = (SELECT p.last_error FROM mq_payloads AS p WHERE p.id = NEW.id)
        WHERE s.job_id = NEW.id AND s.state IN ('waiting', 'pending');
    ELSE
        UPDATE mq_workflow_steps AS s
        SET state = 'pending', result = NULL, error = NULL, finished_at = NULL,
            skip_reason = NULL
        WHERE s.job_id = NEW.id AND s.state = 'failed';
    END IF;
    IF FOUND THEN
        PERFORM mq_workflow_touch(NEW.workflow_id);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS mq_jobs_workflow_step_failed_trg ON mq_jobs;
CREATE TRIGGER mq_jobs_workflow_step_failed_trg
    AFTER UPDATE OF state ON mq_jobs
    FOR EACH ROW WHEN (NEW.workflow_id IS NOT NULL AND (OLD.state = 'f') <> (NEW.state = 'f'))
    EXECUTE FUNCTION mq_jobs_workflow_step_failed();

-- Makes jobs just inserted in this transaction (by the library's usual spawn statement, in
-- the same round trip) steps of a workflow, parked until their workflow releases them. With
-- p_create, the workflow is new; otherwise it must exist, not be cancelled nor finished (it is
-- locked first: steps ending concurrently wait, then see the new steps). The arrays describe
-- the steps (p_steps[i] is run by job p_job_ids[i]), the edges (p_children[k] after
-- p_parents[k], parents may be steps added before) and the groups' limits (a limit given again
-- replaces the old one). Returns the workflow's id.
CREATE OR REPLACE FUNCTION mq_workflow_link(
    p_workflow uuid,
    p_create boolean,
    p_name text,
    p_retain_for interval,
    p_steps text[],
    p_job_ids uuid[],
    p_job_names text[],
    p_policies text[],
    p_groups text[],
    p_children text[],
    p_parents text[],
    p_limit_groups text[],
    p_limits integer[]
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v mq_workflows%ROWTYPE;
    v_missing text;
    v_seq integer := 0;
BEGIN
    IF p_create THEN
        -- expired workflows go as new ones come: no sweeper needed
        DELETE FROM mq_workflows AS w
        WHERE w.id = ANY(ARRAY(
            SELECT x.id FROM mq_workflows AS x WHERE x.expires_at <= now()
            ORDER BY x.expires_at LIMIT 100
        ));
        INSERT INTO mq_workflows (id, name, retain_for)
        VALUES (p_workflow, p_name, p_retain_for);
    ELSE
        SELECT * INTO v FROM mq_workflows AS w WHERE w.id = p_workflow FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'workflow % does not exist (or expired)', p_workflow
                USING ERRCODE = 'MQW01';
        END IF;
        IF v.cancelled_at IS NOT NULL OR v.finished_at IS NOT NULL THEN
            RAISE EXCEPTION 'workflow % is %: no step can be added', p_workflow,
                CASE WHEN v.cancelled_at IS NOT NULL THEN 'cancelled' ELSE 'finished' END
                USING ERRCODE = 'MQW02';
        END IF;
        SELECT s.step INTO v_missing FROM mq_workflow_steps AS s
        WHERE s.workflow_id = p_workflow AND s.step = ANY(p_steps) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'workflow % already has a step named %', p_workflow, v_missing
                USING ERRCODE = 'MQW03';
        END IF;
        UPDATE mq_payloads AS p SET retain_for = v.retain_for
        WHERE p.id = ANY(p_job_ids) AND coalesce(p.retain_for, interval '0') <= interval '0';
        SELECT coalesce(max(s.seq), 0) INTO v_seq FROM mq_workflow_steps AS s
        WHERE s.workflow_id = p_workflow;
    END IF;
    INSERT INTO mq_workflow_steps (workflow_id, step, seq, job_id, job_name, on_parent_failure,
                                   step_group)
    SELECT p_workflow, u.step, v_seq + u.pos, u.job_id, u.job_name, u.policy, u.grp
    FROM unnest(p_steps, p_job_ids, p_job_names, p_policies, p_groups)
        WITH ORDINALITY AS u(step, job_id, job_name, policy, grp, pos)
    ORDER BY u.pos;
    SELECT e.parent INTO v_missing
    FROM unnest(p_parents) AS e(parent)
    WHERE NOT EXISTS (
        SELECT 1 FROM mq_workflow_steps AS s
        WHERE s.workflow_id = p_workflow AND s.step = e.parent
    )
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'workflow % has no step named % (a parent of a new step)',
            p_workflow, v_missing USING ERRCODE = 'MQW04';
    END IF;
    INSERT INTO mq_workflow_edges (workflow_id, child, parent)
    SELECT DISTINCT p_workflow, e.child, e.parent
    FROM unnest(p_children, p_parents) AS e(child, parent);
    INSERT INTO mq_workflow_groups (workflow_id, step_group, max_running)
    SELECT DISTINCT p_workflow, g.grp, NULL::integer FROM unnest(p_groups) AS g(grp)
    WHERE g.grp IS NOT NULL
    ON CONFLICT (workflow_id, step_group) DO NOTHING;
    INSERT INTO mq_workflow_groups (workflow_id, step_group, max_running)
    SELECT p_workflow, g.grp, g.n FROM unnest(p_limit_groups, p_limits) AS g(grp, n)
    ON CONFLICT (workflow_id, step_group) DO UPDATE SET max_running = excluded.max_running;
    UPDATE mq_jobs AS j SET workflow_id = p_workflow, state = 'w'
    WHERE j.id = ANY(p_job_ids) AND j.state IN ('r', 's');
    PERFORM mq_workflow_settle(p_workflow);
    RETURN p_workflow;
END;
$$;

-- Cancels a workflow: no step is released any more, steps not yet running are cancelled at
-- once, running ones are asked to stop (they end as cancelled when they do). Returns how many
-- jobs were cancelled and how many asked to stop.
CREATE OR REPLACE FUNCTION mq_workflow_cancel(p_workflow uuid, p_reason text)
RETURNS TABLE (cancelled bigint, requested bigint)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM mq_workflows AS w WHERE w.id = p_workflow FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'workflow % does not exist (or expired)', p_workflow
            USING ERRCODE = 'MQW01';
    END IF;
    UPDATE mq_workflows AS w SET cancelled_at = now(), cancel_reason = p_reason
    WHERE w.id = p_workflow AND w.cancelled_at IS NULL;
    RETURN QUERY
    SELECT count(*) FILTER (WHERE c.outcome = 'cancelled'),
        count(*) FILTER (WHERE c.outcome = 'requested')
    FROM mq_cancel(
        ARRAY(
            SELECT s.job_id FROM mq_workflow_steps AS s
            WHERE s.workflow_id = p_workflow AND NOT s.job_gone
            ORDER BY s.job_id
        ),
        p_reason
    ) AS c;
    PERFORM mq_workflow_touch(p_workflow);
    PERFORM mq_workflow_settle(p_workflow);
END;
$$;

-- Retries a step that failed for good: its job runs again (attempts counted from zero), and the
-- steps it cancelled or skipped wait for it again (at commit). Returns the step's job id.
CREATE OR REPLACE FUNCTION mq_workflow_retry(p_workflow uuid, p_step text) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_wf mq_workflows%ROWTYPE;
    v_step mq_workflow_steps%ROWTYPE;
BEGIN
    SELECT * INTO v_wf FROM mq_workflows AS w WHERE w.id = p_workflow FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'workflow % does not exist (or expired)', p_workflow
            USING ERRCODE = 'MQW01';
    END IF;
    IF v_wf.cancelled_at IS NOT NULL THEN
        RAISE EXCEPTION 'workflow % is cancelled: no step can be retried', p_workflow
            USING ERRCODE = 'MQW02';
    END IF;
    SELECT * INTO v_step FROM mq_workflow_steps AS s
    WHERE s.workflow_id = p_workflow AND s.step = p_step;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'workflow % has no step named %', p_workflow, p_step
            USING ERRCODE = 'MQW04';
    END IF;
    IF v_step.state <> 'failed' OR v_step.job_gone THEN
        RAISE EXCEPTION 'step % of workflow % cannot be retried: it is %', p_step, p_workflow,
            CASE WHEN v_step.job_gone AND v_step.state = 'failed'
                THEN 'failed and its job was purged' ELSE v_step.state END
            USING ERRCODE = 'MQW05';
    END IF;
    PERFORM mq_retry(ARRAY[v_step.job_id]);
    RETURN v_step.job_id;
END;
$$;

-- A running step asks to end as skipped (WorkflowContext.skip), in the transaction that
-- completes it: it then counts only if that transaction commits. Returns whether the step is
-- pending (else nothing changed).
CREATE OR REPLACE FUNCTION mq_workflow_skip_self(p_workflow uuid, p_step text, p_reason text)
RETURNS boolean
LANGUAGE sql AS $$
    WITH marked AS (
        UPDATE mq_workflow_steps AS s SET skip_reason = p_reason
        WHERE s.workflow_id = p_workflow AND s.step = p_step AND s.state = 'pending'
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM marked)
$$;
