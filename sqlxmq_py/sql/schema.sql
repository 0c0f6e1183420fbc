-- The sqlxmq_py schema as the migrations (migrations/*.sql, applied in order) leave it: every
-- table, sequence, index, function and trigger, in a stable order, without owners or grants.
-- Generated: do not edit. Change a migration, then run python -m sqlxmq_py.schema --dsn <DSN>

-- tables

CREATE TABLE mq_batch_members (
    job_id uuid NOT NULL,
    batch_id uuid NOT NULL,
    state text,
    result json,
    error text,
    finished_at timestamp with time zone,
    CONSTRAINT mq_batch_members_batch_id_fkey FOREIGN KEY (batch_id) REFERENCES mq_batches(id) ON DELETE CASCADE,
    CONSTRAINT mq_batch_members_changed_trg TRIGGER DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT mq_batch_members_pkey PRIMARY KEY (job_id),
    CONSTRAINT mq_batch_members_state_check CHECK ((state = ANY (ARRAY['completed'::text, 'failed'::text, 'cancelled'::text])))
);

CREATE TABLE mq_batches (
    id uuid NOT NULL,
    total integer NOT NULL DEFAULT 0,
    pending integer NOT NULL DEFAULT 0,
    completed integer NOT NULL DEFAULT 0,
    failed integer NOT NULL DEFAULT 0,
    cancelled integer NOT NULL DEFAULT 0,
    sealed boolean NOT NULL DEFAULT false,
    on_success uuid,
    on_finish uuid,
    on_discard uuid,
    retain_for interval NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    discarded_at timestamp with time zone,
    finished_at timestamp with time zone,
    expires_at timestamp with time zone,
    CONSTRAINT mq_batches_counts_check CHECK (((pending >= 0) AND (completed >= 0) AND (failed >= 0) AND (cancelled >= 0) AND (total = (((pending + completed) + failed) + cancelled)))),
    CONSTRAINT mq_batches_finished_check CHECK (((finished_at IS NULL) OR (sealed AND (pending = 0)))),
    CONSTRAINT mq_batches_pkey PRIMARY KEY (id)
);

CREATE TABLE mq_channel_limits (
    channel_name text NOT NULL,
    max_running integer,
    paused boolean NOT NULL DEFAULT false,
    CONSTRAINT mq_channel_limits_max_running_check CHECK ((max_running >= 0)),
    CONSTRAINT mq_channel_limits_pkey PRIMARY KEY (channel_name)
);

CREATE TABLE mq_deps (
    parent_id uuid NOT NULL,
    child_id uuid NOT NULL,
    CONSTRAINT mq_deps_pkey PRIMARY KEY (parent_id, child_id)
);

CREATE TABLE mq_history (
    id uuid NOT NULL,
    name text NOT NULL,
    channel_name text NOT NULL,
    channel_args text NOT NULL,
    state text NOT NULL,
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    priority integer NOT NULL,
    job_key text,
    payload_json json,
    payload_bytes bytea,
    result json,
    last_error text,
    headers jsonb,
    created_at timestamp with time zone NOT NULL,
    finished_at timestamp with time zone NOT NULL DEFAULT now(),
    expires_at timestamp with time zone NOT NULL,
    errors jsonb,
    CONSTRAINT mq_history_pkey PRIMARY KEY (id, expires_at),
    CONSTRAINT mq_history_state_check CHECK ((state = ANY (ARRAY['completed'::text, 'cancelled'::text])))
) PARTITION BY RANGE (expires_at);

CREATE TABLE mq_history_default PARTITION OF mq_history DEFAULT WITH (autovacuum_vacuum_scale_factor=0.05, autovacuum_vacuum_insert_scale_factor=0.05);

CREATE TABLE mq_jobs (
    id uuid NOT NULL,
    channel_name text NOT NULL,
    channel_args text NOT NULL DEFAULT ''::text,
    state "char" NOT NULL,
    priority integer NOT NULL DEFAULT 0,
    attempt_at timestamp with time zone NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    lease interval,
    lease_token uuid,
    ord_seq bigint,
    commit_deadline timestamp with time zone,
    job_key text,
    has_children boolean NOT NULL DEFAULT false,
    cancel_requested boolean NOT NULL DEFAULT false,
    payload_size integer NOT NULL DEFAULT 0,
    batch_id uuid,
    leased_by uuid,
    leased_at timestamp with time zone,
    rate_keys text[],
    workflow_id uuid,
    CONSTRAINT mq_jobs_attempt_at_bound_check CHECK ((attempt_at < '9000-01-01 00:00:00+00'::timestamp with time zone)),
    CONSTRAINT mq_jobs_attempts_check CHECK (((attempts >= 0) AND (max_attempts >= 1))),
    CONSTRAINT mq_jobs_channel_args_length CHECK ((octet_length(channel_args) <= 1000)) NOT VALID,
    CONSTRAINT mq_jobs_channel_name_length CHECK ((octet_length(channel_name) <= 1000)) NOT VALID,
    CONSTRAINT mq_jobs_commit_deadline_check CHECK (((state = 'u'::"char") = (commit_deadline IS NOT NULL))),
    CONSTRAINT mq_jobs_job_key_length CHECK ((octet_length(job_key) <= 2000)) NOT VALID,
    CONSTRAINT mq_jobs_lease_bound_check CHECK ((lease <= '36525 days'::interval)),
    CONSTRAINT mq_jobs_lease_check CHECK (((lease IS NULL) OR (lease > '00:00:00'::interval))),
    CONSTRAINT mq_jobs_lease_token_check CHECK (((state = 'l'::"char") = (lease_token IS NOT NULL))),
    CONSTRAINT mq_jobs_payload_size_check CHECK ((payload_size >= 0)),
    CONSTRAINT mq_jobs_pkey PRIMARY KEY (id),
    CONSTRAINT mq_jobs_state_check CHECK ((state = ANY (ARRAY['r'::"char", 's'::"char", 'l'::"char", 'b'::"char", 'u'::"char", 'f'::"char", 'w'::"char", 'n'::"char"])))
) WITH (fillfactor=80, autovacuum_vacuum_scale_factor=0.01, autovacuum_vacuum_threshold=1000, autovacuum_vacuum_insert_scale_factor=0.01, autovacuum_analyze_scale_factor=0.02, autovacuum_vacuum_cost_delay=0);

CREATE UNLOGGED TABLE mq_listeners (
    id uuid NOT NULL,
    channel_names text[],
    idle boolean NOT NULL DEFAULT false,
    heartbeat_at timestamp with time zone NOT NULL DEFAULT now(),
    started_at timestamp with time zone NOT NULL DEFAULT now(),
    host text,
    pid integer,
    version text,
    min_concurrency integer,
    max_concurrency integer,
    CONSTRAINT mq_listeners_pkey PRIMARY KEY (id)
);

CREATE TABLE mq_migrations (
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone NOT NULL DEFAULT now(),
    CONSTRAINT mq_migrations_pkey PRIMARY KEY (name)
);

CREATE TABLE mq_payloads (
    id uuid NOT NULL,
    name text NOT NULL,
    payload_json json,
    payload_bytes bytea,
    retry_backoff interval NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    last_error text,
    retain_for interval,
    dead_letter text,
    dead_letter_channel text,
    notify_done boolean NOT NULL DEFAULT false,
    run_after_failed_parents boolean NOT NULL DEFAULT false,
    headers jsonb,
    errors jsonb,
    CONSTRAINT mq_payloads_pkey PRIMARY KEY (id)
) WITH (autovacuum_vacuum_scale_factor=0.01, autovacuum_vacuum_threshold=1000, autovacuum_vacuum_insert_scale_factor=0.01, autovacuum_vacuum_cost_delay=0);

CREATE TABLE mq_rate_limits (
    key_pattern text NOT NULL,
    max_starts integer NOT NULL,
    period interval NOT NULL,
    CONSTRAINT mq_rate_limits_max_starts_check CHECK ((max_starts > 0)),
    CONSTRAINT mq_rate_limits_period_check CHECK ((period > '00:00:00'::interval)),
    CONSTRAINT mq_rate_limits_pkey PRIMARY KEY (key_pattern)
);

CREATE TABLE mq_rate_windows (
    rate_key text NOT NULL,
    starts timestamp with time zone[] NOT NULL,
    idle_at timestamp with time zone NOT NULL,
    CONSTRAINT mq_rate_windows_pkey PRIMARY KEY (rate_key)
) WITH (fillfactor=70);

CREATE TABLE mq_schedules (
    name text NOT NULL,
    cron text NOT NULL,
    timezone text NOT NULL DEFAULT 'UTC'::text,
    job_name text NOT NULL,
    channel_name text NOT NULL DEFAULT ''::text,
    channel_args text NOT NULL DEFAULT ''::text,
    payload_json json,
    max_attempts integer NOT NULL DEFAULT 5,
    retry_backoff interval NOT NULL DEFAULT '00:00:01'::interval,
    priority integer NOT NULL DEFAULT 0,
    lease interval,
    retain_for interval,
    dead_letter text,
    dead_letter_channel text,
    ordered boolean NOT NULL DEFAULT false,
    backfill interval NOT NULL DEFAULT '00:00:00'::interval,
    last_tick timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL DEFAULT now(),
    enabled boolean NOT NULL DEFAULT true,
    last_spawned_tick timestamp with time zone,
    rate_keys text[],
    CONSTRAINT mq_schedules_pkey PRIMARY KEY (name)
);

CREATE TABLE mq_stats (
    bucket timestamp with time zone NOT NULL,
    channel_name text NOT NULL,
    completed bigint NOT NULL DEFAULT 0,
    retried bigint NOT NULL DEFAULT 0,
    failed bigint NOT NULL DEFAULT 0,
    interrupted bigint NOT NULL DEFAULT 0,
    CONSTRAINT mq_stats_pkey PRIMARY KEY (bucket, channel_name)
);

CREATE TABLE mq_throttle (
    job_key text NOT NULL,
    job_id uuid NOT NULL,
    until timestamp with time zone NOT NULL,
    CONSTRAINT mq_throttle_pkey PRIMARY KEY (job_key)
);

CREATE TABLE mq_workflow_edges (
    workflow_id uuid NOT NULL,
    child text NOT NULL,
    parent text NOT NULL,
    CONSTRAINT mq_workflow_edges_pkey PRIMARY KEY (workflow_id, child, parent),
    CONSTRAINT mq_workflow_edges_workflow_id_child_fkey FOREIGN KEY (workflow_id, child) REFERENCES mq_workflow_steps(workflow_id, step) ON DELETE CASCADE,
    CONSTRAINT mq_workflow_edges_workflow_id_parent_fkey FOREIGN KEY (workflow_id, parent) REFERENCES mq_workflow_steps(workflow_id, step) ON DELETE CASCADE
);

CREATE TABLE mq_workflow_groups (
    workflow_id uuid NOT NULL,
    step_group text NOT NULL,
    max_running integer,
    CONSTRAINT mq_workflow_groups_max_running_check CHECK ((max_running > 0)),
    CONSTRAINT mq_workflow_groups_pkey PRIMARY KEY (workflow_id, step_group),
    CONSTRAINT mq_workflow_groups_workflow_id_fkey FOREIGN KEY (workflow_id) REFERENCES mq_workflows(id) ON DELETE CASCADE
);

CREATE TABLE mq_workflow_steps (
    workflow_id uuid NOT NULL,
    step text NOT NULL,
    seq integer NOT NULL,
    job_id uuid NOT NULL,
    job_name text NOT NULL,
    on_parent_failure text NOT NULL,
    step_group text,
    state text NOT NULL DEFAULT 'waiting'::text,
    held_by text,
    skip_reason text,
    result json,
    error text,
    job_gone boolean NOT NULL DEFAULT false,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    finished_at timestamp with time zone,
    CONSTRAINT mq_workflow_steps_changed_trg TRIGGER DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT mq_workflow_steps_job_id_key UNIQUE (job_id),
    CONSTRAINT mq_workflow_steps_on_parent_failure_check CHECK ((on_parent_failure = ANY (ARRAY['cancel'::text, 'skip'::text, 'run'::text]))),
    CONSTRAINT mq_workflow_steps_pkey PRIMARY KEY (workflow_id, step),
    CONSTRAINT mq_workflow_steps_state_check CHECK ((state = ANY (ARRAY['waiting'::text, 'pending'::text, 'completed'::text, 'failed'::text, 'cancelled'::text, 'skipped'::text]))),
    CONSTRAINT mq_workflow_steps_workflow_id_fkey FOREIGN KEY (workflow_id) REFERENCES mq_workflows(id) ON DELETE CASCADE
);

CREATE TABLE mq_workflows (
    id uuid NOT NULL,
    name text NOT NULL,
    retain_for interval NOT NULL,
    created_at timestamp with time zone NOT NULL DEFAULT now(),
    cancelled_at timestamp with time zone,
    cancel_reason text,
    finished_at timestamp with time zone,
    expires_at timestamp with time zone,
    CONSTRAINT mq_workflows_pkey PRIMARY KEY (id)
);

-- sequences

CREATE SEQUENCE mq_ord_seq AS bigint INCREMENT 1 MINVALUE 1 MAXVALUE 9223372036854775807 START 1 CACHE 1;

-- indexes

CREATE INDEX mq_batch_members_batch_idx ON public.mq_batch_members USING btree (batch_id, job_id);

CREATE INDEX mq_batches_expires_idx ON public.mq_batches USING btree (expires_at) WHERE (expires_at IS NOT NULL);

CREATE INDEX mq_deps_child_idx ON public.mq_deps USING btree (child_id);

CREATE INDEX mq_history_channel_idx ON ONLY public.mq_history USING btree ("left"(channel_name, 512), state, id);

CREATE INDEX mq_history_expires_idx ON ONLY public.mq_history USING btree (expires_at);

CREATE INDEX mq_history_finished_idx ON ONLY public.mq_history USING btree (finished_at);

CREATE INDEX mq_history_job_key_idx ON ONLY public.mq_history USING btree ("left"(job_key, 512), id) WHERE (job_key IS NOT NULL);

CREATE INDEX mq_history_name_idx ON ONLY public.mq_history USING btree ("left"(name, 512), id);

CREATE INDEX mq_history_state_idx ON ONLY public.mq_history USING btree (state, id);

CREATE INDEX mq_jobs_admin_idx ON public.mq_jobs USING btree ((
CASE
    WHEN ((state = 's'::"char") AND (attempts > 0)) THEN 't'::"char"
    ELSE state
END), channel_name, id) INCLUDE (state, attempts) WHERE ((state <> 'l'::"char") AND (attempts >= 0));

CREATE INDEX mq_jobs_failed_idx ON public.mq_jobs USING btree (attempt_at) WHERE (state = 'f'::"char");

CREATE UNIQUE INDEX mq_jobs_job_key_idx ON public.mq_jobs USING btree (job_key) WHERE (job_key IS NOT NULL);

CREATE INDEX mq_jobs_leased_idx ON public.mq_jobs USING btree (attempt_at) WHERE (state = 'l'::"char");

CREATE INDEX mq_jobs_ordered_idx ON public.mq_jobs USING btree (channel_name, channel_args, ord_seq) WHERE (ord_seq IS NOT NULL);

CREATE INDEX mq_jobs_parked_idx ON public.mq_jobs USING btree (id) WHERE (state = 'n'::"char");

CREATE INDEX mq_jobs_ready_idx ON public.mq_jobs USING btree (channel_name, channel_args, priority DESC, attempt_at) WHERE (state = 'r'::"char");

CREATE INDEX mq_jobs_scheduled_channel_idx ON public.mq_jobs USING btree (channel_name, attempt_at) WHERE (state = 's'::"char");

CREATE INDEX mq_jobs_scheduled_idx ON public.mq_jobs USING btree (attempt_at) WHERE (state = 's'::"char");

CREATE INDEX mq_jobs_uncommitted_idx ON public.mq_jobs USING btree (commit_deadline) WHERE (state = 'u'::"char");

CREATE INDEX mq_payloads_name_idx ON public.mq_payloads USING btree ("left"(name, 512), id) WHERE (name IS NOT NULL);

CREATE INDEX mq_rate_windows_idle_idx ON public.mq_rate_windows USING btree (idle_at);

CREATE INDEX mq_throttle_until_idx ON public.mq_throttle USING btree (until);

CREATE INDEX mq_workflow_edges_parent_idx ON public.mq_workflow_edges USING btree (workflow_id, parent);

CREATE INDEX mq_workflow_steps_state_idx ON public.mq_workflow_steps USING btree (workflow_id, state);

CREATE INDEX mq_workflow_steps_waiting_free_idx ON public.mq_workflow_steps USING btree (workflow_id, seq) WHERE ((state = 'waiting'::text) AND (step_group IS NULL));

CREATE INDEX mq_workflow_steps_waiting_idx ON public.mq_workflow_steps USING btree (workflow_id, step_group, seq) WHERE (state = 'waiting'::text);

CREATE INDEX mq_workflows_created_idx ON public.mq_workflows USING btree (created_at);

CREATE INDEX mq_workflows_expires_idx ON public.mq_workflows USING btree (expires_at) WHERE (expires_at IS NOT NULL);

CREATE INDEX mq_workflows_open_idx ON public.mq_workflows USING btree (id) WHERE (finished_at IS NULL);

-- functions

CREATE OR REPLACE FUNCTION public.mq_add_error(p_errors jsonb, p_attempt integer, p_error text)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
    SELECT jsonb_agg(x.e ORDER BY x.n)
    FROM (
        SELECT a.e, a.n
        FROM jsonb_array_elements(
            coalesce(p_errors, '[]'::jsonb) || jsonb_build_array(jsonb_build_object(
                'attempt', p_attempt, 'at', now(), 'error', left(p_error, 4000)
            ))
        ) WITH ORDINALITY AS a(e, n)
        ORDER BY a.n DESC
        LIMIT 25
    ) AS x
$function$;

CREATE OR REPLACE FUNCTION public.mq_add_interruption(p_errors jsonb, p_attempt integer, p_by text)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_batch_link(p_batch uuid, p_create boolean, p_members uuid[], p_callbacks uuid[], p_retain_for interval, p_seal boolean)
 RETURNS SETOF mq_batches
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_batch_members_changed()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_batch_release(p_job uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_batch_seal(p_batch uuid)
 RETURNS SETOF mq_batches
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_batch_settle(p_batch uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_batch_touch(p_batch uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_touched text := coalesce(current_setting('mq.batches_touched', true), '');
BEGIN
    IF strpos(v_touched, p_batch::text) = 0 THEN
        PERFORM set_config('mq.batches_touched', v_touched || p_batch::text || ',', true);
    END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_cancel(p_ids uuid[], p_reason text DEFAULT 'cancelled'::text)
 RETURNS TABLE(id uuid, outcome text)
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM mq_workflow_lock_jobs(p_ids);
    RETURN QUERY
        UPDATE mq_jobs AS j SET cancel_requested = true
        WHERE j.id = ANY(p_ids) AND j.state = 'l'
        RETURNING j.id, 'requested'::text;
    RETURN QUERY SELECT c, 'cancelled'::text FROM mq_cancel_now(p_ids, p_reason) AS c;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_cancel_now(p_ids uuid[], p_reason text, p_tokens uuid[] DEFAULT NULL::uuid[], p_expired boolean DEFAULT false, p_reasons text[] DEFAULT NULL::text[])
 RETURNS SETOF uuid
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_previous text := current_setting('mq.cancelling', true);
    v_ids uuid[];
BEGIN
    IF coalesce(cardinality(p_ids), 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM mq_workflow_lock_jobs(p_ids);
    PERFORM mq_lock_chains(p_ids);
    v_ids := ARRAY(
        SELECT j.id FROM mq_jobs AS j
        WHERE j.id = ANY(p_ids)
          AND (j.state <> 'l'
               OR j.lease_token = ANY(p_tokens)
               OR (p_expired AND j.attempt_at <= now()))
          AND (p_tokens IS NULL OR j.state = 'l')
        ORDER BY j.id
        FOR UPDATE
    );
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;
    PERFORM mq_keep(v_ids, 'cancelled', p_reason, interval '7 days', p_ids, p_reasons);
    PERFORM pg_notify('mq_done', p.id::text) FROM mq_payloads AS p
    WHERE p.id = ANY(v_ids) AND p.notify_done;
    DELETE FROM mq_deps WHERE child_id = ANY(v_ids);
    -- the triggers see this setting: the jobs leave as cancelled, not completed
    PERFORM set_config('mq.cancelling', 'on', true);
    DELETE FROM mq_jobs WHERE id = ANY(v_ids);
    PERFORM set_config('mq.cancelling', coalesce(v_previous, ''), true);
    DELETE FROM mq_payloads WHERE id = ANY(v_ids);
    RETURN QUERY SELECT unnest(v_ids);
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_chain_lock_key(p_channel_name text, p_channel_args text)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
    SELECT hashtext(p_channel_name || chr(31) || p_channel_args)
$function$;

CREATE OR REPLACE FUNCTION public.mq_commit(p_ids uuid[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_channels text[];
BEGIN
    WITH committed AS (
        UPDATE mq_jobs AS j
        SET state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, j.attempt_at),
            commit_deadline = NULL
        WHERE j.id = ANY(p_ids) AND j.state = 'u'
        RETURNING j.channel_name
    )
    SELECT array_agg(channel_name) INTO v_channels FROM committed;
    PERFORM mq_wake(coalesce(v_channels, '{}'), 's');
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_complete(p_ids uuid[], p_tokens uuid[], p_results text[], p_default_retain interval, p_wait boolean DEFAULT true)
 RETURNS TABLE(id uuid, outcome text)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
#variable_conflict use_column
DECLARE
    v_ids uuid[];
BEGIN
    PERFORM mq_workflow_lock_jobs(p_ids);
    IF p_wait THEN
        v_ids := ARRAY(
            SELECT j.id FROM mq_jobs AS j
            JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
            WHERE j.id = ANY(p_ids) AND j.lease_token = t.token
            ORDER BY j.id
            FOR UPDATE OF j
        );
    ELSE
        v_ids := ARRAY(
            SELECT j.id FROM mq_jobs AS j
            JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
            WHERE j.id = ANY(p_ids) AND j.lease_token = t.token
            FOR UPDATE OF j SKIP LOCKED
        );
    END IF;
    RETURN QUERY
    WITH t AS (
        SELECT * FROM unnest(p_ids, p_results) AS t(id, result)
    ), done AS (
        DELETE FROM mq_jobs AS j
        WHERE j.id = ANY(v_ids)
        RETURNING j.id, j.channel_name, j.channel_args, j.attempts, j.max_attempts,
            j.priority, j.job_key
    ), payloads AS (
        DELETE FROM mq_payloads AS p
        WHERE p.id = ANY(v_ids)
        RETURNING p.id, p.name, p.payload_json, p.payload_bytes, p.headers, p.created_at,
            p.retain_for, p.notify_done, p.errors
    ), kept AS (
        INSERT INTO mq_history (
            id, name, channel_name, channel_args, state, attempts, max_attempts, priority,
            job_key, payload_json, payload_bytes, result, headers, created_at, expires_at, errors
        )
        SELECT r.id, r.name, d.channel_name, d.channel_args, 'completed', d.attempts,
            d.max_attempts, d.priority, d.job_key, r.payload_json, r.payload_bytes,
            t.result::json, r.headers, r.created_at,
            now() + coalesce(r.retain_for, p_default_retain), r.errors
        FROM payloads AS r
        JOIN done AS d ON d.id = r.id
        JOIN t ON t.id = r.id
        WHERE coalesce(r.retain_for, p_default_retain) > interval '0'
        ON CONFLICT DO NOTHING
    ), notified AS (
        SELECT pg_notify('mq_done', r.id::text) FROM payloads AS r WHERE r.notify_done
    ), limited AS (
        -- a slot of a limited channel is free: runners waiting for one may lease again
        SELECT mq_wake(ARRAY(
            SELECT DISTINCT d.channel_name FROM done AS d
            WHERE EXISTS (
                SELECT 1 FROM mq_channel_limits AS l WHERE l.channel_name = d.channel_name
            )
        ), 'f')
    )
    SELECT d.id, 'completed'::text FROM done AS d, (SELECT count(*) FROM notified) AS n, limited;
    IF NOT p_wait AND cardinality(v_ids) < cardinality(p_ids) THEN
        RETURN QUERY
        SELECT j.id, 'busy'::text FROM mq_jobs AS j
        JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
        WHERE j.id = ANY(p_ids) AND j.lease_token = t.token AND NOT (j.id = ANY(v_ids));
    END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_expire_leases()
 RETURNS TABLE(job_id uuid, job_name text, attempt integer, final boolean)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH held AS MATERIALIZED (
        -- the workflows of the steps whose last attempt expired, without waiting:
        -- the jobs of those another transaction holds are left for a later run
        SELECT mq_workflow_lock_jobs(ARRAY(
            SELECT j.id FROM mq_jobs AS j
            WHERE j.state = 'l' AND j.attempt_at <= now() AND NOT j.cancel_requested
              AND j.workflow_id IS NOT NULL AND j.attempts >= j.max_attempts
            ORDER BY j.attempt_at
            LIMIT 1000
        ), false) AS ids
    ), expired AS (
        SELECT j.id FROM mq_jobs AS j
        WHERE j.state = 'l' AND j.attempt_at <= now() AND NOT j.cancel_requested
          AND NOT EXISTS (SELECT 1 FROM held AS h WHERE j.id = ANY(h.ids))
        ORDER BY j.attempt_at
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    ), updated AS (
        UPDATE mq_jobs AS j
        SET state = CASE WHEN j.attempts >= j.max_attempts THEN 'f' ELSE 'r' END,
            lease_token = NULL,
            attempt_at = now()
        WHERE j.id = ANY(ARRAY(SELECT e.id FROM expired AS e))
        RETURNING j.id, j.state, j.attempts, j.channel_name
    ), errors AS (
        INSERT INTO mq_payloads AS p (id, name, retry_backoff, last_error, errors)
        SELECT u.id, 'sqlxmq:missing-payload', interval '1 second',
            'lease expired during attempt ' || u.attempts,
            mq_add_error(NULL, u.attempts, 'lease expired during attempt ' || u.attempts)
        FROM updated AS u
        ON CONFLICT (id) DO UPDATE
        SET last_error = excluded.last_error,
            errors = mq_add_error(p.errors, (excluded.errors -> 0 ->> 'attempt')::integer,
                                  excluded.last_error)
        RETURNING p.id, p.name
    ), woken AS (
        SELECT mq_wake(ARRAY(SELECT u.channel_name FROM updated AS u WHERE u.state = 'r'))
    )
    SELECT u.id, e.name, u.attempts, u.state = 'f'
    FROM updated AS u JOIN errors AS e ON e.id = u.id, woken;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_fail(p_ids uuid[], p_tokens uuid[], p_delays interval[], p_errors text[], p_wait boolean DEFAULT true)
 RETURNS TABLE(id uuid, outcome text)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
#variable_conflict use_column
DECLARE
    v_ids uuid[];
    v_cancel uuid[];
    v_tokens uuid[];
    v_reasons text[];
BEGIN
    PERFORM mq_workflow_lock_jobs(p_ids);
    IF p_wait THEN
        v_ids := ARRAY(
            SELECT j.id FROM mq_jobs AS j
            JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
            WHERE j.id = ANY(p_ids) AND j.lease_token = t.token
            ORDER BY j.id
            FOR UPDATE OF j
        );
    ELSE
        v_ids := ARRAY(
            SELECT j.id FROM mq_jobs AS j
            JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
            WHERE j.id = ANY(p_ids) AND j.lease_token = t.token
            FOR UPDATE OF j SKIP LOCKED
        );
    END IF;
    SELECT coalesce(array_agg(j.id ORDER BY j.id), '{}'),
        coalesce(array_agg(j.lease_token ORDER BY j.id), '{}'),
        coalesce(array_agg('cancelled while running: ' || t.error ORDER BY j.id), '{}')
    INTO v_cancel, v_tokens, v_reasons
    FROM mq_jobs AS j
    JOIN unnest(p_ids, p_errors) AS t(id, error) ON t.id = j.id
    WHERE j.id = ANY(v_ids) AND j.cancel_requested;
    RETURN QUERY
    WITH t AS (
        SELECT * FROM unnest(p_ids, p_delays, p_errors) AS t(id, delay, error)
    ), failed AS (
        UPDATE mq_jobs AS j
        SET state = CASE
                WHEN j.attempts >= j.max_attempts THEN 'f'
                WHEN t.delay > interval '0' THEN 's'
                ELSE 'r'
            END,
            attempt_at = CASE
                WHEN j.attempts >= j.max_attempts OR t.delay <= interval '0' THEN now()
                ELSE now() + t.delay
            END,
            lease_token = NULL
        FROM t
        WHERE j.id = ANY(v_ids) AND NOT (j.id = ANY(v_cancel)) AND t.id = j.id
        RETURNING j.id, j.state, j.channel_name, j.attempts, t.error
    ), errors AS (
        -- an upsert: a job written without its payload row still gets its error recorded
        INSERT INTO mq_payloads AS p (id, name, retry_backoff, last_error, errors)
        SELECT f.id, 'sqlxmq:missing-payload', interval '1 second', f.error,
            mq_add_error(NULL, f.attempts, f.error)
        FROM failed AS f
        ON CONFLICT (id) DO UPDATE
        SET last_error = excluded.last_error,
            errors = mq_add_error(p.errors, (excluded.errors -> 0 ->> 'attempt')::integer,
                                  excluded.last_error)
    ), limited AS (
        SELECT mq_wake(ARRAY(
            SELECT DISTINCT f.channel_name FROM failed AS f
            WHERE EXISTS (
                SELECT 1 FROM mq_channel_limits AS l WHERE l.channel_name = f.channel_name
            )
        ))
    )
    SELECT f.id, f.state::text FROM failed AS f, limited;
    IF cardinality(v_cancel) > 0 THEN
        RETURN QUERY
        SELECT c, 'c'::text
        FROM mq_cancel_now(v_cancel, 'cancelled while running', v_tokens, false, v_reasons) AS c;
    END IF;
    IF NOT p_wait THEN
        RETURN QUERY
        SELECT j.id, 'busy'::text FROM mq_jobs AS j
        JOIN unnest(p_ids, p_tokens) AS t(id, token) ON t.id = j.id
        WHERE j.id = ANY(p_ids) AND j.lease_token = t.token AND NOT (j.id = ANY(v_ids));
    END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_grant_usage(p_role text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_name text;
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), p_role);
    FOR v_name IN
        SELECT c.relname FROM pg_class AS c
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('r', 'p') AND c.relname LIKE 'mq\_%'
          AND c.relname <> 'mq_migrations'
    LOOP
        EXECUTE format(
            'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %I.%I TO %I',
            current_schema(), v_name, p_role
        );
    END LOOP;
    EXECUTE format(
        'GRANT USAGE, SELECT, UPDATE ON SEQUENCE %I.mq_ord_seq TO %I', current_schema(), p_role
    );
    -- the migration record is the owner's: readable (to check the schema version), not writable
    IF to_regclass('mq_migrations') IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON TABLE %I.mq_migrations TO %I', current_schema(), p_role);
    END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_group_after_any(p_after_name text, p_after_args text)
 RETURNS TABLE(channel_name text, channel_args text)
 LANGUAGE sql
 STABLE
AS $function$
    (SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
      WHERE j.state = 'r' AND j.channel_name = p_after_name AND j.channel_args > p_after_args
      ORDER BY j.channel_args LIMIT 1)
    UNION ALL
    (SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
      WHERE j.state = 'r' AND j.channel_name > p_after_name
      ORDER BY j.channel_name, j.channel_args LIMIT 1)
    LIMIT 1
$function$;

CREATE OR REPLACE FUNCTION public.mq_group_after_in(p_names text[], p_after_name text, p_after_args text)
 RETURNS TABLE(channel_name text, channel_args text)
 LANGUAGE sql
 STABLE
AS $function$
    (SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
      WHERE j.state = 'r' AND j.channel_name = p_after_name AND j.channel_args > p_after_args
        AND p_after_name = ANY(p_names)
      ORDER BY j.channel_args LIMIT 1)
    UNION ALL
    (SELECT h.channel_name, h.channel_args
      FROM (SELECT DISTINCT u.n FROM unnest(p_names) AS u(n)
            WHERE u.n > p_after_name ORDER BY u.n) AS names
      CROSS JOIN LATERAL (
          SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
          WHERE j.state = 'r' AND j.channel_name = names.n
          ORDER BY j.channel_args LIMIT 1) AS h)
    LIMIT 1
$function$;

CREATE OR REPLACE FUNCTION public.mq_group_first_any()
 RETURNS TABLE(channel_name text, channel_args text)
 LANGUAGE sql
 STABLE
AS $function$
    SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
    WHERE j.state = 'r' ORDER BY j.channel_name, j.channel_args LIMIT 1
$function$;

CREATE OR REPLACE FUNCTION public.mq_group_first_in(p_names text[])
 RETURNS TABLE(channel_name text, channel_args text)
 LANGUAGE sql
 STABLE
AS $function$
    SELECT h.channel_name, h.channel_args
    FROM (SELECT DISTINCT u.n FROM unnest(p_names) AS u(n) ORDER BY u.n) AS names
    CROSS JOIN LATERAL (
        SELECT j.channel_name, j.channel_args FROM mq_jobs AS j
        WHERE j.state = 'r' AND j.channel_name = names.n
        ORDER BY j.channel_args LIMIT 1) AS h
    LIMIT 1
$function$;

CREATE OR REPLACE FUNCTION public.mq_history_partition(p_day date)
 RETURNS boolean
 LANGUAGE plpgsql
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_history_rotate()
 RETURNS integer
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET lock_timeout TO '100ms'
 SET search_path TO 'public', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_insert(p_ids uuid[], p_names text[], p_channel_names text[], p_channel_args text[], p_payload_json text[], p_payload_bytes bytea[], p_delays interval[], p_run_ats timestamp with time zone[], p_max_attempts integer[], p_retry_backoffs interval[], p_leases interval[], p_ordered boolean[], p_commit_intervals interval[], p_priorities integer[], p_job_keys text[], p_job_key_modes text[], p_throttles interval[], p_retain_fors interval[], p_dead_letters text[], p_dead_letter_channels text[], p_run_after_failed_parents boolean[], p_dep_positions integer[], p_dep_parents uuid[], p_headers jsonb[])
 RETURNS TABLE(pos integer, id uuid)
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_n integer := cardinality(p_ids);
    v_ids uuid[] := p_ids;
    v_new boolean[] := array_fill(true, ARRAY[v_n]);
    v_replaced boolean[] := array_fill(false, ARRAY[v_n]);
    v_fresh_snapshot boolean := current_setting('transaction_isolation') = 'read committed';
    v_seqs bigint[];
    v_old mq_jobs%ROWTYPE;
    v_window_job uuid;
    v_at timestamptz;
    v_children uuid[];
    i integer;
BEGIN
    IF true = ANY(p_ordered) THEN
        PERFORM pg_advisory_xact_lock(1836146531, k.key)
        FROM (
            SELECT DISTINCT mq_chain_lock_key(u.cn, u.ca) AS key
            FROM unnest(p_channel_names, p_channel_args, p_ordered) AS u(cn, ca, o)
            WHERE u.o
        ) AS k
        ORDER BY k.key;
        v_seqs := ARRAY(SELECT nextval('mq_ord_seq') FROM generate_series(1, v_n));
    END IF;

    -- keyed and throttled jobs, one at a time (unkeyed jobs are inserted in bulk below); a
    -- keyed job is complete (payload included) when its turn ends, so a later job of the same
    -- call with the same key finds it
    FOR i IN 1 .. v_n LOOP
        CONTINUE WHEN p_job_keys[i] IS NULL;
        v_new[i] := false;
        IF p_throttles[i] IS NOT NULL THEN
            INSERT INTO mq_throttle AS t (job_key, job_id, until)
            VALUES (p_job_keys[i], p_ids[i], now() + p_throttles[i])
            ON CONFLICT (job_key) DO UPDATE
                SET job_id = excluded.job_id, until = excluded.until
                WHERE t.until <= now();
            IF NOT FOUND THEN
                SELECT t.job_id INTO STRICT v_window_job FROM mq_throttle AS t
                WHERE t.job_key = p_job_keys[i];
                v_ids[i] := v_window_job;
                CONTINUE;
            END IF;
        END IF;
        LOOP
            SELECT j.* INTO v_old FROM mq_jobs AS j WHERE j.job_key = p_job_keys[i] FOR UPDATE;
            IF NOT FOUND THEN
                INSERT INTO mq_jobs AS j (
                    id, channel_name, channel_args, state, priority, attempt_at, max_attempts,
                    lease, ord_seq, commit_deadline, job_key, payload_size
                )
                VALUES (
                    p_ids[i], p_channel_names[i], p_channel_args[i],
                    mq_new_state(p_commit_intervals[i] IS NOT NULL, false, false, NULL),
                    p_priorities[i],
                    coalesce(p_run_ats[i], now() + p_delays[i]), p_max_attempts[i],
                    p_leases[i], CASE WHEN p_ordered[i] THEN v_seqs[i] END,
                    now() + p_commit_intervals[i], p_job_keys[i],
                    mq_payload_size(p_payload_json[i], p_payload_bytes[i])
                )
                ON CONFLICT (job_key) WHERE job_key IS NOT NULL DO NOTHING;
                IF FOUND THEN
                    v_new[i] := true;  -- its state is set with the others, below
                    v_ids[i] := p_ids[i];
                    INSERT INTO mq_payloads (
                        id, name, payload_json, payload_bytes, retry_backoff, retain_for,
                        dead_letter, dead_letter_channel, run_after_failed_parents, headers
                    )
                    VALUES (
                        p_ids[i], p_names[i], p_payload_json[i]::json, p_payload_bytes[i],
                        p_retry_backoffs[i], p_retain_fors[i], p_dead_letters[i],
                        p_dead_letter_channels[i], p_run_after_failed_parents[i], p_headers[i]
                    );
                    EXIT;
                END IF;
                CONTINUE;  -- a concurrent spawn took the key first: look again
            END IF;
            v_ids[i] := v_old.id;
            EXIT WHEN p_job_key_modes[i] = 'unsafe_dedupe';
            IF v_old.state IN ('l', 'u') THEN
                -- never change a job under its runner, nor one its spawner has yet to commit:
                -- it gives the key up and this spawn makes a new job
                UPDATE mq_jobs SET job_key = NULL WHERE mq_jobs.id = v_old.id;
                CONTINUE;
            END IF;
            v_replaced[i] := true;
            v_at := CASE
                WHEN p_job_key_modes[i] = 'preserve_run_at' AND v_old.state <> 'f'
                THEN v_old.attempt_at
                ELSE coalesce(p_run_ats[i], now() + p_delays[i])
            END;
            PERFORM set_config('mq.replacing', 'on', true);
            DELETE FROM mq_jobs AS j WHERE j.id = v_old.id;
            PERFORM set_config('mq.replacing', '', true);
            INSERT INTO mq_jobs (
                id, channel_name, channel_args, state, priority, attempt_at, attempts,
                max_attempts, lease, ord_seq, job_key, has_children, payload_size
            )
            VALUES (
                v_old.id, v_old.channel_name, v_old.channel_args,
                CASE
                    WHEN v_old.state IN ('r', 's', 'f')
                    THEN mq_runnable_state(
                        v_old.id, v_old.channel_name, v_old.channel_args, v_old.ord_seq, v_at
                    )
                    ELSE v_old.state
                END,
                p_priorities[i], v_at,
                CASE WHEN v_old.state = 'f' THEN 0 ELSE v_old.attempts END,
                CASE WHEN v_old.state = 'f' THEN 0 ELSE v_old.attempts END + p_max_attempts[i],
                p_leases[i], v_old.ord_seq, p_job_keys[i], v_old.has_children,
                mq_payload_size(p_payload_json[i], p_payload_bytes[i])
            );
            UPDATE mq_payloads AS p
            SET name = p_names[i],
                headers = p_headers[i],
                payload_json = p_payload_json[i]::json,
                payload_bytes = p_payload_bytes[i],
                retry_backoff = p_retry_backoffs[i],
                retain_for = p_retain_fors[i],
                dead_letter = p_dead_letters[i],
                dead_letter_channel = p_dead_letter_channels[i],
                run_after_failed_parents = p_run_after_failed_parents[i]
            WHERE p.id = v_old.id;
            EXIT;
        END LOOP;
        IF p_throttles[i] IS NOT NULL THEN
            -- the window stands for the job that does this work: new, or replaced
            UPDATE mq_throttle SET job_id = v_ids[i] WHERE job_key = p_job_keys[i];
        END IF;
    END LOOP;

    INSERT INTO mq_payloads (
        id, name, payload_json, payload_bytes, retry_backoff, retain_for, dead_letter,
        dead_letter_channel, run_after_failed_parents, headers
    )
    SELECT v_ids[u.pos], u.name, u.pj::json, u.pb, u.rb, u.rf, u.dl, u.dlc, u.rafp, u.h
    FROM unnest(
        p_names, p_payload_json, p_payload_bytes, p_retry_backoffs, p_retain_fors,
        p_dead_letters, p_dead_letter_channels, p_run_after_failed_parents, p_headers,
        p_job_keys
    ) WITH ORDINALITY AS u(name, pj, pb, rb, rf, dl, dlc, rafp, h, k, pos)
    WHERE u.k IS NULL;

    -- states: uncommitted, blocked behind an earlier ordered job, scheduled, or ready
    INSERT INTO mq_jobs (
        id, channel_name, channel_args, state, priority, attempt_at, max_attempts, lease,
        ord_seq, commit_deadline, payload_size
    )
    SELECT
        u.id, u.cn, u.ca,
        mq_new_state(
            u.ci IS NOT NULL,
            false,
            u.o AND (
                u.chain_rank > 1
                OR NOT v_fresh_snapshot
                OR EXISTS (
                    SELECT 1 FROM mq_jobs AS e
                    WHERE e.channel_name = u.cn AND e.channel_args = u.ca
                      AND e.ord_seq IS NOT NULL
                )
            ),
            coalesce(u.run_at, now() + u.delay)
        ),
        u.prio,
        coalesce(u.run_at, now() + u.delay),
        u.ma,
        u.lease,
        CASE WHEN u.o THEN v_seqs[u.pos] END,
        now() + u.ci,
        mq_payload_size(u.pj, u.pb)
    FROM (
        SELECT x.*, row_number() OVER (PARTITION BY x.cn, x.ca, x.o ORDER BY x.pos) AS chain_rank
        FROM unnest(
            p_ids, p_channel_names, p_channel_args, p_delays, p_run_ats, p_max_attempts,
            p_leases, p_ordered, p_commit_intervals, p_priorities, p_job_keys, p_payload_json,
            p_payload_bytes
        ) WITH ORDINALITY AS x(id, cn, ca, delay, run_at, ma, lease, o, ci, prio, k, pj, pb, pos)
    ) AS u
    WHERE u.k IS NULL;

    -- keyed new jobs were inserted above with a provisional state
    UPDATE mq_jobs AS j
    SET state = mq_new_state(
            j.commit_deadline IS NOT NULL,
            EXISTS (SELECT 1 FROM mq_deps AS d WHERE d.child_id = j.id),
            j.ord_seq IS NOT NULL AND (NOT v_fresh_snapshot OR EXISTS (
                SELECT 1 FROM mq_jobs AS e
                WHERE e.channel_name = j.channel_name
                  AND e.channel_args = j.channel_args AND e.ord_seq < j.ord_seq
            )),
            j.attempt_at
        )
    FROM unnest(p_job_keys, v_new, v_ids) AS u(k, new, id)
    WHERE u.k IS NOT NULL AND u.new AND j.id = u.id;

    -- continuations: a parent still in the queue must finish first; a parent that failed or
    -- was cancelled cancels the child (unless it runs after failed parents); a parent that is
    -- gone otherwise completed
    IF cardinality(p_dep_positions) > 0 THEN
        -- parents that finish concurrently wait for this transaction (and then see the
        -- children) or finished first (and the re-check below finds them gone)
        PERFORM 1 FROM mq_jobs AS parent
        WHERE parent.id = ANY(p_dep_parents)
        ORDER BY parent.id
        FOR KEY SHARE;
        INSERT INTO mq_deps (parent_id, child_id)
        SELECT DISTINCT d.parent, v_ids[d.pos]
        FROM unnest(p_dep_positions, p_dep_parents) AS d(pos, parent)
        JOIN mq_jobs AS parent ON parent.id = d.parent AND parent.state <> 'f'
        WHERE v_new[d.pos] OR v_replaced[d.pos]
        ON CONFLICT DO NOTHING;
        UPDATE mq_jobs AS parent SET has_children = true
        FROM mq_deps AS d
        WHERE d.parent_id = parent.id AND NOT parent.has_children
          AND d.child_id = ANY(v_ids);
        v_children := ARRAY(
            SELECT DISTINCT v_ids[d.pos] FROM unnest(p_dep_positions) AS d(pos)
            WHERE v_new[d.pos] OR v_replaced[d.pos]
        );
        UPDATE mq_jobs AS child SET state = 'w'
        WHERE child.id = ANY(v_children) AND child.state IN ('r', 's', 'b')
          AND EXISTS (SELECT 1 FROM mq_deps AS d WHERE d.child_id = child.id);
        PERFORM mq_cancel_now(
            ARRAY(
                SELECT v_ids[d.pos]
                FROM unnest(p_dep_positions, p_dep_parents) AS d(pos, parent)
                WHERE (v_new[d.pos] OR v_replaced[d.pos])
                  AND NOT p_run_after_failed_parents[d.pos]
                  AND (EXISTS (SELECT 1 FROM mq_jobs AS f WHERE f.id = d.parent AND f.state = 'f')
                       OR EXISTS (SELECT 1 FROM mq_history AS h
                                  WHERE h.id = d.parent AND h.state = 'cancelled'))
            ),
            'a parent job failed or was cancelled before this job was spawned'
        );
        PERFORM mq_resolve_deps(v_children);
    END IF;

    PERFORM mq_wake(ARRAY(
        SELECT u.cn FROM unnest(p_channel_names, p_commit_intervals, p_delays, p_run_ats)
            AS u(cn, ci, d, ra)
        WHERE u.ci IS NULL AND coalesce(u.ra, now() + u.d) <= now()
    ));
    PERFORM mq_wake(ARRAY(
        SELECT u.cn FROM unnest(p_channel_names, p_commit_intervals, p_delays, p_run_ats)
            AS u(cn, ci, d, ra)
        WHERE u.ci IS NULL AND coalesce(u.ra, now() + u.d) > now()
    ), 's');

    RETURN QUERY SELECT u.pos::integer, u.id FROM unnest(v_ids) WITH ORDINALITY AS u(id, pos);
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_insert_rated(p_ids uuid[], p_names text[], p_channel_names text[], p_channel_args text[], p_payload_json text[], p_payload_bytes bytea[], p_delays interval[], p_run_ats timestamp with time zone[], p_max_attempts integer[], p_retry_backoffs interval[], p_leases interval[], p_ordered boolean[], p_commit_intervals interval[], p_priorities integer[], p_job_keys text[], p_job_key_modes text[], p_throttles interval[], p_retain_fors interval[], p_dead_letters text[], p_dead_letter_channels text[], p_run_after_failed_parents boolean[], p_dep_positions integer[], p_dep_parents uuid[], p_headers jsonb[], p_rate_positions integer[], p_rate_keys text[])
 RETURNS TABLE(pos integer, id uuid)
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
    v_pos integer[];
    v_ids uuid[];
BEGIN
    SELECT array_agg(i.pos ORDER BY i.pos), array_agg(i.id ORDER BY i.pos) INTO v_pos, v_ids
    FROM mq_insert(
        p_ids, p_names, p_channel_names, p_channel_args, p_payload_json, p_payload_bytes,
        p_delays, p_run_ats, p_max_attempts, p_retry_backoffs, p_leases, p_ordered,
        p_commit_intervals, p_priorities, p_job_keys, p_job_key_modes, p_throttles,
        p_retain_fors, p_dead_letters, p_dead_letter_channels, p_run_after_failed_parents,
        p_dep_positions, p_dep_parents, p_headers
    ) AS i;
    UPDATE mq_jobs AS j SET rate_keys = k.keys
    FROM (
        SELECT u.id, array_agg(DISTINCT r.key ORDER BY r.key) AS keys
        FROM unnest(v_pos, v_ids) AS u(pos, id)
        JOIN unnest(p_rate_positions, p_rate_keys) AS r(pos, key) ON r.pos = u.pos
        GROUP BY u.id
    ) AS k
    WHERE j.id = k.id;
    RETURN QUERY SELECT u.pos, u.id FROM unnest(v_pos, v_ids) AS u(pos, id) ORDER BY u.pos;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_jobs_batch_member_failed()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_jobs_batch_member_gone()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_jobs_failed()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v record;
BEGIN
    SELECT p.name, p.payload_json, p.payload_bytes, p.last_error, p.dead_letter,
        p.dead_letter_channel, p.notify_done
    INTO v FROM mq_payloads AS p WHERE p.id = NEW.id;
    IF v.dead_letter IS NOT NULL THEN
        PERFORM mq_spawn(
            v.dead_letter,
            json_build_object(
                'job_id', NEW.id, 'job_name', v.name, 'channel_name', NEW.channel_name,
                'channel_args', NEW.channel_args, 'attempts', NEW.attempts,
                'error', v.last_error, 'payload', v.payload_json
            ),
            channel_name => coalesce(v.dead_letter_channel, ''),
            payload_bytes => v.payload_bytes
        );
    END IF;
    IF NEW.has_children THEN
        PERFORM mq_parent_failed(NEW.id, 'parent job ' || NEW.id || ' failed');
    END IF;
    IF v.notify_done THEN
        PERFORM pg_notify('mq_done', NEW.id::text);
    END IF;
    RETURN NULL;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_jobs_parent_gone()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF current_setting('mq.replacing', true) = 'on' THEN
        RETURN NULL;
    END IF;
    IF current_setting('mq.cancelling', true) = 'on' THEN
        PERFORM mq_parent_failed(OLD.id, 'parent job ' || OLD.id || ' was cancelled');
    ELSE
        PERFORM mq_release_children(
            OLD.id, ARRAY(SELECT child_id FROM mq_deps WHERE parent_id = OLD.id)
        );
    END IF;
    RETURN NULL;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_jobs_unblock_next()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_head uuid;
BEGIN
    IF current_setting('mq.replacing', true) = 'on' THEN
        RETURN NULL;  -- the job is written again under its id in this transaction
    END IF;
    PERFORM pg_advisory_xact_lock(
        1836146534, mq_chain_lock_key(OLD.channel_name, OLD.channel_args)
    );
    SELECT h.id INTO v_head FROM mq_jobs AS h
    WHERE h.channel_name = OLD.channel_name
      AND h.channel_args = OLD.channel_args
      AND h.ord_seq IS NOT NULL
    ORDER BY h.ord_seq
    LIMIT 1;
    UPDATE mq_jobs AS j
    SET state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, j.attempt_at)
    WHERE j.id = (
            SELECT l.id FROM mq_jobs AS l
            WHERE l.id = v_head AND l.state = 'b'
            FOR UPDATE SKIP LOCKED
        );
    IF FOUND THEN
        PERFORM mq_wake(ARRAY[OLD.channel_name], 's');
    END IF;
    RETURN NULL;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_jobs_workflow_step_failed()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_jobs_workflow_step_gone()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_keep(p_ids uuid[], p_state text, p_error text, p_default_retain interval, p_error_ids uuid[] DEFAULT NULL::uuid[], p_errors text[] DEFAULT NULL::text[])
 RETURNS void
 LANGUAGE sql
AS $function$
    INSERT INTO mq_history (
        id, name, channel_name, channel_args, state, attempts, max_attempts, priority, job_key,
        payload_json, payload_bytes, result, last_error, headers, created_at, expires_at, errors
    )
    SELECT j.id, p.name, j.channel_name, j.channel_args, p_state, j.attempts, j.max_attempts,
        j.priority, j.job_key, p.payload_json, p.payload_bytes, NULL,
        coalesce(e.error, p_error, p.last_error), p.headers, p.created_at,
        now() + coalesce(p.retain_for, p_default_retain), p.errors
    FROM mq_jobs AS j
    JOIN mq_payloads AS p ON p.id = j.id
    LEFT JOIN unnest(p_error_ids, p_errors) AS e(id, error) ON e.id = j.id
    WHERE j.id = ANY(p_ids) AND coalesce(p.retain_for, p_default_retain) > interval '0'
    ON CONFLICT DO NOTHING
$function$;

CREATE OR REPLACE FUNCTION public.mq_lease(p_channel_names text[], p_cursor_name text, p_cursor_args text, p_limit integer, p_default_lease interval, p_excluded text[], p_durable boolean, p_max_bytes bigint, p_runner uuid DEFAULT NULL::uuid)
 RETURNS TABLE(id uuid, lease_token uuid, attempt integer, max_attempts integer, channel_name text, channel_args text, lease interval, name text, payload_json text, payload_bytes bytea, retry_backoff interval, job_key text, retain_for interval, headers text, payload_size integer)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH groups AS MATERIALIZED (
        SELECT g.cn, g.ca, row_number() OVER () AS pos
        FROM mq_ready_groups(
            p_channel_names, p_cursor_name, p_cursor_args, p_limit, p_excluded
        ) AS g
    ),
    picked AS MATERIALIZED (
        SELECT c.id, c.size, c.rk, row_number() OVER (ORDER BY g.pos, c.rank) AS ord
        FROM groups AS g
        CROSS JOIN LATERAL (
            SELECT j.id, j.payload_size AS size, j.rate_keys AS rk,
                row_number() OVER (ORDER BY j.priority DESC, j.attempt_at) AS rank
            FROM (
                SELECT j.id, j.payload_size, j.priority, j.attempt_at, j.rate_keys
                FROM mq_jobs AS j
                WHERE j.state = 'r' AND j.channel_name = g.cn AND j.channel_args = g.ca
                ORDER BY j.priority DESC, j.attempt_at
                LIMIT (SELECT ceil(p_limit::float8 / count(*))::integer FROM groups)
                FOR UPDATE SKIP LOCKED
            ) AS j
        ) AS c
        ORDER BY g.pos, c.rank
        LIMIT p_limit
    ),
    taken AS MATERIALIZED (
        SELECT b.id, b.ord, b.rk FROM (
            SELECT p.id, p.ord, p.rk,
                sum(p.size) OVER (ORDER BY p.ord ROWS UNBOUNDED PRECEDING) - p.size AS before
            FROM picked AS p
        ) AS b
        WHERE b.before < p_max_bytes
    ),
    admitted AS MATERIALIZED (
        SELECT a.id, a.started_at, a.wait_until
        FROM mq_rate_admit(
            ARRAY(SELECT t.id FROM taken AS t WHERE t.rk IS NOT NULL ORDER BY t.ord)
        ) AS a
        WHERE EXISTS (SELECT 1 FROM taken AS t WHERE t.rk IS NOT NULL)
    ),
    leased AS (
        UPDATE mq_jobs AS j
        SET state = 'l',
            attempts = j.attempts + 1,
            lease_token = gen_random_uuid(),
            attempt_at = now() + coalesce(j.lease, p_default_lease),
            leased_by = p_runner,
            leased_at = CASE WHEN j.rate_keys IS NULL THEN now() ELSE coalesce(
                (SELECT a.started_at FROM admitted AS a WHERE a.id = j.id), now()) END
        WHERE j.id = ANY (ARRAY(
            SELECT t.id FROM taken AS t WHERE t.rk IS NULL
            UNION ALL
            SELECT a.id FROM admitted AS a WHERE a.wait_until IS NULL
        ))
        RETURNING j.id, j.lease_token, j.attempts, j.max_attempts, j.channel_name,
            j.channel_args, coalesce(j.lease, p_default_lease) AS lease, j.job_key,
            j.payload_size,
            -- transaction-local (is_local): neither a pooled session nor a caller's own
            -- transaction (the pull API passes p_durable) is changed
            CASE WHEN NOT p_durable
                THEN set_config('synchronous_commit', 'off', true) END AS commit_mode
    )
    (
        SELECT l.id, l.lease_token, l.attempts, l.max_attempts, l.channel_name, l.channel_args,
            l.lease, coalesce(p.name, 'sqlxmq:missing-payload'), p.payload_json::text,
            p.payload_bytes, coalesce(p.retry_backoff, interval '1 second'), l.job_key,
            p.retain_for, p.headers::text, l.payload_size
        FROM leased AS l
        JOIN taken AS t ON t.id = l.id
        LEFT JOIN LATERAL (
            SELECT p.name, p.payload_json, p.payload_bytes, p.retry_backoff, p.retain_for,
                p.headers
            FROM mq_payloads AS p WHERE p.id = l.id
            OFFSET 0
        ) AS p ON true
        ORDER BY t.ord
    )
    UNION ALL
    SELECT a.id, NULL::uuid, NULL::integer, NULL::integer, NULL::text, NULL::text,
        NULL::interval, NULL::text, NULL::text, NULL::bytea, NULL::interval, NULL::text,
        NULL::interval, NULL::text, 0
    FROM admitted AS a WHERE a.wait_until IS NOT NULL;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_lease_limited(p_channel_name text, p_cursor_name text, p_cursor_args text, p_limit integer, p_default_lease interval, p_durable boolean, p_max_bytes bigint, p_runner uuid DEFAULT NULL::uuid)
 RETURNS TABLE(id uuid, lease_token uuid, attempt integer, max_attempts integer, channel_name text, channel_args text, lease interval, name text, payload_json text, payload_bytes bytea, retry_backoff interval, job_key text, retain_for interval, headers text, payload_size integer)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_lock_chains(p_ids uuid[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM pg_advisory_xact_lock(1836146534, k.key)
    FROM (
        SELECT DISTINCT mq_chain_lock_key(j.channel_name, j.channel_args) AS key
        FROM mq_jobs AS j
        WHERE j.id = ANY(p_ids) AND j.ord_seq IS NOT NULL
    ) AS k
    ORDER BY k.key;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_maintain()
 RETURNS TABLE(event text, job_id uuid, job_name text, attempt integer, final boolean, n integer)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
AS $function$
#variable_conflict use_column
DECLARE
    v_count integer;
    v_ids uuid[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(1836146533, 0) THEN
        RETURN;
    END IF;

    -- running jobs asked to stop whose runner is gone: cancelled rather than retried
    SELECT count(*) INTO v_count FROM mq_cancel_now(
        ARRAY(
            SELECT j.id FROM mq_jobs AS j
            WHERE j.state = 'l' AND j.cancel_requested AND j.attempt_at <= now()
            ORDER BY j.attempt_at
            LIMIT 1000
        ),
        'cancelled: the job was asked to stop and its runner is gone',
        NULL,
        true
    );
    IF v_count > 0 THEN
        RETURN QUERY SELECT 'cancelled_jobs_expired', NULL::uuid, NULL::text, NULL::integer,
            NULL::boolean, v_count;
    END IF;

    RETURN QUERY
    WITH expired AS MATERIALIZED (
        SELECT x.*, row_number() OVER (ORDER BY x.job_id) AS rn, count(*) OVER () AS total
        FROM mq_expire_leases() AS x
    )
    SELECT 'lease_expired', x.job_id, x.job_name, x.attempt, x.final, 1
    FROM expired AS x WHERE x.rn <= 200
    UNION ALL
    SELECT 'lease_expired', NULL, NULL, NULL, NULL, (x.total - 200)::integer
    FROM expired AS x WHERE x.rn = 1 AND x.total > 200;

    -- two-phase jobs not committed within their commit interval are discarded: cancelled, so
    -- that their continuations are cancelled too (a discarded parent never completed)
    v_ids := ARRAY(
        SELECT j.id FROM mq_jobs AS j
        WHERE j.state = 'u' AND j.commit_deadline <= now()
        ORDER BY j.commit_deadline
        LIMIT 1000
        FOR UPDATE SKIP LOCKED
    );
    IF cardinality(v_ids) > 0 THEN
        RETURN QUERY
        WITH named AS MATERIALIZED (
            SELECT p.id, p.name, row_number() OVER (ORDER BY p.id) AS rn
            FROM mq_payloads AS p WHERE p.id = ANY(v_ids)
        ), cancelled AS MATERIALIZED (
            SELECT c AS id FROM mq_cancel_now(
                v_ids, 'discarded: not committed within its commit interval'
            ) AS c
        )
        SELECT 'uncommitted_job_discarded', c.id, nm.name, NULL::integer, NULL::boolean, 1
        FROM cancelled AS c LEFT JOIN named AS nm ON nm.id = c.id
        WHERE coalesce(nm.rn, 0) <= 200
        UNION ALL
        SELECT 'uncommitted_job_discarded', NULL, NULL, NULL, NULL, (count(*) - 200)::integer
        FROM cancelled AS c HAVING count(*) > 200;
    END IF;

    v_count := mq_repair();
    IF v_count > 0 THEN
        RETURN QUERY SELECT 'repaired', NULL::uuid, NULL::text, NULL::integer, NULL::boolean,
            v_count;
    END IF;

    -- expired history goes by whole partitions (0013)
    v_count := mq_history_rotate();
    IF v_count > 0 THEN
        RETURN QUERY SELECT 'history_partitions_dropped', NULL::uuid, NULL::text, NULL::integer, NULL::boolean, v_count;
    END IF;
    DELETE FROM mq_throttle AS t WHERE t.until <= now();
    DELETE FROM mq_stats AS s WHERE s.bucket < now() - interval '7 days';
    DELETE FROM mq_listeners AS l WHERE l.heartbeat_at < now() - interval '5 minutes';
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_new_state(p_uncommitted boolean, p_waiting boolean, p_blocked boolean, p_at timestamp with time zone)
 RETURNS "char"
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$
    SELECT (CASE
        WHEN p_uncommitted THEN 'u'
        WHEN p_waiting THEN 'w'
        WHEN p_blocked THEN 'b'
        WHEN p_at > now() THEN 's'
        ELSE 'r'
    END)::"char"
$function$;

CREATE OR REPLACE FUNCTION public.mq_notify_channel(p_channel_name text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
    SELECT 'mq_' || left(encode(sha256(convert_to(p_channel_name, 'UTF8')), 'hex'), 32)
$function$;

CREATE OR REPLACE FUNCTION public.mq_parent_failed(p_parent uuid, p_reason text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_run uuid[];
    v_cancel uuid[];
BEGIN
    SELECT
        coalesce(array_agg(d.child_id) FILTER (WHERE p.run_after_failed_parents), '{}'),
        coalesce(array_agg(d.child_id) FILTER (WHERE NOT p.run_after_failed_parents), '{}')
    INTO v_run, v_cancel
    FROM mq_deps AS d JOIN mq_payloads AS p ON p.id = d.child_id
    WHERE d.parent_id = p_parent;
    PERFORM mq_cancel_now(v_cancel, p_reason);
    PERFORM mq_release_children(p_parent, v_run);
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_park(p_ids uuid[], p_tokens uuid[], p_reasons text[])
 RETURNS TABLE(id uuid, outcome text)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
    IF cardinality(v_cancel) > 0 THEN
        PERFORM mq_workflow_lock_jobs(p_ids);
    END IF;
    RETURN QUERY
    WITH parked AS (
        UPDATE mq_jobs AS j
        SET state = 'n', attempts = greatest(j.attempts - 1, 0), lease_token = NULL,
            attempt_at = now()
        FROM unnest(p_ids, p_tokens) AS t(id, token)
        WHERE j.id = ANY(p_ids) AND j.id = t.id AND j.lease_token = t.token
          AND NOT (j.id = ANY(v_cancel))
        RETURNING j.id
    ), noted AS (
        UPDATE mq_payloads AS p SET last_error = r.reason
        FROM unnest(p_ids, p_reasons) AS r(id, reason)
        WHERE p.id = ANY(ARRAY(SELECT k.id FROM parked AS k)) AND p.id = r.id
    )
    SELECT k.id, 'parked'::text FROM parked AS k;
    RETURN QUERY
    SELECT c, 'cancelled'::text
    FROM mq_cancel_now(
        v_cancel, 'cancelled while waiting for a runner that knows its name', v_tokens
    ) AS c;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_patch_function(p_name text, p_patches text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_payload_size(p_json text, p_bytes bytea)
 RETURNS integer
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT (coalesce(octet_length(p_json), 0) + coalesce(octet_length(p_bytes), 0))::integer
$function$;

CREATE OR REPLACE FUNCTION public.mq_promote(p_channel_names text[], p_exclusive boolean)
 RETURNS TABLE(promoted integer, wait_s double precision)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    v_promoted integer;
    v_channels text[];
BEGIN
    IF NOT p_exclusive OR pg_try_advisory_xact_lock(1836146535, 0) THEN
        WITH due AS (
            SELECT j.id FROM mq_jobs AS j
            WHERE j.state = 's' AND j.attempt_at <= now()
            ORDER BY j.attempt_at
            LIMIT 5000
            FOR UPDATE SKIP LOCKED
        ), made_ready AS (
            UPDATE mq_jobs AS j SET state = 'r'
            WHERE j.id = ANY(ARRAY(SELECT d.id FROM due AS d))
            RETURNING j.channel_name
        )
        SELECT count(*), coalesce(array_agg(DISTINCT m.channel_name), '{}')
        INTO v_promoted, v_channels
        FROM made_ready AS m;
        PERFORM mq_wake(v_channels);
    END IF;
    RETURN QUERY SELECT v_promoted, extract(epoch FROM (
        CASE WHEN p_channel_names IS NULL THEN (
            SELECT min(j.attempt_at) FROM mq_jobs AS j
            WHERE j.state = 's' AND j.attempt_at > now()
        ) ELSE (
            SELECT min(n.at)
            FROM unnest(p_channel_names) AS u(name)
            CROSS JOIN LATERAL (
                SELECT j.attempt_at AS at FROM mq_jobs AS j
                WHERE j.state = 's' AND j.channel_name = u.name AND j.attempt_at > now()
                ORDER BY j.attempt_at
                LIMIT 1
            ) AS n
        ) END - now()
    ))::float8;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_rate_admit(p_ids uuid[])
 RETURNS TABLE(id uuid, started_at timestamp with time zone, wait_until timestamp with time zone)
 LANGUAGE plpgsql
AS $function$
#variable_conflict use_column
DECLARE
    v_keys text[];
    v_max integer[];
    v_period interval[];
    v_denied integer[];
    v_now timestamptz;
    v_job record;
    v_key text;
    v_i integer;
    v_starts timestamptz[];
    v_in integer;
    v_until timestamptz;
    v_admitted uuid[] := '{}';
    v_deferred uuid[] := '{}';
    v_untils timestamptz[] := '{}';
    v_channels text[];
    v_locked integer;
BEGIN
    -- shared with other leases, exclusive with rule changes (mq_rate_change)
    PERFORM pg_advisory_xact_lock_shared(1836146536, 0);
    SELECT array_agg(k.key ORDER BY k.key), array_agg(r.max_starts ORDER BY k.key),
        array_agg(r.period ORDER BY k.key)
    INTO v_keys, v_max, v_period
    FROM (
        SELECT DISTINCT u.key FROM mq_jobs AS j CROSS JOIN unnest(j.rate_keys) AS u(key)
        WHERE j.id = ANY(p_ids)
    ) AS k
    CROSS JOIN LATERAL mq_rate_rule(k.key) AS r;
    v_keys := coalesce(v_keys, '{}');
    -- the windows of these keys, created if missing, then locked: both in key order, the same
    -- in every lease, so that two leases never wait for each other in a cycle. An idle window
    -- dropped (mq_rate_prune) between the two is not locked: created again, until all are held.
    LOOP
        INSERT INTO mq_rate_windows AS w (rate_key, starts, idle_at)
        SELECT k.key, '{}', '-infinity' FROM unnest(v_keys) AS k(key)
        WHERE NOT EXISTS (SELECT 1 FROM mq_rate_windows AS x WHERE x.rate_key = k.key)
        ORDER BY k.key
        ON CONFLICT (rate_key) DO NOTHING;
        PERFORM 1 FROM mq_rate_windows AS w WHERE w.rate_key = ANY(v_keys)
        ORDER BY w.rate_key FOR UPDATE;
        GET DIAGNOSTICS v_locked = ROW_COUNT;
        EXIT WHEN v_locked = cardinality(v_keys);
    END LOOP;
    -- the rules as they are now that the windows are held (migration 0019): a rule
    -- change locks them first, so one committed while this lease waited is seen
    SELECT coalesce(array_agg(r.max_starts ORDER BY k.n), '{}'),
        coalesce(array_agg(r.period ORDER BY k.n), '{}')
    INTO v_max, v_period
    FROM unnest(v_keys) WITH ORDINALITY AS k(key, n)
    LEFT JOIN LATERAL mq_rate_rule(k.key) AS r ON true;
    -- after the locks: an earlier lease of these keys has committed its starts by now
    v_now := clock_timestamp();
    v_denied := array_fill(0, ARRAY[cardinality(v_keys)]);
    FOR v_job IN
        SELECT j.id, j.rate_keys, j.channel_name
        FROM unnest(p_ids) WITH ORDINALITY AS u(id, n)
        JOIN mq_jobs AS j ON j.id = u.id
        ORDER BY u.n
    LOOP
        v_until := NULL;
        FOREACH v_key IN ARRAY v_job.rate_keys LOOP
            v_i := array_position(v_keys, v_key);
            CONTINUE WHEN v_i IS NULL OR v_max[v_i] IS NULL;  -- no rule: not limited
            -- the log is ascending: the starts still inside the window ending now
            SELECT w.starts, (
                SELECT count(*) FROM unnest(w.starts) AS s(at) WHERE s.at > v_now - v_period[v_i]
            )
            INTO v_starts, v_in
            FROM mq_rate_windows AS w WHERE w.rate_key = v_key;
            IF v_in >= v_max[v_i] THEN
                -- the d-th job deferred here waits for the d-th oldest of the counted starts
                v_denied[v_i] := v_denied[v_i] + 1;
                v_until := greatest(v_until,
                    v_starts[cardinality(v_starts) - v_in + least(v_denied[v_i], v_in)]
                    + v_period[v_i]);
            END IF;
        END LOOP;
        IF v_until IS NULL THEN
            UPDATE mq_rate_windows AS w
            SET starts = (w.starts || v_now)[
                    greatest(1, cardinality(w.starts) + 2 - r.max_starts):cardinality(w.starts) + 1],
                idle_at = v_now + r.period
            FROM (
                SELECT DISTINCT k.key, v_max[array_position(v_keys, k.key)] AS max_starts,
                    v_period[array_position(v_keys, k.key)] AS period
                FROM unnest(v_job.rate_keys) AS k(key)
                WHERE k.key = ANY(v_keys)
                  AND v_max[array_position(v_keys, k.key)] IS NOT NULL
            ) AS r
            WHERE w.rate_key = r.key;
            v_admitted := v_admitted || v_job.id;
        ELSE
            v_deferred := v_deferred || v_job.id;
            v_untils := v_untils || v_until;
        END IF;
    END LOOP;
    IF cardinality(v_deferred) > 0 THEN
        -- idle runners' promoters learn of the new scheduled jobs (a busy runner's own lease
        -- loop promotes after a lease that deferred)
        WITH moved AS (
            UPDATE mq_jobs AS j SET state = 's', attempt_at = d.until
            FROM unnest(v_deferred, v_untils) AS d(id, until)
            WHERE j.id = d.id
            RETURNING j.channel_name
        )
        SELECT array_agg(DISTINCT m.channel_name) INTO v_channels FROM moved AS m;
        PERFORM mq_wake(v_channels, 's');
    END IF;
    RETURN QUERY
    SELECT a.id, v_now, NULL::timestamptz FROM unnest(v_admitted) AS a(id)
    UNION ALL
    SELECT d.id, NULL::timestamptz, d.until FROM unnest(v_deferred, v_untils) AS d(id, until);
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_rate_change(p_pattern text, p_max_starts integer, p_period interval, p_limit integer)
 RETURNS TABLE(existed boolean, woken integer)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
AS $function$
#variable_conflict use_column
DECLARE
    v_old record;
    v_keys text[];
    v_old_max integer[];
    v_old_period interval[];
    v_woken integer := 0;
    v_channels text[];
BEGIN
    SELECT r.max_starts, r.period INTO v_old FROM mq_rate_limits AS r
    WHERE r.key_pattern = p_pattern;
    IF FOUND AND v_old.max_starts = p_max_starts AND v_old.period = p_period THEN
        -- unchanged (every runner writes its registry's rules at start): nothing to do
        RETURN QUERY SELECT true, 0;
        RETURN;
    END IF;
    -- every lease judging rate keys now finishes first; later ones wait for this one
    PERFORM pg_advisory_xact_lock(1836146536, 0);
    IF right(p_pattern, 1) <> '*' AND EXISTS (SELECT 1 FROM mq_rate_rule(p_pattern)) THEN
        -- a lease making this key's window right now (its first lease) is waited for too: its
        -- uncommitted row is not seen by the locking read below, but conflicts with this one
        -- (a key that no rule limits yet has no deferred jobs to wait for)
        INSERT INTO mq_rate_windows AS w (rate_key, starts, idle_at)
        VALUES (p_pattern, '{}', '-infinity')
        ON CONFLICT (rate_key) DO NOTHING;
    END IF;
    SELECT coalesce(array_agg(w.rate_key ORDER BY w.rate_key), '{}') INTO v_keys
    FROM (
        SELECT w.rate_key FROM mq_rate_windows AS w
        WHERE w.rate_key = p_pattern
           OR (right(p_pattern, 1) = '*' AND starts_with(w.rate_key, left(p_pattern, -1)))
        ORDER BY w.rate_key
        FOR UPDATE
    ) AS w;
    -- each key's rule before the change (the pattern's own, or one it overrides)
    SELECT coalesce(array_agg(o.max_starts ORDER BY k.n), '{}'),
        coalesce(array_agg(o.period ORDER BY k.n), '{}')
    INTO v_old_max, v_old_period
    FROM unnest(v_keys) WITH ORDINALITY AS k(key, n)
    LEFT JOIN LATERAL mq_rate_rule(k.key) AS o ON true;
    IF p_max_starts IS NULL THEN
        DELETE FROM mq_rate_limits AS r WHERE r.key_pattern = p_pattern;
    ELSE
        INSERT INTO mq_rate_limits (key_pattern, max_starts, period)
        VALUES (p_pattern, p_max_starts, p_period)
        ON CONFLICT (key_pattern) DO UPDATE
        SET max_starts = excluded.max_starts, period = excluded.period;
        -- a longer period must not find the windows dropped as idle under the shorter one
        UPDATE mq_rate_windows AS w
        SET idle_at = w.starts[cardinality(w.starts)] + p_period
        WHERE w.rate_key = ANY(v_keys) AND cardinality(w.starts) > 0
          AND w.idle_at < w.starts[cardinality(w.starts)] + p_period;
    END IF;
    WITH looser AS (
        SELECT k.key, k.old_period
        FROM unnest(v_keys, v_old_max, v_old_period) AS k(key, old_max, old_period)
        LEFT JOIN LATERAL mq_rate_rule(k.key) AS n ON true
        WHERE k.old_max IS NOT NULL
          AND (n.max_starts IS NULL OR n.max_starts > k.old_max OR n.period < k.old_period)
    ),
    instants AS (
        -- where a lease under the old rule deferred this key's jobs to
        SELECT DISTINCT l.key, s.at + l.old_period AS until
        FROM looser AS l
        JOIN mq_rate_windows AS w ON w.rate_key = l.key
        CROSS JOIN unnest(w.starts) AS s(at)
    ),
    deferred AS (
        -- one look-up of the scheduled jobs' index per instant (at most max_starts a key),
        -- never a scan of every scheduled job
        SELECT DISTINCT j.id
        FROM instants AS i
        CROSS JOIN LATERAL (
            SELECT j.id FROM mq_jobs AS j
            WHERE j.state = 's' AND j.attempt_at = i.until AND i.key = ANY(j.rate_keys)
            OFFSET 0
        ) AS j
        LIMIT p_limit
    ),
    moved AS (
        UPDATE mq_jobs AS j SET attempt_at = least(j.attempt_at, now())
        FROM deferred AS d
        WHERE j.id = d.id AND j.state = 's'
        RETURNING j.channel_name
    )
    SELECT count(*)::integer, array_agg(DISTINCT m.channel_name) INTO v_woken, v_channels
    FROM moved AS m;
    IF v_woken > 0 THEN
        PERFORM mq_wake(v_channels, 's');
    END IF;
    IF p_max_starts IS NULL THEN
        DELETE FROM mq_rate_windows AS w
        WHERE w.rate_key = ANY(v_keys) AND NOT EXISTS (SELECT 1 FROM mq_rate_rule(w.rate_key));
    END IF;
    RETURN QUERY SELECT v_old.max_starts IS NOT NULL, v_woken;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_rate_keys_checked(p_keys text[])
 RETURNS text[]
 LANGUAGE plpgsql
 IMMUTABLE
AS $function$
DECLARE
    v_key text;
    v_keys text[];
BEGIN
    IF p_keys IS NULL OR cardinality(p_keys) = 0 THEN
        RETURN NULL;
    END IF;
    FOREACH v_key IN ARRAY p_keys LOOP
        IF v_key IS NULL OR v_key = '' THEN
            RAISE EXCEPTION 'mq_spawn: a rate key must be a non-empty text, got %',
                coalesce(quote_literal(v_key), 'NULL') USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF octet_length(v_key) > 200 THEN
            RAISE EXCEPTION 'mq_spawn: a rate key must be at most 200 bytes of UTF-8, got % '
                'bytes: %', octet_length(v_key), left(v_key, 40)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF strpos(v_key, '*') > 0 THEN
            RAISE EXCEPTION 'mq_spawn: a rate key may not hold ''*'' (only rules use it), got %',
                v_key USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    SELECT array_agg(DISTINCT k ORDER BY k) INTO v_keys FROM unnest(p_keys) AS u(k);
    IF cardinality(v_keys) > 16 THEN
        RAISE EXCEPTION 'mq_spawn: a job carries at most 16 rate keys, got %', cardinality(v_keys)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_keys;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_rate_prune(p_limit integer)
 RETURNS integer
 LANGUAGE sql
AS $function$
    WITH idle AS (
        SELECT w.rate_key FROM mq_rate_windows AS w
        WHERE w.idle_at <= clock_timestamp()
        ORDER BY w.idle_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), dropped AS (
        DELETE FROM mq_rate_windows AS w USING idle
        WHERE w.rate_key = idle.rate_key AND w.idle_at <= clock_timestamp()
        RETURNING 1
    )
    SELECT count(*)::integer FROM dropped
$function$;

CREATE OR REPLACE FUNCTION public.mq_rate_rule(p_key text)
 RETURNS TABLE(max_starts integer, period interval)
 LANGUAGE sql
 STABLE
AS $function$
    SELECT r.max_starts, r.period FROM mq_rate_limits AS r
    WHERE r.key_pattern = p_key
       OR (right(r.key_pattern, 1) = '*' AND starts_with(p_key, left(r.key_pattern, -1)))
    ORDER BY r.key_pattern = p_key DESC, length(r.key_pattern) DESC
    LIMIT 1
$function$;

CREATE OR REPLACE FUNCTION public.mq_ready_groups(p_names text[], p_cursor_name text, p_cursor_args text, p_limit integer, p_excluded text[])
 RETURNS TABLE(cn text, ca text)
 LANGUAGE plpgsql
 STABLE
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
#variable_conflict use_column
BEGIN
    IF p_names IS NULL AND p_cursor_name IS NOT NULL THEN
        RETURN QUERY
        WITH RECURSIVE after_cursor(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1
            FROM mq_group_after_any(p_cursor_name, p_cursor_args) AS g
          UNION ALL
            SELECT g.channel_name, g.channel_args, a.n + 1
            FROM after_cursor AS a
            CROSS JOIN LATERAL mq_group_after_any(
                a.cn, CASE WHEN a.cn = ANY(p_excluded) THEN NULL ELSE a.ca END) AS g
            WHERE a.n < p_limit + cardinality(p_excluded)
        ), from_start(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1
            FROM mq_group_first_any() AS g
            WHERE (g.channel_name, g.channel_args) <= (p_cursor_name, p_cursor_args)
          UNION ALL
            SELECT g.channel_name, g.channel_args, f.n + 1
            FROM from_start AS f
            CROSS JOIN LATERAL mq_group_after_any(
                f.cn, CASE WHEN f.cn = ANY(p_excluded) THEN NULL ELSE f.ca END) AS g
            WHERE f.n < p_limit + cardinality(p_excluded)
              AND (g.channel_name, g.channel_args) <= (p_cursor_name, p_cursor_args)
        )
        SELECT v.cn, v.ca FROM (
            SELECT a.cn, a.ca FROM after_cursor AS a
            UNION ALL
            SELECT f.cn, f.ca FROM from_start AS f
        ) AS v
        WHERE NOT (v.cn = ANY(p_excluded))
        LIMIT p_limit;
    ELSIF p_names IS NULL THEN
        RETURN QUERY
        WITH RECURSIVE from_start(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1 FROM mq_group_first_any() AS g
          UNION ALL
            SELECT g.channel_name, g.channel_args, f.n + 1
            FROM from_start AS f
            CROSS JOIN LATERAL mq_group_after_any(
                f.cn, CASE WHEN f.cn = ANY(p_excluded) THEN NULL ELSE f.ca END) AS g
            WHERE f.n < p_limit + cardinality(p_excluded)
        )
        SELECT f.cn, f.ca FROM from_start AS f WHERE NOT (f.cn = ANY(p_excluded)) LIMIT p_limit;
    ELSIF p_cursor_name IS NOT NULL THEN
        RETURN QUERY
        WITH RECURSIVE after_cursor(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1
            FROM mq_group_after_in(p_names, p_cursor_name, p_cursor_args) AS g
          UNION ALL
            SELECT g.channel_name, g.channel_args, a.n + 1
            FROM after_cursor AS a
            CROSS JOIN LATERAL mq_group_after_in(
                p_names, a.cn, CASE WHEN a.cn = ANY(p_excluded) THEN NULL ELSE a.ca END) AS g
            WHERE a.n < p_limit + cardinality(p_excluded)
        ), from_start(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1
            FROM mq_group_first_in(p_names) AS g
            WHERE (g.channel_name, g.channel_args) <= (p_cursor_name, p_cursor_args)
          UNION ALL
            SELECT g.channel_name, g.channel_args, f.n + 1
            FROM from_start AS f
            CROSS JOIN LATERAL mq_group_after_in(
                p_names, f.cn, CASE WHEN f.cn = ANY(p_excluded) THEN NULL ELSE f.ca END) AS g
            WHERE f.n < p_limit + cardinality(p_excluded)
              AND (g.channel_name, g.channel_args) <= (p_cursor_name, p_cursor_args)
        )
        SELECT v.cn, v.ca FROM (
            SELECT a.cn, a.ca FROM after_cursor AS a
            UNION ALL
            SELECT f.cn, f.ca FROM from_start AS f
        ) AS v
        WHERE NOT (v.cn = ANY(p_excluded))
        LIMIT p_limit;
    ELSE
        RETURN QUERY
        WITH RECURSIVE from_start(cn, ca, n) AS (
            SELECT g.channel_name, g.channel_args, 1 FROM mq_group_first_in(p_names) AS g
          UNION ALL
            SELECT g.channel_name, g.channel_args, f.n + 1
            FROM from_start AS f
            CROSS JOIN LATERAL mq_group_after_in(
                p_names, f.cn, CASE WHEN f.cn = ANY(p_excluded) THEN NULL ELSE f.ca END) AS g
            WHERE f.n < p_limit + cardinality(p_excluded)
        )
        SELECT f.cn, f.ca FROM from_start AS f WHERE NOT (f.cn = ANY(p_excluded)) LIMIT p_limit;
    END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_release(p_ids uuid[], p_tokens uuid[], p_by text DEFAULT NULL::text, p_started boolean DEFAULT true)
 RETURNS TABLE(id uuid, outcome text)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
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
    IF cardinality(v_cancel) > 0 THEN
        PERFORM mq_workflow_lock_jobs(p_ids);
    END IF;
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_release_children(p_parent uuid, p_children uuid[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF coalesce(cardinality(p_children), 0) = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM mq_jobs AS c WHERE c.id = ANY(p_children) ORDER BY c.id FOR UPDATE;
    DELETE FROM mq_deps WHERE parent_id = p_parent AND child_id = ANY(p_children);
    UPDATE mq_jobs AS c
    SET state = mq_runnable_state(c.id, c.channel_name, c.channel_args, c.ord_seq, c.attempt_at)
    WHERE c.id = ANY(p_children) AND c.state = 'w';
    IF FOUND THEN
        PERFORM mq_wake(ARRAY(SELECT channel_name FROM mq_jobs WHERE id = ANY(p_children)), 's');
    END IF;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_renew(p_ids uuid[], p_tokens uuid[], p_default_lease interval)
 RETURNS TABLE(lease_token uuid, report text)
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH held AS (
        SELECT t.id, t.token FROM unnest(p_ids, p_tokens) AS t(id, token)
    ), lockable AS (
        SELECT j.id FROM mq_jobs AS j
        JOIN held AS h ON h.id = j.id AND j.lease_token = h.token
        WHERE j.id = ANY(p_ids)
        FOR UPDATE OF j SKIP LOCKED
    ), renewed AS (
        UPDATE mq_jobs AS j
        SET attempt_at = greatest(j.attempt_at, now() + coalesce(j.lease, p_default_lease))
        WHERE j.id = ANY(ARRAY(SELECT l.id FROM lockable AS l))
        RETURNING j.id
    )
    SELECT h.token, CASE WHEN s.cancel_requested IS NULL THEN 'lost' ELSE 'cancel' END
    FROM held AS h
    LEFT JOIN LATERAL (
        SELECT j.cancel_requested FROM mq_jobs AS j
        WHERE j.id = h.id AND j.lease_token = h.token
        OFFSET 0
    ) AS s ON true
    WHERE s.cancel_requested IS NOT FALSE;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_repair()
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_unblocked integer;
BEGIN
    SELECT count(*) INTO v_unblocked FROM mq_unblock_heads();
    RETURN v_unblocked + mq_resolve_deps(NULL);
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_reschedule(p_ids uuid[], p_run_at timestamp with time zone, p_priority integer, p_retries integer)
 RETURNS SETOF uuid
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_channels text[];
    v_ids uuid[];
BEGIN
    WITH moved AS (
        UPDATE mq_jobs AS j
        SET attempt_at = coalesce(p_run_at, j.attempt_at),
            priority = coalesce(p_priority, j.priority),
            max_attempts = coalesce(j.attempts + p_retries + 1, j.max_attempts),
            state = CASE
                WHEN j.state IN ('r', 's')
                THEN mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq,
                                       coalesce(p_run_at, j.attempt_at))
                ELSE j.state
            END
        WHERE j.id = ANY(p_ids) AND j.state NOT IN ('l', 'f')
        RETURNING j.id, j.channel_name
    )
    SELECT array_agg(id), array_agg(channel_name) INTO v_ids, v_channels FROM moved;
    PERFORM mq_wake(coalesce(v_channels, '{}'), 's');
    RETURN QUERY SELECT unnest(coalesce(v_ids, '{}'));
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_resolve_deps(p_children uuid[] DEFAULT NULL::uuid[])
 RETURNS integer
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_cancel uuid[];
    v_release uuid[];
    v_released integer;
BEGIN
    WITH settled AS (
        DELETE FROM mq_deps AS d
        WHERE (p_children IS NULL OR d.child_id = ANY(p_children))
          AND NOT EXISTS (
              SELECT 1 FROM mq_jobs AS p WHERE p.id = d.parent_id AND p.state <> 'f'
          )
        RETURNING d.parent_id, d.child_id
    ), judged AS (
        SELECT s.child_id,
            (EXISTS (SELECT 1 FROM mq_jobs AS f WHERE f.id = s.parent_id)
             OR EXISTS (SELECT 1 FROM mq_history AS h
                        WHERE h.id = s.parent_id AND h.state = 'cancelled'))
            AND NOT coalesce(p.run_after_failed_parents, false) AS cancel
        FROM settled AS s LEFT JOIN mq_payloads AS p ON p.id = s.child_id
    )
    SELECT coalesce(array_agg(DISTINCT child_id) FILTER (WHERE cancel), '{}'),
        coalesce(array_agg(DISTINCT child_id) FILTER (WHERE NOT cancel), '{}')
    INTO v_cancel, v_release
    FROM judged;
    PERFORM mq_cancel_now(v_cancel, 'a parent job failed or was cancelled');
    v_release := ARRAY(SELECT unnest(v_release) EXCEPT SELECT unnest(v_cancel));
    IF cardinality(v_release) = 0 THEN
        RETURN cardinality(v_cancel);
    END IF;
    PERFORM 1 FROM mq_jobs AS c WHERE c.id = ANY(v_release) ORDER BY c.id FOR UPDATE;
    UPDATE mq_jobs AS c
    SET state = mq_runnable_state(c.id, c.channel_name, c.channel_args, c.ord_seq, c.attempt_at)
    WHERE c.id = ANY(v_release) AND c.state = 'w';
    GET DIAGNOSTICS v_released = ROW_COUNT;
    IF v_released > 0 THEN
        PERFORM mq_wake(ARRAY(SELECT channel_name FROM mq_jobs WHERE id = ANY(v_release)), 's');
    END IF;
    RETURN v_released + cardinality(v_cancel);
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_retry(p_ids uuid[])
 RETURNS SETOF uuid
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_channels text[];
    v_ids uuid[];
BEGIN
    PERFORM mq_workflow_lock_jobs(p_ids);
    WITH retried AS (
        UPDATE mq_jobs AS j
        SET attempts = 0,
            attempt_at = now(),
            state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, now())
        WHERE j.id = ANY(p_ids) AND j.state = 'f'
        RETURNING j.id, j.channel_name
    )
    SELECT array_agg(id), array_agg(channel_name) INTO v_ids, v_channels FROM retried;
    PERFORM mq_wake(coalesce(v_channels, '{}'));
    RETURN QUERY SELECT unnest(coalesce(v_ids, '{}'));
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_runnable_state(p_id uuid, p_channel_name text, p_channel_args text, p_ord_seq bigint, p_attempt_at timestamp with time zone)
 RETURNS "char"
 LANGUAGE sql
 STABLE
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_set_channel(p_channel_name text, p_paused boolean, p_change_limit boolean, p_max_running integer)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_spawn(name text, payload_json json DEFAULT NULL::json, channel_name text DEFAULT ''::text, channel_args text DEFAULT ''::text, delay interval DEFAULT '00:00:00'::interval, retries integer DEFAULT 4, retry_backoff interval DEFAULT '00:00:01'::interval, ordered boolean DEFAULT false, priority integer DEFAULT 0, payload_bytes bytea DEFAULT NULL::bytea, lease interval DEFAULT NULL::interval, commit_interval interval DEFAULT NULL::interval, run_at timestamp with time zone DEFAULT NULL::timestamp with time zone, job_key text DEFAULT NULL::text, job_key_mode text DEFAULT 'replace'::text, throttle interval DEFAULT NULL::interval, retain_for interval DEFAULT NULL::interval, dead_letter text DEFAULT NULL::text, after uuid[] DEFAULT '{}'::uuid[], run_after_failed_parents boolean DEFAULT false, headers jsonb DEFAULT NULL::jsonb, rate_keys text[] DEFAULT NULL::text[])
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_id uuid;
    v_keys text[];
BEGIN
    IF retries IS NULL OR retries < 0 THEN
        RAISE EXCEPTION 'mq_spawn: retries must be >= 0, got %', retries
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF job_key_mode NOT IN ('replace', 'preserve_run_at', 'unsafe_dedupe') THEN
        RAISE EXCEPTION 'mq_spawn: job_key_mode must be replace, preserve_run_at or '
            'unsafe_dedupe, got %', job_key_mode USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF throttle IS NOT NULL AND job_key IS NULL THEN
        RAISE EXCEPTION 'mq_spawn: a throttle needs a job_key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_keys := mq_rate_keys_checked(rate_keys);
    IF v_keys IS NULL THEN
        -- the path of every job without keys: the same call as before this migration
        SELECT i.id INTO v_id FROM mq_insert(
            ARRAY[mq_uuid7()], ARRAY[name], ARRAY[channel_name], ARRAY[channel_args],
            ARRAY[payload_json::text], ARRAY[payload_bytes], ARRAY[delay], ARRAY[run_at],
            ARRAY[retries + 1], ARRAY[retry_backoff], ARRAY[lease], ARRAY[ordered],
            ARRAY[commit_interval], ARRAY[priority], ARRAY[job_key], ARRAY[job_key_mode],
            ARRAY[throttle], ARRAY[retain_for], ARRAY[dead_letter], ARRAY[NULL::text],
            ARRAY[run_after_failed_parents],
            array_fill(1, ARRAY[cardinality(coalesce(after, '{}'))]), coalesce(after, '{}'),
            ARRAY[headers]
        ) AS i;
    ELSE
        -- as the Python spawn of a keyed job: the job and its keys in one statement
        SELECT i.id INTO v_id FROM mq_insert_rated(
            ARRAY[mq_uuid7()], ARRAY[name], ARRAY[channel_name], ARRAY[channel_args],
            ARRAY[payload_json::text], ARRAY[payload_bytes], ARRAY[delay], ARRAY[run_at],
            ARRAY[retries + 1], ARRAY[retry_backoff], ARRAY[lease], ARRAY[ordered],
            ARRAY[commit_interval], ARRAY[priority], ARRAY[job_key], ARRAY[job_key_mode],
            ARRAY[throttle], ARRAY[retain_for], ARRAY[dead_letter], ARRAY[NULL::text],
            ARRAY[run_after_failed_parents],
            array_fill(1, ARRAY[cardinality(coalesce(after, '{}'))]), coalesce(after, '{}'),
            ARRAY[headers], array_fill(1, ARRAY[cardinality(v_keys)]), v_keys
        ) AS i;
    END IF;
    RETURN v_id;
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_unblock_heads()
 RETURNS SETOF text
 LANGUAGE sql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
AS $function$
    WITH RECURSIVE heads AS (
        (SELECT j.id, j.channel_name, j.channel_args, j.state FROM mq_jobs AS j
         WHERE j.ord_seq IS NOT NULL
         ORDER BY j.channel_name, j.channel_args, j.ord_seq
         LIMIT 1)
      UNION ALL
        SELECT n.id, n.channel_name, n.channel_args, n.state
        FROM heads AS h
        CROSS JOIN LATERAL (
            SELECT j.id, j.channel_name, j.channel_args, j.state FROM mq_jobs AS j
            WHERE j.ord_seq IS NOT NULL
              AND (j.channel_name, j.channel_args) > (h.channel_name, h.channel_args)
            ORDER BY j.channel_name, j.channel_args, j.ord_seq
            LIMIT 1
        ) AS n
    ), unlocked AS (
        SELECT j.id FROM mq_jobs AS j
        WHERE j.id = ANY(ARRAY(SELECT h.id FROM heads AS h WHERE h.state = 'b'))
          AND j.state = 'b'
        FOR UPDATE SKIP LOCKED
    ), promoted AS (
        UPDATE mq_jobs AS j
        SET state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq,
                                      j.attempt_at)
        WHERE j.id = ANY(ARRAY(SELECT u.id FROM unlocked AS u))
        RETURNING j.channel_name
    ), woken AS (
        SELECT mq_wake(ARRAY(SELECT p.channel_name FROM promoted AS p), 's')
    )
    SELECT p.channel_name FROM promoted AS p, woken
$function$;

CREATE OR REPLACE FUNCTION public.mq_unpark(p_names text[])
 RETURNS integer
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    v_channels text[];
BEGIN
    WITH known AS (
        SELECT j.id FROM mq_jobs AS j
        WHERE j.state = 'n'
          AND (SELECT p.name FROM mq_payloads AS p WHERE p.id = j.id) = ANY(p_names)
        FOR UPDATE SKIP LOCKED
    ), unparked AS (
        UPDATE mq_jobs AS j
        SET state = mq_runnable_state(j.id, j.channel_name, j.channel_args, j.ord_seq, now()),
            attempt_at = now()
        WHERE j.id = ANY(ARRAY(SELECT k.id FROM known AS k)) AND j.state = 'n'
        RETURNING j.channel_name
    )
    SELECT coalesce(array_agg(u.channel_name), '{}') INTO v_channels FROM unparked AS u;
    PERFORM mq_wake(v_channels);
    RETURN cardinality(v_channels);
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_uuid7()
 RETURNS uuid
 LANGUAGE sql
 PARALLEL SAFE
AS $function$
    SELECT (lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
            || '7' || substr(r, 14, 3) || substr(r, 17))::uuid
    FROM (SELECT replace(gen_random_uuid()::text, '-', '') AS r) AS random
$function$;

CREATE OR REPLACE FUNCTION public.mq_wake(p_channel_names text[], p_payload text DEFAULT ''::text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    IF cardinality(p_channel_names) = 0 OR NOT EXISTS (
        SELECT 1 FROM mq_listeners
        WHERE idle AND heartbeat_at > now() - interval '1 minute'
    ) THEN
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_workers(p_stale interval)
 RETURNS TABLE(id uuid, host text, pid integer, version text, channel_names text[], min_concurrency integer, max_concurrency integer, idle boolean, started_at timestamp with time zone, heartbeat_at timestamp with time zone, running integer, stale boolean, now timestamp with time zone)
 LANGUAGE sql
AS $function$
    SELECT l.id, l.host, l.pid, l.version, l.channel_names, l.min_concurrency,
        l.max_concurrency, l.idle, l.started_at, l.heartbeat_at, coalesce(r.n, 0)::integer,
        l.heartbeat_at < c.now - p_stale, c.now
    FROM (SELECT clock_timestamp() AS now) AS c
    CROSS JOIN mq_listeners AS l
    LEFT JOIN (
        SELECT j.leased_by, count(*) AS n FROM mq_jobs AS j
        WHERE j.state = 'l' AND j.leased_by IS NOT NULL
        GROUP BY j.leased_by
    ) AS r ON r.leased_by = l.id
    ORDER BY l.host, l.pid, l.started_at, l.id
$function$;

CREATE OR REPLACE FUNCTION public.mq_workflow_cancel(p_workflow uuid, p_reason text)
 RETURNS TABLE(cancelled bigint, requested bigint)
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_workflow_link(p_workflow uuid, p_create boolean, p_name text, p_retain_for interval, p_steps text[], p_job_ids uuid[], p_job_names text[], p_policies text[], p_groups text[], p_children text[], p_parents text[], p_limit_groups text[], p_limits integer[])
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_workflow_lock_jobs(p_ids uuid[], p_wait boolean DEFAULT true)
 RETURNS uuid[]
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_workflows uuid[];
    v_locked uuid[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM mq_workflows AS w WHERE w.finished_at IS NULL) THEN
        -- no workflow open: no job in the queue is a step (a workflow finishes only once none
        -- of its steps' jobs is left, and one being made in another transaction is not seen,
        -- nor are its jobs, which these ids cannot name)
        RETURN '{}';
    END IF;
    v_workflows := ARRAY(
        SELECT DISTINCT j.workflow_id FROM mq_jobs AS j
        WHERE j.id = ANY(p_ids) AND j.workflow_id IS NOT NULL
    );
    IF cardinality(v_workflows) = 0 THEN
        RETURN '{}';
    END IF;
    IF p_wait THEN
        PERFORM 1 FROM mq_workflows AS w WHERE w.id = ANY(v_workflows)
        ORDER BY w.id FOR NO KEY UPDATE;
        RETURN '{}';
    END IF;
    v_locked := ARRAY(
        SELECT w.id FROM mq_workflows AS w WHERE w.id = ANY(v_workflows)
        ORDER BY w.id FOR NO KEY UPDATE SKIP LOCKED
    );
    -- the jobs whose workflow another transaction holds (a workflow gone, expired, is no lock)
    RETURN ARRAY(
        SELECT j.id FROM mq_jobs AS j
        WHERE j.id = ANY(p_ids) AND j.workflow_id = ANY(v_workflows)
          AND NOT (j.workflow_id = ANY(v_locked))
          AND EXISTS (SELECT 1 FROM mq_workflows AS w WHERE w.id = j.workflow_id)
    );
END;
$function$;

CREATE OR REPLACE FUNCTION public.mq_workflow_retry(p_workflow uuid, p_step text)
 RETURNS uuid
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_workflow_settle(p_workflow uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_workflow_skip_self(p_workflow uuid, p_step text, p_reason text)
 RETURNS boolean
 LANGUAGE sql
AS $function$
    WITH marked AS (
        UPDATE mq_workflow_steps AS s SET skip_reason = p_reason
        WHERE s.workflow_id = p_workflow AND s.step = p_step AND s.state = 'pending'
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM marked)
$function$;

CREATE OR REPLACE FUNCTION public.mq_workflow_steps_changed()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.mq_workflow_touch(p_workflow uuid)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    v_touched text := coalesce(current_setting('mq.workflows_touched', true), '');
BEGIN
    IF strpos(v_touched, p_workflow::text) = 0 THEN
        PERFORM set_config('mq.workflows_touched', v_touched || p_workflow::text || ',', true);
    END IF;
END;
$function$;

-- triggers

CREATE CONSTRAINT TRIGGER mq_batch_members_changed_trg AFTER UPDATE OF state ON public.mq_batch_members DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN ((old.state IS DISTINCT FROM new.state)) EXECUTE FUNCTION mq_batch_members_changed();

CREATE TRIGGER mq_jobs_batch_member_failed_trg AFTER UPDATE OF state ON public.mq_jobs FOR EACH ROW WHEN (((new.batch_id IS NOT NULL) AND ((old.state = 'f'::"char") <> (new.state = 'f'::"char")))) EXECUTE FUNCTION mq_jobs_batch_member_failed();

CREATE TRIGGER mq_jobs_batch_member_gone_trg AFTER DELETE ON public.mq_jobs FOR EACH ROW WHEN ((old.batch_id IS NOT NULL)) EXECUTE FUNCTION mq_jobs_batch_member_gone();

CREATE TRIGGER mq_jobs_failed_trg AFTER UPDATE OF state ON public.mq_jobs FOR EACH ROW WHEN (((new.state = 'f'::"char") AND (old.state <> 'f'::"char"))) EXECUTE FUNCTION mq_jobs_failed();

CREATE TRIGGER mq_jobs_parent_gone_trg AFTER DELETE ON public.mq_jobs FOR EACH ROW WHEN (old.has_children) EXECUTE FUNCTION mq_jobs_parent_gone();

CREATE TRIGGER mq_jobs_unblock_next_trg AFTER DELETE ON public.mq_jobs FOR EACH ROW WHEN ((old.ord_seq IS NOT NULL)) EXECUTE FUNCTION mq_jobs_unblock_next();

CREATE TRIGGER mq_jobs_workflow_step_failed_trg AFTER UPDATE OF state ON public.mq_jobs FOR EACH ROW WHEN (((new.workflow_id IS NOT NULL) AND ((old.state = 'f'::"char") <> (new.state = 'f'::"char")))) EXECUTE FUNCTION mq_jobs_workflow_step_failed();

CREATE TRIGGER mq_jobs_workflow_step_gone_trg AFTER DELETE ON public.mq_jobs FOR EACH ROW WHEN ((old.workflow_id IS NOT NULL)) EXECUTE FUNCTION mq_jobs_workflow_step_gone();

CREATE CONSTRAINT TRIGGER mq_workflow_steps_changed_trg AFTER UPDATE ON public.mq_workflow_steps DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION mq_workflow_steps_changed();
