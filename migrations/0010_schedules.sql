-- sqlxmq_py schema: schedules an operator can pause (issue 12, point 3).
--
-- enabled: a disabled schedule is not ticked by any runner. A runner that declares the
-- schedule at start-up (schedule_upsert) updates its expression and job options but never its
-- enabled flag, so an operator's disable holds across restarts and deploys until the operator
-- enables it again. A schedule declared for the first time starts enabled.
--
-- last_spawned_tick: the latest tick a runner spawned a job for (null until the first one).
-- last_tick stays the schedule's clock: ticks up to it are handled, spawned or skipped.
ALTER TABLE mq_schedules
    ADD COLUMN enabled boolean NOT NULL DEFAULT true,
    ADD COLUMN last_spawned_tick timestamptz;
