-- sqlxmq_py schema: batches, groups of jobs with callbacks (sqlxmq_py.batch).
--
-- A batch is a row of mq_batches with its members' counts. Members are ordinary jobs whose
-- mq_jobs.batch_id names the batch, each with a row of mq_batch_members that records how it
-- ended (and its result or error). Callbacks are ordinary jobs spawned with the batch and
-- parked in the waiting state 'w' (with no parent: nothing but the batch releases them), whose
-- ids the batch row holds; the batch releases each at most once:
--
--   on_discard  at the first member that ends without completing (failed for good, cancelled)
--   on_finish   when the batch is sealed and no member is left pending, whatever the outcome
--   on_success  the same, when every member completed
--
-- A callback whose moment never comes (on_success when some member did not complete,
-- on_discard when all completed) is cancelled when the batch finishes, with that reason.
--
-- How a member's end is counted exactly once, whatever races it:
-- - Triggers on mq_jobs (only for rows with a batch_id, by their WHEN clause, so other jobs
--   pay nothing) record the member's end on its own mq_batch_members row: completed (it left
--   the queue with a completed history row), cancelled (it left otherwise), failed (its state
--   became 'f'), or pending again (a failed member retried by hand). Every way a job ends
--   already goes through these row changes, so no settling function is replaced.
-- - A deferred constraint trigger on mq_batch_members applies each change to the batch's
--   counts when the member's transaction commits, under the batch row's lock, and there
--   decides, with compare-and-set latches on the batch row (discarded_at, finished_at), which
--   callbacks to release. Two members ending at the same instant in two transactions: the
--   second waits for the first's commit and then sees its count. A rolled-back settlement
--   counts nothing. A member that fails and is retried is not counted until its last attempt
--   ends (a retried attempt changes no member row).
-- - Deferred, the lock is held from the commit's start to its end only, never while a
--   caller's transaction that completes a member does its other work; and a transaction that
--   settles members of several batches locks all their rows at once, in id order, so two such
--   transactions cannot deadlock.
-- - Adding members takes the batch's lock and refuses a batch that finished; a batch spawned
--   unsealed cannot finish (nor release on_success) until it is sealed.

ALTER TABLE mq_jobs ADD COLUMN IF NOT EXISTS batch_id uuid;

