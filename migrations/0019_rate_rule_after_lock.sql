-- sqlxmq_py schema: a lease judges rate keys by their rules as they are once it holds the keys'
-- windows (issue 13 follow-up).
--
-- mq_rate_admit read each key's rule, then locked the keys' windows. A rule change
-- (mq_rate_change) locks the same windows first, so a lease that read a rule while a change
-- was under way waited for it at the windows, and then judged its jobs by the rule it had read:
-- a loosened rule still deferred them (to the instant the old rule allowed), after the change
-- had already woken the jobs it knew of. It now reads the rules again once the windows are
-- held: a change that committed while it waited is what it judges by, and a key whose rule went
-- away meanwhile is not limited. (A key given its first rule while the lease waited was not
-- locked and is judged unlimited by this lease: the rule counts from the next one.)
--
-- A prefix rule's change could not wait so for a lease that was making the window of a key under
-- the prefix for the first time (the change does not see that uncommitted row), and the jobs the
-- lease deferred by the old rule kept their instant. So the admission also takes a shared
-- transaction-level advisory lock, and a change of a rule (one that changes something) an
-- exclusive one, before anything else: a change waits for every lease judging rate keys at that
-- moment, then sees and wakes their deferrals; a lease that comes during a change waits for it,
-- then reads the new rules. Leases of jobs without rate keys never take it; a lease judging keys
-- takes it once, in memory (no row is written for it).
--
-- mq_rate_admit and mq_rate_change are patched in place (mq_patch_function, 0016); each patch
-- must apply exactly once.
SELECT mq_patch_function('mq_rate_admit', ARRAY[
    ARRAY[
        E'        EXIT WHEN v_locked = cardinality(v_keys);\n    END LOOP;\n',
        E'        EXIT WHEN v_locked = cardinality(v_keys);\n    END LOOP;\n'
        '    -- the rules as they are now that the windows are held (migration 0019): a rule\n'
        '    -- change locks them first, so one committed while this lease waited is seen\n'
        '    SELECT coalesce(array_agg(r.max_starts ORDER BY k.n), ''{}''),\n'
        '        coalesce(array_agg(r.period ORDER BY k.n), ''{}'')\n'
        '    INTO v_max, v_period\n'
        '    FROM unnest(v_keys) WITH ORDINALITY AS k(key, n)\n'
        '    LEFT JOIN LATERAL mq_rate_rule(k.key) AS r ON true;\n'
    ],
    ARRAY[
        'CONTINUE WHEN v_i IS NULL;  -- no rule: not limited',
        'CONTINUE WHEN v_i IS NULL OR v_max[v_i] IS NULL;  -- no rule: not limited'
    ],
    ARRAY[
        E'                WHERE k.key = ANY(v_keys)\n            ) AS r',
        E'                WHERE k.key = ANY(v_keys)\n'
        '                  AND v_max[array_position(v_keys, k.key)] IS NOT NULL\n'
        '            ) AS r'
    ],
    ARRAY[
        E'BEGIN\n    SELECT array_agg(k.key ORDER BY k.key), array_agg(r.max_starts ORDER BY k.key),',
        E'BEGIN\n'
        '    -- shared with other leases, exclusive with rule changes (mq_rate_change)\n'
        '    PERFORM pg_advisory_xact_lock_shared(1836146536, 0);\n'
        '    SELECT array_agg(k.key ORDER BY k.key), array_agg(r.max_starts ORDER BY k.key),'
    ]
]);

SELECT mq_patch_function('mq_rate_change', ARRAY[ARRAY[
    E'        RETURN QUERY SELECT true, 0;\n        RETURN;\n    END IF;\n',
    E'        RETURN QUERY SELECT true, 0;\n        RETURN;\n    END IF;\n'
    '    -- every lease judging rate keys now finishes first; later ones wait for this one\n'
    '    PERFORM pg_advisory_xact_lock(1836146536, 0);\n'
]]);
