-- sqlxmq_py schema: finished-job history in daily partitions, retention by dropping whole
-- partitions (issue 12, point 9).
--
-- mq_history becomes PARTITION BY RANGE (expires_at), one partition per UTC day,
-- named mq_history_pYYYYMMDD, plus mq_history_default for rows whose day has no partition yet.
--
-- Why one day: a lookup by id (job_status, wait_for_result, payload_json, the batch trigger)
-- cannot be pruned, because the id says nothing about the expiry; it probes the primary key
-- of every partition (an index probe each, no heap read where the id is absent). So the width
-- trades how late a row goes (at most one day past its expires_at) against how many
-- partitions a lookup probes (one per day of the longest retention in use). An hour would
-- make 24 times more probes for an hour of precision that retention does not need.
--
-- Retention: the runners' upkeep (mq_maintain -> mq_history_rotate) drops every partition
-- whose day is wholly past. A row whose expires_at has passed but whose day has not stays
-- readable until its day ends: rows are never deleted one by one by the upkeep (a row DELETE
-- per kept job is what partitioning removes). purge() still deletes expired rows on request.
--
-- Partitions are created ahead: today and tomorrow on every upkeep pass (and here). A row for
-- any other day (a retain_for longer than a day, or past the end of the partitions) lands in
-- the default partition, so that an insert never fails; the next upkeep pass gives that day
-- its own partition and moves its rows there. Expired rows left in the default partition
-- (a day that never got a partition) are deleted there row by row.
--
-- Keys: a partitioned table's primary key must contain the partition key, so it is
-- (id, expires_at). Ids stay unique because they are generated, and a job is written to the
-- history once, in the statement that deletes it from the queue; the database no longer
-- enforces it across partitions. The ON CONFLICT (id) clauses of the functions that write the
-- history cannot name that key any more; they become ON CONFLICT DO NOTHING (see the end).
--
-- Rights: creating and dropping partitions needs the table's owner. mq_history_rotate is
-- SECURITY DEFINER (owned by whoever migrates), so that a runner holding only
-- mq_grant_usage() keeps its history rotated. The partitions it creates belong to the owner;
-- the application reads and writes them through mq_history, whose grants are the ones checked.

-- The old table, its rows and grants are carried over, then it goes.
ALTER TABLE mq_history RENAME TO mq_history_unpartitioned;
ALTER TABLE mq_history_unpartitioned DROP CONSTRAINT mq_history_pkey,
    DROP CONSTRAINT mq_history_state_check;
DROP INDEX mq_history_expires_idx, mq_history_finished_idx, mq_history_state_idx,
    mq_history_channel_idx, mq_history_name_idx, mq_history_job_key_idx;

CREATE TABLE mq_history (
    id uuid NOT NULL,
    name text NOT NULL,
    channel_name text NOT NULL,
    channel_args text NOT NULL,
    state text NOT NULL CHECK (state IN ('completed', 'cancelled')),
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    priority integer NOT NULL,
    job_key text,
    payload_json json,
    payload_bytes bytea,
    result json,
    last_error text,
    headers jsonb,
    created_at timestamptz NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    errors jsonb,
    PRIMARY KEY (id, expires_at)
) PARTITION BY RANGE (expires_at);
-- The same indexes as before (0002, 0004), now on every partition.
CREATE INDEX mq_history_expires_idx ON mq_history (expires_at);
CREATE INDEX mq_history_finished_idx ON mq_history (finished_at);
CREATE INDEX mq_history_state_idx ON mq_history (state, id);
CREATE INDEX mq_history_channel_idx ON mq_history (left(channel_name, 512), state, id);
CREATE INDEX mq_history_name_idx ON mq_history (left(name, 512), id);
CREATE INDEX mq_history_job_key_idx ON mq_history (left(job_key, 512), id)
    WHERE job_key IS NOT NULL;

-- Written once per row, never updated; deleted by partition.
CREATE TABLE mq_history_default PARTITION OF mq_history DEFAULT
    WITH (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_insert_scale_factor = 0.05);

