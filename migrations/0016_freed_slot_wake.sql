-- sqlxmq_py schema: a completion that frees a slot of a limited channel says so (issue 11).
--
-- mq_complete wakes the idle runners of a limited channel when one of its jobs completes: a
-- slot is free, and the jobs its limit held back may run. It sent the payload a spawn sends
-- (''), so a runner could not tell "a job is ready" from "a slot may be free", and every
-- completion of its own woke it once more: when that notice came after its next lease had
-- already taken the slot, it leased again at the next job's return and found the channel
-- full, an empty round trip for about every other job. The notice now carries 'f' (freed):
-- a runner that already holds as many of its limited channels' jobs as their limits allow
-- ignores it; any other runner (and one that does not know 'f') leases as before.
--
-- Only the wake's payload changes, so the function is patched in place, as 0013 patched it:
-- whatever an earlier migration made of it otherwise stays. The patch must apply exactly once.
DO $$
DECLARE
    v_old text;
    v_new text;
BEGIN
    SELECT pg_get_functiondef(p.oid) INTO STRICT v_old
    FROM pg_proc AS p
    WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = 'mq_complete';
    v_new := regexp_replace(
        v_old,
        '(SELECT mq_wake\(ARRAY\(\s+SELECT DISTINCT d\.channel_name FROM done AS d\s+'
        'WHERE EXISTS \(\s+SELECT 1 FROM mq_channel_limits AS l '
        'WHERE l\.channel_name = d\.channel_name\s+\)\s+\))\)',
        '\1, ''f'')'
    );
    IF v_new = v_old THEN
        RAISE EXCEPTION 'mq_complete does not wake the runners of a limited channel as 0016 expects';
    END IF;
    EXECUTE v_new;
END;
$$;
