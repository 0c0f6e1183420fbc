-- sqlxmq_py schema: interrupted attempts are their own outcome (issue 13 point 5, graceful
-- deploys).
--
-- A runner told to stop hands its unfinished jobs back: the attempt is not counted and the job
-- is ready at once. The hand-back is now recorded on the job, as an entry of its errors list
-- marked "interrupted" with the runner that was stopping (host:pid), so that its status, the
-- dashboard and the CLI show how often and when it was interrupted, also once it is kept in the
-- history (which copies the list). Only the hand-back writes it: completions are unchanged.
-- The runners count interrupted attempts per minute in mq_stats beside the other outcomes.

ALTER TABLE mq_stats ADD COLUMN interrupted bigint NOT NULL DEFAULT 0;

-- p_errors with an interrupted attempt appended (the newest 25 entries are kept, as
-- mq_add_error does): {"attempt", "at", "error", "interrupted": by}.
CREATE FUNCTION mq_add_interruption(p_errors jsonb, p_attempt integer, p_by text)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_agg(x.e ORDER BY x.n)
    FROM (
        SELECT a.e, a.n
        FROM jsonb_array_elements(
            coalesce(p_errors, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
                'attempt', p_attempt, 'at', now(),
                'error', 'interrupted: its runner stopped before the job finished',
                'interrupted', coalesce(left(p_by, 200), '')
            ))
        ) WITH ORDINALITY AS a(e, n)
        ORDER BY a.n DESC
        LIMIT 25
    ) AS x
$$;

-- Hands leases back without using up an attempt (a runner stopping before its jobs finished,
-- or one that could not start them). With p_started (the attempts ran and were interrupted),
-- each job records the interruption with p_by (the runner's host:pid). A job someone asked to
-- cancel is cancelled instead: a deploy does not run it again. Returns each job with
-- 'interrupted' or 'cancelled'; a caller that passes no p_by (a runner of an older version,
-- during a rolling deploy) gets 'released' as before, and its hand-backs are still recorded.
DROP FUNCTION mq_release(uuid[], uuid[]);
CREATE FUNCTION mq_release(
    p_ids uuid[], p_tokens uuid[], p_by text DEFAULT NULL, p_started boolean DEFAULT true
)
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
        RETURNING j.id, j.channel_name, j.attempts + 1 AS attempt
    ), noted AS (
        -- by an array of ids, not a join: a join may be planned as a walk of every payload
        UPDATE mq_payloads AS p
        SET errors = mq_add_interruption(
            p.errors, (SELECT r.attempt FROM released AS r WHERE r.id = p.id), p_by
        )
        WHERE p_started AND p.id = ANY(ARRAY(SELECT r.id FROM released AS r))
    ), woken AS (
        SELECT mq_wake(ARRAY(SELECT r.channel_name FROM released AS r))
    )
    SELECT r.id, CASE WHEN p_by IS NULL THEN 'released' ELSE 'interrupted' END
    FROM released AS r, woken;
    RETURN QUERY
    SELECT c, 'cancelled'::text
    FROM mq_cancel_now(
        v_cancel, 'cancelled while running (its runner stopped before it finished)', v_tokens
    ) AS c;
END;
$$;