CREATE TABLE IF NOT EXISTS mq_batches (
    id uuid PRIMARY KEY,
    total integer NOT NULL DEFAULT 0,
    pending integer NOT NULL DEFAULT 0,
    completed integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    cancelled integer NOT NULL DEFAULT 0,
    sealed boolean NOT NULL DEFAULT false,
    on_success uuid,
    on_finish uuid,
    on_discard uuid,
    -- how long the batch (and its members' results) is kept once it finished
    retain_for interval NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    discarded_at timestamptz,
    finished_at timestamptz,
    expires_at timestamptz,
    CONSTRAINT mq_batches_counts_check CHECK (
        pending >= 0 AND completed >= 0 AND failed >= 0 AND cancelled >= 0
        AND total = pending + completed + failed + cancelled
    ),
    CONSTRAINT mq_batches_finished_check CHECK (finished_at IS NULL OR (sealed AND pending = 0))
);
CREATE INDEX IF NOT EXISTS mq_batches_expires_idx ON mq_batches (expires_at)
    WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS mq_batch_members (
    job_id uuid PRIMARY KEY,
    batch_id uuid NOT NULL REFERENCES mq_batches (id) ON DELETE CASCADE,
    -- NULL while the member has not ended
    state text CHECK (state IN ('completed', 'failed', 'cancelled')),
    result json,
    error text,
    finished_at timestamptz
);
CREATE INDEX IF NOT EXISTS mq_batch_members_batch_idx ON mq_batch_members (batch_id, job_id);

-- Notes the batch as touched by this transaction (a transaction-local setting, rolled back
-- with a savepoint), so that its settlement at commit locks every touched batch at once.
CREATE OR REPLACE FUNCTION mq_batch_touch(p_batch uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_touched text := coalesce(current_setting('mq.batches_touched', true), '');
BEGIN
    IF strpos(v_touched, p_batch::text) = 0 THEN
        PERFORM set_config('mq.batches_touched', v_touched || p_batch::text || ',', true);
    END IF;
END;
$$;

-- Releases a callback (a job parked in 'w' by its batch): it runs at once, or at its own run
-- time if that is later.
CREATE OR REPLACE FUNCTION mq_batch_release(p_job uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_channel text;
BEGIN
    IF p_job IS NULL THEN
        RETURN;
    END IF;
    UPDATE mq_jobs AS j
    SET attempt_at = greatest(j.attempt_at, now()),
        state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq,
                                  greatest(j.attempt_at, now()))
    WHERE j.id = p_job AND j.state = 'w'
    RETURNING j.channel_name INTO v_channel;
    IF FOUND THEN
        PERFORM mq_wake(ARRAY[v_channel], 's');
    END IF;
END;
$$;

-- Releases what the batch's counts call for, once each (see the top of this file). The caller
-- holds the batch row's lock; the latches make a second call a no-op all the same.
CREATE OR REPLACE FUNCTION mq_batch_settle(p_batch uuid) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v mq_batches%ROWTYPE;
BEGIN
    UPDATE mq_batches AS b SET discarded_at = now()
    WHERE b.id = p_batch AND b.discarded_at IS NULL AND b.failed + b.cancelled > 0
    RETURNING b.* INTO v;
    IF FOUND THEN
        PERFORM mq_batch_release(v.on_discard);
    END IF;
    UPDATE mq_batches AS b SET finished_at = now(), expires_at = now() + b.retain_for
    WHERE b.id = p_batch AND b.finished_at IS NULL AND b.sealed AND b.pending = 0
    RETURNING b.* INTO v;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM mq_batch_release(v.on_finish);
    IF v.failed + v.cancelled = 0 THEN
        PERFORM mq_batch_release(v.on_success);
    ELSE
        PERFORM mq_cancel_now(
            ARRAY(SELECT c FROM unnest(ARRAY[v.on_success]) AS c WHERE c IS NOT NULL),
            'batch ' || p_batch || ' finished with ' || v.failed || ' failed and '
                || v.cancelled || ' cancelled members'
        );
    END IF;
    IF v.discarded_at IS NULL THEN
        -- (a batch whose failed member was retried by hand into completing keeps the
        -- on_discard it already released)
        PERFORM mq_cancel_now(
            ARRAY(SELECT c FROM unnest(ARRAY[v.on_discard]) AS c WHERE c IS NOT NULL),
            'batch ' || p_batch || ' completed: no member was discarded'
        );
    END IF;
END;
$$;

-- Applies one member's change to its batch's counts, at commit (deferred), and settles it.
CREATE OR REPLACE FUNCTION mq_batch_members_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_touched text := coalesce(current_setting('mq.batches_touched', true), '');
BEGIN
    IF v_touched <> '' THEN
        -- every batch this transaction touched, locked in one order (no deadlock between two
        -- transactions that settle members of the same batches)
        PERFORM 1 FROM mq_batches AS b
        WHERE b.id = ANY(string_to_array(rtrim(v_touched, ','), ',')::uuid[])
        ORDER BY b.id
        FOR NO KEY UPDATE;
        PERFORM set_config('mq.batches_touched', '', true);
    END IF;
    UPDATE mq_batches AS b
    SET pending = b.pending - (OLD.state IS NULL)::integer + (NEW.state IS NULL)::integer,
        completed = b.completed + (NEW.state IS NOT DISTINCT FROM 'completed')::integer
            - (OLD.state IS NOT DISTINCT FROM 'completed')::integer,
        failed = b.failed + (NEW.state IS NOT DISTINCT FROM 'failed')::integer
            - (OLD.state IS NOT DISTINCT FROM 'failed')::integer,
        cancelled = b.cancelled + (NEW.state IS NOT DISTINCT FROM 'cancelled')::integer
            - (OLD.state IS NOT DISTINCT FROM 'cancelled')::integer
    WHERE b.id = NEW.batch_id;
    IF FOUND THEN
        PERFORM mq_batch_settle(NEW.batch_id);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS mq_batch_members_changed_trg ON mq_batch_members;
CREATE CONSTRAINT TRIGGER mq_batch_members_changed_trg
    AFTER UPDATE OF state ON mq_batch_members
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
    EXECUTE FUNCTION mq_batch_members_changed();

-- A member left the queue: completed if it left a completed history row (members are always
-- kept), cancelled otherwise (mq_cancel_now, a two-phase discard, or a DELETE by hand). A
-- failed member that is purged stays counted as failed.
CREATE OR REPLACE FUNCTION mq_jobs_batch_member_gone() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_state text;
    v_result json;
    v_error text;
BEGIN
    IF current_setting('mq.replacing', true) = 'on'
       OR (OLD.state = 'f' AND current_setting('mq.cancelling', true) IS DISTINCT FROM 'on') THEN
        RETURN NULL;
    END IF;
    SELECT h.state, h.result, h.last_error INTO v_state, v_result, v_error
    FROM mq_history AS h WHERE h.id = OLD.id;
    IF v_state IS DISTINCT FROM 'completed' THEN
        v_state := 'cancelled';
        v_result := NULL;
        v_error := coalesce(v_error, 'deleted from the queue');
    END IF;
    UPDATE mq_batch_members AS m
    SET state = v_state, result = v_result, error = v_error, finished_at = now()
    WHERE m.job_id = OLD.id AND m.state IS DISTINCT FROM v_state;
    IF FOUND THEN
        PERFORM mq_batch_touch(OLD.batch_id);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS mq_jobs_batch_member_gone_trg ON mq_jobs;
CREATE TRIGGER mq_jobs_batch_member_gone_trg
    AFTER DELETE ON mq_jobs
    FOR EACH ROW WHEN (OLD.batch_id IS NOT NULL)
    EXECUTE FUNCTION mq_jobs_batch_member_gone();

-- A member failed for good (out of attempts), or a failed member was retried by hand and is
-- pending again.
CREATE OR REPLACE FUNCTION mq_jobs_batch_member_failed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = 'f' THEN
        UPDATE mq_batch_members AS m
        SET state = 'failed', result = NULL, finished_at = now(),
            error = (SELECT p.last_error FROM mq_payloads AS p WHERE p.id = NEW.id)
        WHERE m.job_id = NEW.id;
    ELSE
        UPDATE mq_batch_members AS m
        SET state = NULL, result = NULL, error = NULL, finished_at = NULL
        WHERE m.job_id = NEW.id;
    END IF;
    IF FOUND THEN
        PERFORM mq_batch_touch(NEW.batch_id);
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS mq_jobs_batch_member_failed_trg ON mq_jobs;
CREATE TRIGGER mq_jobs_batch_member_failed_trg
    AFTER UPDATE OF state ON mq_jobs
    FOR EACH ROW WHEN (NEW.batch_id IS NOT NULL AND (OLD.state = 'f') <> (NEW.state = 'f'))
    EXECUTE FUNCTION mq_jobs_batch_member_failed();

-- Makes jobs just inserted in this transaction (by the library's usual spawn statement, in
-- the same round trip) members and callbacks of a batch. With p_create, the batch is new;
-- otherwise it must exist and not have finished (it is locked first: members settling
-- concurrently wait, and then count the new members as pending). p_members are the members'
-- ids in spawn order (those not kept in the history are kept for the batch's retain_for, so
-- that their results reach it); a member already gone (a continuation whose parent had failed, cancelled
-- by its own spawn) is counted as cancelled. p_callbacks holds the ids of on_success,
-- on_finish and on_discard (NULL where none). With p_seal, the batch is sealed. Returns the
-- batch's counts.
CREATE OR REPLACE FUNCTION mq_batch_link(
    p_batch uuid,
    p_create boolean,
    p_members uuid[],
    p_callbacks uuid[],
    p_retain_for interval,
    p_seal boolean
) RETURNS SETOF mq_batches
LANGUAGE plpgsql AS $$
DECLARE
    v mq_batches%ROWTYPE;
    v_linked uuid[];
    v_gone uuid[];
BEGIN
    IF p_create THEN
        -- expired batches go as new ones come: no sweeper needed
        DELETE FROM mq_batches AS b
        WHERE b.id = ANY(ARRAY(
            SELECT x.id FROM mq_batches AS x WHERE x.expires_at <= now()
            ORDER BY x.expires_at LIMIT 100
        ));
        INSERT INTO mq_batches (id, on_success, on_finish, on_discard, retain_for)
        VALUES (p_batch, p_callbacks[1], p_callbacks[2], p_callbacks[3], p_retain_for)
        RETURNING * INTO v;
        UPDATE mq_jobs AS j SET state = 'w'
        WHERE j.id = ANY(p_callbacks) AND j.state IN ('r', 's');
    ELSE
        SELECT * INTO v FROM mq_batches AS b WHERE b.id = p_batch FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'batch % does not exist (or expired)', p_batch
                USING ERRCODE = 'MQB01';
        END IF;
        IF v.finished_at IS NOT NULL THEN
            RAISE EXCEPTION 'batch % already finished at %', p_batch, v.finished_at
                USING ERRCODE = 'MQB02';
        END IF;
    END IF;
    WITH linked AS (
        UPDATE mq_jobs AS j SET batch_id = p_batch
        WHERE j.id = ANY(p_members) AND j.batch_id IS NULL
        RETURNING j.id
    )
    SELECT coalesce(array_agg(l.id), '{}') INTO v_linked FROM linked AS l;
    v_gone := ARRAY(SELECT unnest(p_members) EXCEPT SELECT unnest(v_linked));
    IF NOT p_create THEN
        -- members added later are kept as long as the batch's first ones (spawn sets those)
        UPDATE mq_payloads AS p SET retain_for = v.retain_for
        WHERE p.id = ANY(v_linked) AND coalesce(p.retain_for, interval '0') <= interval '0';
    END IF;
    INSERT INTO mq_batch_members (job_id, batch_id, state, error, finished_at)
    SELECT u.id, p_batch,
        CASE WHEN u.id = ANY(v_gone) THEN 'cancelled' END,
        CASE WHEN u.id = ANY(v_gone) THEN coalesce(
            (SELECT h.last_error FROM mq_history AS h WHERE h.id = u.id),
            'gone before it joined the batch'
        ) END,
        CASE WHEN u.id = ANY(v_gone) THEN now() END
    FROM unnest(p_members) AS u(id);
    UPDATE mq_batches AS b
    SET total = b.total + cardinality(p_members),
        pending = b.pending + cardinality(v_linked),
        cancelled = b.cancelled + cardinality(v_gone),
        sealed = b.sealed OR p_seal
    WHERE b.id = p_batch;
    PERFORM mq_batch_settle(p_batch);
    RETURN QUERY SELECT * FROM mq_batches AS b WHERE b.id = p_batch;
END;
$$;

-- Seals a batch: it may finish once no member is pending (at once, if none is). Raises for an
-- unknown batch, and for one that has no member (it could never be anything but empty).
CREATE OR REPLACE FUNCTION mq_batch_seal(p_batch uuid) RETURNS SETOF mq_batches
LANGUAGE plpgsql AS $$
DECLARE
    v mq_batches%ROWTYPE;
BEGIN
    SELECT * INTO v FROM mq_batches AS b WHERE b.id = p_batch FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'batch % does not exist (or expired)', p_batch USING ERRCODE = 'MQB01';
    END IF;
    IF v.total = 0 THEN
        RAISE EXCEPTION 'batch % has no member to wait for', p_batch USING ERRCODE = 'MQB03';
    END IF;
    UPDATE mq_batches AS b SET sealed = true WHERE b.id = p_batch AND NOT b.sealed;
    PERFORM mq_batch_settle(p_batch);
    RETURN QUERY SELECT * FROM mq_batches AS b WHERE b.id = p_batch;
END;
$$;
