"""The HTTP API's handlers for cron schedules: list them, enable, disable, trigger, delete.
Declared in ``routes.OPERATIONS``; an unknown schedule answers 404."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.responses import Response

from ..admin import (
    delete_schedule,
    disable_schedule,
    enable_schedule,
    list_schedules,
    trigger_schedule,
)
from .context import WebContext
from .http import ApiError, answer
from .operation import Input
from .schedule_models import (
    ScheduleDeleted,
    ScheduleRequest,
    ScheduleResponse,
    Schedules,
    ScheduleTriggered,
)

__all__ = [
    "delete_schedule_handler",
    "disable_schedule_handler",
    "enable_schedule_handler",
    "get_schedules",
    "trigger_schedule_handler",
]


def _not_found(name: str) -> ApiError:
    return ApiError(404, "not_found", f"no schedule is named {name!r}", field="name")


async def get_schedules(ctx: WebContext, given: Input) -> Response:
    pool = await ctx.pools.open()
    return answer(Schedules.of(await list_schedules(pool)))


async def _schedule(pool: AsyncConnectionPool[Any], name: str) -> Response:
    for schedule in await list_schedules(pool):
        if schedule.name == name:
            return answer(ScheduleResponse.of(schedule))
    raise _not_found(name)  # deleted meanwhile


async def enable_schedule_handler(ctx: WebContext, given: Input) -> Response:
    name = given.body_as(ScheduleRequest).name
    pool = await ctx.pools.open()
    if not await enable_schedule(pool, name):
        raise _not_found(name)
    return await _schedule(pool, name)


async def disable_schedule_handler(ctx: WebContext, given: Input) -> Response:
    name = given.body_as(ScheduleRequest).name
    pool = await ctx.pools.open()
    if not await disable_schedule(pool, name):
        raise _not_found(name)
    return await _schedule(pool, name)


async def trigger_schedule_handler(ctx: WebContext, given: Input) -> Response:
    name = given.body_as(ScheduleRequest).name
    pool = await ctx.pools.open()
    async with pool.connection() as conn:
        job_id = await trigger_schedule(conn, name)
    if job_id is None:
        raise _not_found(name)
    return answer(ScheduleTriggered.model_construct(name=name, job_id=job_id))


async def delete_schedule_handler(ctx: WebContext, given: Input) -> Response:
    name = given.body_as(ScheduleRequest).name
    pool = await ctx.pools.open()
    if not await delete_schedule(pool, name):
        raise _not_found(name)
    return answer(ScheduleDeleted.model_construct(name=name, deleted=True))
