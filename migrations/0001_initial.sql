-- sqlxmq_py schema, version 1.
--
-- Every object is prefixed with mq_ so that it can live in the application's own schema.
--
-- mq_jobs is the hot table: one narrow row per unfinished job, scanned and updated by runners.
-- Its `state` column says what the row is waiting for:
--
--   'r'  ready        may be leased now
--   's'  scheduled    waits for attempt_at (a delay, or a retry backoff)
--   'l'  leased       a runner holds it until attempt_at (the lease expiry) under lease_token
--   'b'  blocked      ordered job waiting for an earlier job of its chain
--   'u'  uncommitted  two-phase job waiting for mq_commit() until commit_deadline
--   'f'  failed       out of attempts; kept with its error until retried or purged
--
-- mq_payloads holds the wide, rarely updated part of each job (name, payload, error) and is read
-- only for leased jobs. Completed jobs are deleted from both tables.

CREATE TABLE mq_jobs (
    id uuid PRIMARY KEY,
    channel_name text NOT NULL,
    channel_args text NOT NULL DEFAULT '',
    state "char" NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    -- ready/scheduled: when the job may run; leased: lease expiry; failed: when it failed
    attempt_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    -- lease length for this job; NULL means the runner's default
    lease interval,
    lease_token uuid,
    -- position in the ordered chain of (channel_name, channel_args); NULL for unordered jobs
    ord_seq bigint,
    commit_deadline timestamptz,
    CONSTRAINT mq_jobs_state_check CHECK (state IN ('r', 's', 'l', 'b', 'u', 'f')),
    CONSTRAINT mq_jobs_lease_token_check CHECK ((state = 'l') = (lease_token IS NOT NULL)),
    CONSTRAINT mq_jobs_commit_deadline_check CHECK ((state = 'u') = (commit_deadline IS NOT NULL)),
    CONSTRAINT mq_jobs_attempts_check CHECK (attempts >= 0 AND max_attempts >= 1),
    CONSTRAINT mq_jobs_lease_check CHECK (lease IS NULL OR lease > interval '0')
) WITH (
    -- a queue table churns: leave room for updates and vacuum it early and often
    fillfactor = 80,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0
);

-- Runners walk this index group by group (fairness) and take the best jobs of each group.
CREATE INDEX mq_jobs_ready_idx ON mq_jobs (channel_name, channel_args, priority DESC, attempt_at)
    WHERE state = 'r';
CREATE INDEX mq_jobs_scheduled_idx ON mq_jobs (attempt_at) WHERE state = 's';
CREATE INDEX mq_jobs_scheduled_channel_idx ON mq_jobs (channel_name, attempt_at) WHERE state = 's';
CREATE INDEX mq_jobs_leased_idx ON mq_jobs (attempt_at) WHERE state = 'l';
CREATE INDEX mq_jobs_uncommitted_idx ON mq_jobs (commit_deadline) WHERE state = 'u';
CREATE INDEX mq_jobs_failed_idx ON mq_jobs (attempt_at) WHERE state = 'f';
CREATE INDEX mq_jobs_ordered_idx ON mq_jobs (channel_name, channel_args, ord_seq)
    WHERE ord_seq IS NOT NULL;

CREATE TABLE mq_payloads (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    payload_json json,
    payload_bytes bytea,
    retry_backoff interval NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_error text
) WITH (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_insert_scale_factor = 0.01,
    autovacuum_vacuum_cost_delay = 0
);

-- Positions in ordered chains. One sequence for all chains: a spawn takes its values while it
-- holds its chain's lock, so values grow in spawn order within every chain.
CREATE SEQUENCE mq_ord_seq AS bigint;

-- Runners that are waiting for work. A spawn sends NOTIFY only while some runner listening for
-- its channel is idle, so busy runners cost producers nothing at commit time. Unlogged: after a
-- crash it is empty and runners re-register within one poll interval.
CREATE UNLOGGED TABLE mq_listeners (
    id uuid PRIMARY KEY,
    channel_names text[],
    idle boolean NOT NULL DEFAULT false,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz NOT NULL DEFAULT now(),
    host text,
    pid integer
);

