"""The operations of the HTTP API about the fleet rather than single jobs: the live runners,
the channels (pause, resume, limits) and the cron schedules, declared as ``routes.py`` declares
the others (and listed after them in the document)."""

from __future__ import annotations

from .api import (
    get_channels,
    get_workers,
    pause,
    resume,
    set_limit,
)
from .fleet import ChannelRow, Channels, Workers
from .operation import Operation
from .requests import (
    ChannelLimitRequest,
    ChannelRequest,
)
from .schedule_models import (
    ScheduleDeleted,
    ScheduleRequest,
    ScheduleResponse,
    Schedules,
    ScheduleTriggered,
)
from .schedules_api import (
    delete_schedule_handler,
    disable_schedule_handler,
    enable_schedule_handler,
    get_schedules,
    trigger_schedule_handler,
)

__all__ = ["FLEET_OPERATIONS"]

FLEET_OPERATIONS: tuple[Operation, ...] = (
    Operation(
        method="GET",
        path="/workers",
        operation_id="getWorkers",
        tag="queue",
        summary="The live runners, with the jobs each runs now",
        description="Every runner announces itself and renews its announcement every 10 s; "
        "one that stops removes it. A runner whose heartbeat is older than 30 s is listed as "
        "stale until maintenance removes it (after 5 minutes).",
        handler=get_workers,
        responses={200: (Workers, "The runners, by host and pid.")},
    ),
    Operation(
        method="GET",
        path="/channels",
        operation_id="listChannels",
        tag="channels",
        summary="Channels with jobs, a limit or a pause: paused or not, limit, jobs",
        handler=get_channels,
        responses={200: (Channels, "The channels, by name.")},
    ),
    Operation(
        method="POST",
        path="/channels/pause",
        operation_id="pauseChannel",
        tag="channels",
        summary="Pause a channel",
        description="Runners (and pull consumers) start none of the channel's jobs until it "
        "is resumed; its running jobs finish. Runners stop within a maintenance interval (1 s "
        "by default), at once where notifications reach them.",
        handler=pause,
        changes=True,
        body=ChannelRequest,
        body_required=True,
        responses={200: (ChannelRow, "Paused: the channel now.")},
    ),
    Operation(
        method="POST",
        path="/channels/resume",
        operation_id="resumeChannel",
        tag="channels",
        summary="Resume a paused channel (its limit stays)",
        handler=resume,
        changes=True,
        body=ChannelRequest,
        body_required=True,
        responses={200: (ChannelRow, "Resumed: the channel now.")},
    ),
    Operation(
        method="POST",
        path="/channels/limit",
        operation_id="setChannelLimit",
        tag="channels",
        summary="Set or remove a channel's concurrency limit across all runners",
        handler=set_limit,
        changes=True,
        body=ChannelLimitRequest,
        body_required=True,
        responses={200: (ChannelRow, "Set: the channel now.")},
    ),
    Operation(
        method="GET",
        path="/schedules",
        operation_id="listSchedules",
        tag="schedules",
        summary="Cron schedules: expression, time zone, next and last tick, enabled",
        handler=get_schedules,
        responses={200: (Schedules, "The schedules, by name.")},
    ),
    Operation(
        method="POST",
        path="/schedules/enable",
        operation_id="enableSchedule",
        tag="schedules",
        summary="Enable a schedule",
        description="Runners tick it again from its next tick on: ticks that fell while it "
        "was disabled are not spawned, whatever its backfill.",
        handler=enable_schedule_handler,
        changes=True,
        body=ScheduleRequest,
        body_required=True,
        responses={200: (ScheduleResponse, "Enabled: the schedule now.")},
        errors=(404,),
    ),
    Operation(
        method="POST",
        path="/schedules/disable",
        operation_id="disableSchedule",
        tag="schedules",
        summary="Disable a schedule",
        description="Runners stop ticking it. A runner that declares it at start-up keeps it "
        "disabled: it stays so until it is enabled.",
        handler=disable_schedule_handler,
        changes=True,
        body=ScheduleRequest,
        body_required=True,
        responses={200: (ScheduleResponse, "Disabled: the schedule now.")},
        errors=(404,),
    ),
    Operation(
        method="POST",
        path="/schedules/trigger",
        operation_id="triggerSchedule",
        tag="schedules",
        summary="Spawn a schedule's job now, once",
        description="Spawns the job a tick spawns (same job, payload, channel and options; no "
        "job key), whether or not the schedule is enabled. Its ticks are unchanged.",
        handler=trigger_schedule_handler,
        changes=True,
        body=ScheduleRequest,
        body_required=True,
        responses={200: (ScheduleTriggered, "Spawned.")},
        errors=(404,),
    ),
    Operation(
        method="POST",
        path="/schedules/delete",
        operation_id="deleteSchedule",
        tag="schedules",
        summary="Delete a schedule",
        description="A runner that still declares it records it again, enabled, when it "
        "starts: disable it to stop it for good.",
        handler=delete_schedule_handler,
        changes=True,
        body=ScheduleRequest,
        body_required=True,
        responses={200: (ScheduleDeleted, "Deleted.")},
        errors=(404,),
    ),
)
