-- sqlxmq_py schema: the rule that sets a new job's state, written once (issue 11).
--
-- A job starts (or, made runnable again, restarts) in the first of these states that applies:
--
--   'u' uncommitted  spawned with a commit interval (two-phase), until mq_commit;
--   'w' waiting      a parent of it is still in the queue;
--   'b' blocked      an earlier job of its ordered chain (channel, args) is still queued;
--   's' scheduled    its time (delay, run_at, retry backoff) has not come;
--   'r' ready        otherwise.
--
-- That order was spelled out in mq_runnable_state, three times in mq_insert and twice in the
-- plain insert statements of the library. mq_new_state now holds it; each caller works out the
-- facts it knows (a plain spawn knows it has no parents and no chain) and asks. It is a plain
-- SQL function, so PostgreSQL inlines it into the statement that calls it: a subquery given as
-- a fact is still evaluated only when the states before it do not apply.
--
-- mq_insert is patched in place (mq_patch_function, 0016): only its state rules change, and
-- each patch must apply exactly once. The library's own statements (insert_one,
-- insert_plain) call mq_new_state from this migration on. The Python mirror that picks the jobs
-- COPY may write as ready (job_to_write.initial_state) is tested against this function.

CREATE FUNCTION mq_new_state(
    p_uncommitted boolean, p_waiting boolean, p_blocked boolean, p_at timestamptz
) RETURNS "char"
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (CASE
        WHEN p_uncommitted THEN 'u'
        WHEN p_waiting THEN 'w'
        WHEN p_blocked THEN 'b'
        WHEN p_at > now() THEN 's'
        ELSE 'r'
    END)::"char"
$$;

CREATE OR REPLACE FUNCTION mq_runnable_state(
    p_id uuid, p_channel_name text, p_channel_args text, p_ord_seq bigint,
    p_attempt_at timestamptz
) RETURNS "char"
LANGUAGE sql STABLE AS $$
    SELECT mq_new_state(
        false,
        EXISTS (SELECT 1 FROM mq_deps AS d WHERE d.child_id = p_id),
        p_ord_seq IS NOT NULL AND EXISTS (
            SELECT 1 FROM mq_jobs AS e
            WHERE e.channel_name = p_channel_name AND e.channel_args = p_channel_args
              AND e.ord_seq < p_ord_seq
        ),
        p_attempt_at
    )
$$;

SELECT mq_patch_function('mq_insert', ARRAY[
    -- a keyed job's provisional state (its own is set with the others, below)
    ARRAY[
        'CASE WHEN p_commit_intervals[i] IS NULL THEN ''r'' ELSE ''u'' END,',
        'mq_new_state(p_commit_intervals[i] IS NOT NULL, false, false, NULL),'
    ],
    -- the jobs without a key
    ARRAY[
        E'CASE\n            WHEN u.ci IS NOT NULL THEN ''u''\n            WHEN u.o AND ('
        '\n                u.chain_rank > 1',
        E'mq_new_state(\n            u.ci IS NOT NULL,\n            false,\n'
        '            u.o AND (\n                u.chain_rank > 1'
    ],
    ARRAY[
        E'            ) THEN ''b''\n'
        '            WHEN coalesce(u.run_at, now() + u.delay) > now() THEN ''s''\n'
        '            ELSE ''r''\n        END,',
        E'            ),\n            coalesce(u.run_at, now() + u.delay)\n        ),'
    ],
    -- the keyed jobs that were new
    ARRAY[
        E'SET state = CASE\n'
        '            WHEN j.commit_deadline IS NOT NULL THEN ''u''\n'
        '            WHEN j.ord_seq IS NOT NULL AND NOT v_fresh_snapshot THEN ''b''\n'
        '            ELSE mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, j.attempt_at)\n'
        '        END',
        E'SET state = mq_new_state(\n'
        '            j.commit_deadline IS NOT NULL,\n'
        '            EXISTS (SELECT 1 FROM mq_deps AS d WHERE d.child_id = j.id),\n'
        '            j.ord_seq IS NOT NULL AND (NOT v_fresh_snapshot OR EXISTS (\n'
        '                SELECT 1 FROM mq_jobs AS e\n'
        '                WHERE e.channel_name = j.channel_name\n'
        '                  AND e.channel_args = j.channel_args AND e.ord_seq < j.ord_seq\n'
        '            )),\n'
        '            j.attempt_at\n'
        '        )'
    ]
]);