-- The NOTIFY channel of a job channel: a fixed-length digest, so that names of any length and
-- any characters map to a valid identifier under PostgreSQL's 63-byte limit.
CREATE FUNCTION mq_notify_channel(p_channel_name text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT 'mq_' || left(encode(sha256(convert_to(p_channel_name, 'UTF8')), 'hex'), 32)
$$;

-- Wakes idle runners for these channels. Runners listening to all channels listen on 'mq'.
-- The payload is '' for jobs that are ready and 's' for scheduled ones (the runner re-reads when
-- the next scheduled job is due). PostgreSQL folds identical notifications of one transaction.
CREATE FUNCTION mq_wake(p_channel_names text[], p_payload text DEFAULT '') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(p_channel_names) = 0 THEN
        RETURN;
    END IF;
    PERFORM pg_notify('mq', p_payload)
    WHERE EXISTS (
        SELECT 1 FROM mq_listeners
        WHERE idle AND channel_names IS NULL AND heartbeat_at > now() - interval '1 minute'
    );
    PERFORM pg_notify(mq_notify_channel(n.name), p_payload)
    FROM (SELECT DISTINCT name FROM unnest(p_channel_names) AS u(name)) AS n
    WHERE EXISTS (
        SELECT 1 FROM mq_listeners AS l
        WHERE l.idle AND n.name = ANY(l.channel_names)
          AND l.heartbeat_at > now() - interval '1 minute'
    );
END;
$$;

-- A version 7 UUID (time-ordered, so new rows land at the right edge of the primary key): 48 bits
-- of Unix milliseconds, then the version and the random bits of a version 4 UUID.
CREATE FUNCTION mq_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
            || '7' || substr(r, 14, 3) || substr(r, 17))::uuid
    FROM (SELECT replace(gen_random_uuid()::text, '-', '') AS r) AS random
$$;