-- Creates the partition of one UTC day unless it exists, moving that day's rows out of the
-- default partition into it (a partition cannot be attached while the default holds rows of
-- its range). Returns whether it created one.
CREATE FUNCTION mq_history_partition(p_day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_name text := 'mq_history_p' || to_char(p_day, 'YYYYMMDD');
    v_from timestamptz := p_day::timestamp AT TIME ZONE 'UTC';
    v_to timestamptz := (p_day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(quote_ident(v_name)) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- mq_history itself, exclusively, until commit: an insert routes its rows with the
    -- partitions it saw when its statement began, so one begun before the attach and routing
    -- after it would put a row of this day into the default partition and fail its partition
    -- constraint (ATTACH alone locks the parent more weakly). Inserts wait for this instant
    -- and then see the new partition; no row lands in the default between the move and the
    -- attach either.
    LOCK TABLE mq_history IN ACCESS EXCLUSIVE MODE;
    EXECUTE format(
        'CREATE TABLE %I (LIKE mq_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
        ' WITH (autovacuum_vacuum_scale_factor = 0.05,'
        ' autovacuum_vacuum_insert_scale_factor = 0.05)',
        v_name
    );
    EXECUTE format(
        'WITH moved AS (DELETE FROM mq_history_default AS d'
        ' WHERE d.expires_at >= $1 AND d.expires_at < $2 RETURNING d.*)'
        ' INSERT INTO %I SELECT * FROM moved',
        v_name
    ) USING v_from, v_to;
    EXECUTE format(
        'ALTER TABLE mq_history ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        v_name, v_from, v_to
    );
    RETURN true;
END;
$$;

-- The history's share of the upkeep (called by mq_maintain, one runner at a time): drops the
-- partitions of days wholly past, creates today's and tomorrow's, gives each later day found
-- in the default partition its own (up to 31 a pass), and deletes the expired rows of past
-- days left in the default partition. Returns how many partitions it dropped.
--
-- Dropping a partition locks mq_history exclusively for an instant; a transaction that wrote
-- history and is still open (a completion inside an application's transaction) holds that
-- lock off. lock_timeout keeps the upkeep from waiting (and from queueing writers behind it):
-- a drop or create that cannot lock at once is left to the next pass.
CREATE FUNCTION mq_history_rotate() RETURNS integer
LANGUAGE plpgsql
SECURITY DEFINER
SET lock_timeout = '100ms'
AS $$
DECLARE
    v_today date := (now() AT TIME ZONE 'UTC')::date;
    v_start timestamptz := (now() AT TIME ZONE 'UTC')::date::timestamp AT TIME ZONE 'UTC';
    v_name text;
    v_day date;
    v_dropped integer := 0;
BEGIN
    FOR v_name IN
        SELECT c.relname FROM pg_inherits AS i JOIN pg_class AS c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'mq_history'::regclass AND c.relname ~ '^mq_history_p[0-9]{8}$'
          AND to_date(substr(c.relname, 13), 'YYYYMMDD') < v_today
        ORDER BY c.relname
    LOOP
        BEGIN
            EXECUTE format('DROP TABLE %I', v_name);
            v_dropped := v_dropped + 1;
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            EXIT;
        END;
    END LOOP;
    FOR v_day IN
        SELECT v_today UNION SELECT v_today + 1
        UNION
        (SELECT DISTINCT (d.expires_at AT TIME ZONE 'UTC')::date FROM mq_history_default AS d
         WHERE d.expires_at >= v_start ORDER BY 1 LIMIT 31)
        ORDER BY 1
    LOOP
        BEGIN
            PERFORM mq_history_partition(v_day);
        EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
            EXIT;
        END;
    END LOOP;
    DELETE FROM mq_history_default AS d
    WHERE (d.id, d.expires_at) IN (
        SELECT x.id, x.expires_at FROM mq_history_default AS x WHERE x.expires_at < v_start
        ORDER BY x.expires_at LIMIT 5000
    );
    RETURN v_dropped;
END;
$$;
-- The owner's schema only, whatever the caller's search_path (a SECURITY DEFINER function).
DO $$
BEGIN
    EXECUTE format(
        'ALTER FUNCTION mq_history_rotate() SET search_path = %I, pg_temp', current_schema()
    );
    EXECUTE format(
        'ALTER FUNCTION mq_history_partition(date) SET search_path = %I, pg_temp',
        current_schema()
    );
END;
$$;

-- Every day the old rows expire on gets its partition, then the rows move in.
SELECT mq_history_partition(d) FROM (
    SELECT (now() AT TIME ZONE 'UTC')::date AS d
    UNION SELECT (now() AT TIME ZONE 'UTC')::date + 1
    UNION SELECT (h.expires_at AT TIME ZONE 'UTC')::date FROM mq_history_unpartitioned AS h
) AS days ORDER BY d;
INSERT INTO mq_history (
    id, name, channel_name, channel_args, state, attempts, max_attempts, priority, job_key,
    payload_json, payload_bytes, result, last_error, headers, created_at, finished_at,
    expires_at, errors
)
SELECT id, name, channel_name, channel_args, state, attempts, max_attempts, priority, job_key,
    payload_json, payload_bytes, result, last_error, headers, created_at, finished_at,
    expires_at, errors
FROM mq_history_unpartitioned;

-- The roles granted the old table (mq_grant_usage) keep the same rights on the new one.
DO $$
DECLARE
    v_grant record;
BEGIN
    FOR v_grant IN
        SELECT a.privilege_type, a.grantee
        FROM pg_class AS c, aclexplode(c.relacl) AS a
        WHERE c.oid = 'mq_history_unpartitioned'::regclass AND a.grantee <> c.relowner
    LOOP
        IF v_grant.grantee = 0 THEN
            EXECUTE format('GRANT %s ON TABLE mq_history TO PUBLIC', v_grant.privilege_type);
        ELSE
            EXECUTE format(
                'GRANT %s ON TABLE mq_history TO %I', v_grant.privilege_type,
                v_grant.grantee::regrole::text
            );
        END IF;
    END LOOP;
END;
$$;
DROP TABLE mq_history_unpartitioned;

-- The functions that write the history name ON CONFLICT (id), which no unique key matches now.
-- They are patched in place (only that clause changes) rather than restated here, so that
-- whatever an earlier migration last made of them (0008's mq_complete, 0003's mq_keep, or a
-- later redefinition) stays as it is otherwise. The upkeep (mq_maintain) likewise swaps its
-- row DELETE of expired history for mq_history_rotate(), and reports the partitions dropped
-- (event history_partitions_dropped, logged by the runner). Each patch must apply exactly.
DO $$
DECLARE
    v_fn record;
    v_old text;
    v_new text;
    v_maintain integer := 0;
BEGIN
    FOR v_fn IN
        SELECT p.oid, p.proname FROM pg_proc AS p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.prosrc ~ 'INSERT INTO mq_history\M'
    LOOP
        v_old := pg_get_functiondef(v_fn.oid);
        v_new := replace(v_old, 'ON CONFLICT (id) DO NOTHING', 'ON CONFLICT DO NOTHING');
        IF v_new <> v_old THEN
            EXECUTE v_new;
        END IF;
    END LOOP;
    FOR v_fn IN
        SELECT p.oid, p.proname FROM pg_proc AS p
        WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = 'mq_maintain'
    LOOP
        v_old := pg_get_functiondef(v_fn.oid);
        v_new := regexp_replace(
            v_old,
            'DELETE FROM mq_history AS h\s+WHERE h\.id = ANY\(ARRAY\(\s+'
            'SELECT x\.id FROM mq_history AS x WHERE x\.expires_at <= now\(\)\s+'
            'ORDER BY x\.expires_at LIMIT 5000\s+\)\);',
            '-- expired history goes by whole partitions (0013)' || E'\n'
            '    v_count := mq_history_rotate();' || E'\n'
            '    IF v_count > 0 THEN' || E'\n'
            '        RETURN QUERY SELECT ''history_partitions_dropped'', NULL::uuid, NULL::text,'
            ' NULL::integer, NULL::boolean, v_count;' || E'\n'
            '    END IF;'
        );
        IF v_new = v_old THEN
            RAISE EXCEPTION 'mq_maintain does not delete expired history as 0013 expects';
        END IF;
        EXECUTE v_new;
        v_maintain := v_maintain + 1;
    END LOOP;
    IF v_maintain <> 1 THEN
        RAISE EXCEPTION 'expected one mq_maintain, found %', v_maintain;
    END IF;
    IF EXISTS (
        SELECT 1 FROM pg_proc AS p
        WHERE p.pronamespace = current_schema()::regnamespace
          AND p.prosrc ~ 'INSERT INTO mq_history\M' AND p.prosrc ~ 'ON CONFLICT \(id\)'
    ) THEN
        RAISE EXCEPTION 'a function still writes mq_history with ON CONFLICT (id)';
    END IF;
END;
$$;
