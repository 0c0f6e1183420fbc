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
-- Only the wake's payload changes, so the function is patched in place (mq_patch_function,
-- defined here for this and the later migrations that change a few lines of a long function):
-- whatever an earlier migration made of it otherwise stays.

-- Changes a few lines of a function of this schema in place: p_patches holds pairs (text,
-- replacement), and each text must occur exactly once in the function's current definition, so
-- that a patch written against another definition fails loudly instead of doing nothing or too
-- much. The function must not be overloaded.
CREATE FUNCTION mq_patch_function(p_name text, p_patches text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_def text;
    v_patch text[];
BEGIN
    SELECT pg_get_functiondef(p.oid) INTO STRICT v_def
    FROM pg_proc AS p
    WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = p_name;
    FOREACH v_patch SLICE 1 IN ARRAY p_patches LOOP
        IF (length(v_def) - length(replace(v_def, v_patch[1], ''))) <> length(v_patch[1]) THEN
            RAISE EXCEPTION '% does not hold exactly once the text to replace: %',
                p_name, v_patch[1];
        END IF;
        v_def := replace(v_def, v_patch[1], v_patch[2]);
    END LOOP;
    EXECUTE v_def;
END;
$$;
-- a tool of the migrations (run by the schema's owner), not of the application
REVOKE EXECUTE ON FUNCTION mq_patch_function(text, text[]) FROM PUBLIC;

SELECT mq_patch_function('mq_complete', ARRAY[ARRAY[
    E'WHERE l.channel_name = d.channel_name\n            )\n        ))\n',
    E'WHERE l.channel_name = d.channel_name\n            )\n        ), ''f'')\n'
]]);