-- The advisory lock that serialises ordered spawns of one chain: (class, hash of the group).
-- A hash collision only makes two chains wait for each other; it never merges them.
CREATE FUNCTION mq_chain_lock_key(p_channel_name text, p_channel_args text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT hashtext(p_channel_name || chr(31) || p_channel_args)
$$;

-- Inserts jobs; the arrays are parallel, one element per job. Runs in the caller's transaction:
-- a rollback removes the jobs and their wake-up.
--
-- Ordered jobs take a transaction-level lock on their chain, so concurrent spawners of one chain
-- queue up instead of failing, and positions follow the order in which they got the lock (and
-- array order within one call). Under READ COMMITTED a new ordered job sees every earlier job of
-- its chain and is made ready at once if it is first; under stricter isolation the snapshot
-- predates the lock, so the job starts blocked and the runners' maintenance sweep promotes it.
CREATE FUNCTION mq_insert(
    p_ids uuid[],
    p_names text[],
    p_channel_names text[],
    p_channel_args text[],
    p_payload_json text[],
    p_payload_bytes bytea[],
    p_delays interval[],
    p_max_attempts integer[],
    p_retry_backoffs interval[],
    p_leases interval[],
    p_ordered boolean[],
    p_commit_intervals interval[],
    p_priorities integer[]
) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_any_ordered boolean := true = ANY(p_ordered);
    v_fresh_snapshot boolean := current_setting('transaction_isolation') = 'read committed';
    v_seqs bigint[];
BEGIN
    IF v_any_ordered THEN
        PERFORM pg_advisory_xact_lock(1836146531, k.key)
        FROM (
            SELECT DISTINCT mq_chain_lock_key(u.cn, u.ca) AS key
            FROM unnest(p_channel_names, p_channel_args, p_ordered) AS u(cn, ca, o)
            WHERE u.o
        ) AS k
        ORDER BY k.key;
        -- taken after the locks, one value per array element, ascending in array order
        v_seqs := ARRAY(
            SELECT nextval('mq_ord_seq') FROM generate_series(1, cardinality(p_ids))
        );
    END IF;

    INSERT INTO mq_payloads (id, name, payload_json, payload_bytes, retry_backoff)
    SELECT u.id, u.name, u.pj::json, u.pb, u.rb
    FROM unnest(p_ids, p_names, p_payload_json, p_payload_bytes, p_retry_backoffs)
        AS u(id, name, pj, pb, rb);

    INSERT INTO mq_jobs (
        id, channel_name, channel_args, state, priority, attempt_at, max_attempts, lease,
        ord_seq, commit_deadline
    )
    SELECT
        u.id,
        u.cn,
        u.ca,
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
            WHEN u.delay > interval '0' THEN 's'
            ELSE 'r'
        END,
        u.prio,
        now() + u.delay,
        u.ma,
        u.lease,
        CASE WHEN u.o THEN v_seqs[u.pos] END,
        now() + u.ci
    FROM (
        SELECT
            x.*,
            row_number() OVER (PARTITION BY x.cn, x.ca, x.o ORDER BY x.pos) AS chain_rank
        FROM unnest(
            p_ids, p_channel_names, p_channel_args, p_delays, p_max_attempts, p_leases,
            p_ordered, p_commit_intervals, p_priorities
        ) WITH ORDINALITY AS x(id, cn, ca, delay, ma, lease, o, ci, prio, pos)
    ) AS u;

    PERFORM mq_wake(ARRAY(
        SELECT u.cn FROM unnest(p_channel_names, p_commit_intervals, p_delays) AS u(cn, ci, d)
        WHERE u.ci IS NULL AND u.d <= interval '0'
    ));
    PERFORM mq_wake(ARRAY(
        SELECT u.cn FROM unnest(p_channel_names, p_commit_intervals, p_delays) AS u(cn, ci, d)
        WHERE u.ci IS NULL AND u.d > interval '0'
    ), 's');
END;
$$;

-- Spawns one job from SQL (a trigger, a script, another language) and returns its id.
-- Example: SELECT mq_spawn('send_email', '{"to": "a@example.com"}', channel_name => 'emails');
CREATE FUNCTION mq_spawn(
    name text,
    payload_json json DEFAULT NULL,
    channel_name text DEFAULT '',
    channel_args text DEFAULT '',
    delay interval DEFAULT interval '0',
    retries integer DEFAULT 4,
    retry_backoff interval DEFAULT interval '1 second',
    ordered boolean DEFAULT false,
    priority integer DEFAULT 0,
    payload_bytes bytea DEFAULT NULL,
    lease interval DEFAULT NULL,
    commit_interval interval DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql AS $$
DECLARE
    v_id uuid := mq_uuid7();
BEGIN
    IF retries IS NULL OR retries < 0 THEN
        RAISE EXCEPTION 'mq_spawn: retries must be >= 0, got %', retries
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM mq_insert(
        ARRAY[v_id], ARRAY[name], ARRAY[channel_name], ARRAY[channel_args],
        ARRAY[payload_json::text], ARRAY[payload_bytes], ARRAY[delay], ARRAY[retries + 1],
        ARRAY[retry_backoff], ARRAY[lease], ARRAY[ordered], ARRAY[commit_interval],
        ARRAY[priority]
    );
    RETURN v_id;
END;
$$;

-- Makes two-phase jobs runnable (see JobBuilder.set_commit_interval) and wakes runners.
CREATE FUNCTION mq_commit(p_ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_channels text[];
BEGIN
    WITH committed AS (
        UPDATE mq_jobs AS j
        SET
            state = CASE
                WHEN j.ord_seq IS NOT NULL AND EXISTS (
                    SELECT 1 FROM mq_jobs AS e
                    WHERE e.channel_name = j.channel_name
                      AND e.channel_args = j.channel_args
                      AND e.ord_seq < j.ord_seq
                ) THEN 'b'
                WHEN j.attempt_at > now() THEN 's'
                ELSE 'r'
            END,
            commit_deadline = NULL
        WHERE j.id = ANY(p_ids) AND j.state = 'u'
        RETURNING j.channel_name
    )
    SELECT array_agg(channel_name) INTO v_channels FROM committed;
    PERFORM mq_wake(coalesce(v_channels, '{}'), 's');
END;
$$;

-- When an ordered job leaves the table (completed, cancelled, discarded), the next job of its
-- chain becomes the head. A spawner racing with this (its new job not yet visible here) is
-- covered by the runners' periodic sweep of blocked heads.
CREATE FUNCTION mq_jobs_unblock_next() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mq_jobs AS j
    SET state = CASE WHEN j.attempt_at > now() THEN 's' ELSE 'r' END
    WHERE j.id = (
            SELECT h.id FROM mq_jobs AS h
            WHERE h.channel_name = OLD.channel_name
              AND h.channel_args = OLD.channel_args
              AND h.ord_seq IS NOT NULL
            ORDER BY h.ord_seq
            LIMIT 1
        )
      AND j.state = 'b';
    IF FOUND THEN
        PERFORM mq_wake(ARRAY[OLD.channel_name], 's');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER mq_jobs_unblock_next_trg
    AFTER DELETE ON mq_jobs
    FOR EACH ROW WHEN (OLD.ord_seq IS NOT NULL)
    EXECUTE FUNCTION mq_jobs_unblock_next();

-- The first group (channel_name, channel_args) after the given one that has a ready job, in index
-- order; the first group of all when p_after_name is NULL. p_names limits the channel names (NULL:
-- all). Written as one SELECT so that the planner inlines it into the lease query: every branch
-- is a single descent of mq_jobs_ready_idx, and the branches that do not apply are pruned.
CREATE FUNCTION mq_next_ready_group(p_names text[], p_after_name text, p_after_args text)
RETURNS TABLE (channel_name text, channel_args text)
LANGUAGE sql STABLE AS $$
    (SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
      WHERE j.state = 'r' AND j.channel_name = p_after_name AND j.channel_args > p_after_args
        AND (p_names IS NULL OR p_after_name = ANY(p_names))
      ORDER BY j.channel_args LIMIT 1)
    UNION ALL
    (SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
      WHERE p_names IS NULL AND p_after_name IS NULL AND j.state = 'r'
      ORDER BY j.channel_name, j.channel_args LIMIT 1)
    UNION ALL
    (SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
      WHERE p_names IS NULL AND j.state = 'r' AND j.channel_name > p_after_name
      ORDER BY j.channel_name, j.channel_args LIMIT 1)
    UNION ALL
    (SELECT h.channel_name, h.channel_args
      FROM (SELECT DISTINCT u.n FROM unnest(p_names) AS u(n)
            WHERE p_after_name IS NULL OR u.n > p_after_name ORDER BY u.n) AS names
      CROSS JOIN LATERAL (
          SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
          WHERE j.state = 'r' AND j.channel_name = names.n
          ORDER BY j.channel_args LIMIT 1) AS h)
    LIMIT 1
$$;
