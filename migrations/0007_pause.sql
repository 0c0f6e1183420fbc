-- sqlxmq_py schema: pausing channels (sqlxmq_py.admin.pause_channel, resume_channel).
--
-- A paused channel is a row of mq_channel_limits with paused set: runners read the table with
-- the limits (every maintenance interval, and at once on the 'c' notification below) and lease
-- from a paused channel no more, as from a channel whose limit is 0; its running jobs finish.
-- A row now holds a limit, a pause or both; max_running NULL means no limit. A row with
-- neither is deleted, so the table stays the list of channels that differ from the default,
-- and runners pay for pauses and limits only while there are some.

ALTER TABLE mq_channel_limits
    ALTER COLUMN max_running DROP NOT NULL,
    ADD COLUMN paused boolean NOT NULL DEFAULT false;

-- Pauses or resumes a channel (p_paused; NULL: unchanged) and, with p_change_limit, sets its
-- limit (p_max_running; NULL: no limit). Runners of the channel are told at commit: they
-- re-read the table before their next lease.
CREATE FUNCTION mq_set_channel(
    p_channel_name text, p_paused boolean, p_change_limit boolean, p_max_running integer
) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mq_channel_limits AS l (channel_name, max_running, paused)
    VALUES (
        p_channel_name,
        CASE WHEN p_change_limit THEN p_max_running END,
        coalesce(p_paused, false)
    )
    ON CONFLICT (channel_name) DO UPDATE
    SET max_running = CASE WHEN p_change_limit THEN p_max_running ELSE l.max_running END,
        paused = coalesce(p_paused, l.paused);
    DELETE FROM mq_channel_limits AS l
    WHERE l.channel_name = p_channel_name AND l.max_running IS NULL AND NOT l.paused;
    PERFORM pg_notify('mq', 'c');
    PERFORM pg_notify(mq_notify_channel(p_channel_name), 'c');
END;
$$;

-- As in 0006 (0003's, with the leasing runner), and a paused channel leases nothing, nor does
-- one whose runners knew of a limit that is gone (until they re-read the table); a paused row
-- without a limit runs unlimited once resumed.
CREATE OR REPLACE FUNCTION mq_lease_limited(
    p_channel_name text, p_cursor_name text, p_cursor_args text, p_limit integer,
    p_default_lease interval, p_durable boolean, p_max_bytes bigint,
    p_runner uuid DEFAULT NULL
) RETURNS TABLE(
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
    v_paused boolean;
    v_running integer := 0;
BEGIN
    SELECT l.max_running, l.paused INTO v_max, v_paused FROM mq_channel_limits AS l
    WHERE l.channel_name = p_channel_name
    FOR UPDATE SKIP LOCKED;
    IF NOT FOUND OR v_paused THEN
        RETURN;
    END IF;
    IF v_max IS NOT NULL THEN
        SELECT count(*) INTO v_running FROM mq_jobs AS j
        WHERE j.state = 'l' AND j.channel_name = p_channel_name;
    END IF;
    IF least(p_limit, coalesce(v_max - v_running, p_limit)) <= 0 THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM mq_lease(
        ARRAY[p_channel_name], p_cursor_name, p_cursor_args,
        least(p_limit, coalesce(v_max - v_running, p_limit)),
        p_default_lease, '{}', p_durable, p_max_bytes, p_runner
    );
END;
$$;
