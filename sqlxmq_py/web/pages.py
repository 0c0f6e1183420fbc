"""The dashboard's pages (Jinja2 templates in ``templates/``, rendered by ``render.py``):
the overview, the job list, a job's page, the channels, the schedules and the live workers.
Pages are readable without a token; the forms that change the queue are in ``actions.py``. The
pages read through the same queries and query models as the HTTP API."""

from __future__ import annotations

import functools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from markupsafe import Markup
from pydantic import AfterValidator, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import admin
from ..admin import (
    STALE_AFTER,
    JobStatus,
    attempt_errors,
    blocked_chains,
    job_status,
    list_channels,
    list_schedules,
    list_workers,
    paused_channels,
    queue_counts,
    throughput,
)
from . import queries
from .actions import (
    SCHEDULE_CHANGES,
    cancel_action,
    limit_action,
    login,
    login_page,
    logout,
    pause_action,
    purge_action,
    resume_action,
    retry_action,
    schedule_action,
)
from .bulk_actions import bulk_action
from .charts import bar_chart, bin_buckets
from .context import WebContext, base_path
from .fields import Model, QueryDigits, Text
from .http import path_id, read_query
from .rate_limits_page import rate_limit_remove_action, rate_limit_set_action, rate_limits_page
from .render import PageHandler, first_line, html_error, page, render
from .requests import STATES, JobListQuery
from .responses import RATE_WAITING
from .workflows import (
    workflow_cancel_action,
    workflow_page,
    workflow_retry_action,
    workflows_page,
)

__all__ = ["page_routes"]

CHART_RANGES = (60, 360, 1440)
"""Minutes the overview's charts can show: an hour, six hours, a day."""
COUNT_STATES = ("ready", "running", "scheduled", "waiting", "uncommitted", "failed")
"""Columns of the overview's table (retrying jobs count as scheduled there)."""
FINISHED = frozenset({"completed", "cancelled"})


def _chart_range(value: int) -> int:
    if value not in CHART_RANGES:
        raise ValueError(f"must be one of {', '.join(str(r) for r in CHART_RANGES)}, got {value}")
    return value


class OverviewQuery(Model):
    """The overview's query parameters."""

    minutes: Annotated[int, QueryDigits, AfterValidator(_chart_range)] = Field(
        60, description="The charts' range."
    )
    channel: Text | None = Field(None, description="Only this channel's throughput.")


async def overview(ctx: WebContext, request: Request) -> Response:
    query = read_query(request, OverviewQuery)
    minutes = query.minutes
    chart_channel = query.channel or None
    pool = await ctx.pools.open()
    counts = await queue_counts(pool, exact=False)
    chains = await blocked_chains(pool)
    paused = await paused_channels(pool)
    since = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=minutes - 1)
    buckets = await throughput(pool, since, chart_channel)

    channels: dict[str, dict[str, Any]] = {}
    totals: dict[str, int] = dict.fromkeys(COUNT_STATES, 0)
    exact: dict[str, bool] = dict.fromkeys(COUNT_STATES, True)
    oldest: float | None = None
    for count in counts:
        state = "scheduled" if count.state == "retrying" else count.state
        row = channels.setdefault(
            count.channel_name,
            {
                "counts": dict.fromkeys(COUNT_STATES, 0),
                "exact": dict.fromkeys(COUNT_STATES, True),
                "oldest": None,
                "oldest_exact": True,
            },
        )
        row["counts"][state] += count.count
        row["exact"][state] = row["exact"][state] and count.exact
        totals[state] += count.count
        exact[state] = exact[state] and count.exact
        if count.oldest_ready_age_s is not None:
            row["oldest"] = count.oldest_ready_age_s
            row["oldest_exact"] = count.exact
            oldest = max(oldest or 0.0, count.oldest_ready_age_s)
    bins = bin_buckets(buckets, since, minutes)
    finished = {
        "completed": sum(b.completed for b in buckets),
        "retried": sum(b.retried for b in buckets),
        "failed": sum(b.failed for b in buckets),
        "interrupted": sum(b.interrupted for b in buckets),
    }
    step = int(bins[0].width.total_seconds() // 60) if bins else 1
    per = "minute" if step == 1 else f"{step} minutes"
    return render(
        ctx,
        request,
        "overview.html",
        channels=sorted(channels.items()),
        states=COUNT_STATES,
        totals=totals,
        exact=exact,
        all_exact=all(exact.values()),
        queued=sum(totals.values()),
        oldest=oldest,
        chains=chains,
        paused=paused,
        minutes=minutes,
        ranges=CHART_RANGES,
        chart_channel=chart_channel,
        per=per,
        finished=finished,
        estimate_above=admin.ESTIMATE_ABOVE,
        # bar_chart escapes every text it writes
        throughput_svg=Markup(  # noqa: S704
            bar_chart(
                bins, ["completed", "retried", "failed"], label=f"Finished attempts per {per}"
            )
        ),
        failures_svg=Markup(  # noqa: S704
            bar_chart(bins, ["retried", "failed"], label=f"Failed attempts per {per}")
        ),
    )


def _html_filters(request: Request) -> dict[str, Any]:
    """The job list's filters: the API's (``JobListQuery``), except that an empty text box
    filters nothing (``default_channel=1`` picks the default channel ``""``)."""
    params = request.query_params
    query = read_query(request, JobListQuery)
    filters: dict[str, Any] = {
        "states": query.state,
        "channel_name": query.channel_name,
        "name": query.name,
        "job_key": query.job_key,
        "limit": query.limit,
        "before": query.before,
    }
    for name in ("channel_name", "name", "job_key"):
        if not params.get(name):
            filters[name] = None
    if params.get("default_channel"):
        filters["channel_name"] = ""
    return filters


async def jobs_page(ctx: WebContext, request: Request) -> Response:
    filters = _html_filters(request)
    pool = await ctx.pools.open()
    jobs, next_before = await queries.page_jobs(pool, **filters)
    kept: list[tuple[str, str]] = [("state", s) for s in filters["states"] or []]
    for name in ("channel_name", "name", "job_key"):
        if filters[name]:
            kept.append((name, filters[name]))
    if filters["channel_name"] == "":
        kept.append(("default_channel", "1"))
    if filters["limit"] != 50:
        kept.append(("limit", str(filters["limit"])))
    base = base_path(request.scope)
    next_url = (
        None
        if next_before is None
        else f"{base}/jobs?" + urlencode([*kept, ("before", str(next_before))])
    )
    first_url = f"{base}/jobs" + (f"?{urlencode(kept)}" if kept else "")
    return render(
        ctx,
        request,
        "jobs.html",
        jobs=jobs,
        filters=filters,
        all_states=STATES,
        known_channels=[c for c in await queries.channel_names(pool) if c],
        next_url=next_url,
        first_url=first_url if filters["before"] is not None else None,
    )


def _pretty_json(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=False)
    except (ValueError, RecursionError):
        return text


async def _statuses(pool: Any, ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, JobStatus | None]]:
    return [(job_id, await job_status(pool, job_id)) for job_id in ids]


async def job_page(ctx: WebContext, request: Request) -> Response:
    job_id = path_id(request)
    pool = await ctx.pools.open()
    status = await job_status(pool, job_id)
    if status is None:
        return html_error(
            ctx,
            request,
            404,
            f"Job {job_id} is neither queued nor kept in the history (a job that completed "
            "without retain_for leaves no trace).",
        )
    details = await queries.job_details(pool, job_id)
    chain = await queries.job_chain(pool, job_id)
    parents, children = await queries.job_links(pool, job_id)
    parent_statuses = await _statuses(pool, parents)
    return render(
        ctx,
        request,
        "job.html",
        job=status,
        details=details,
        payload=_pretty_json(details.payload_json if details else None),
        result=None
        if status.state != "completed"
        else json.dumps(status.result, indent=2, ensure_ascii=False),
        chain=chain,
        worker=await queries.job_worker(pool, job_id) if status.state == "running" else None,
        parents=parent_statuses,
        open_parents=sum(
            1 for _, s in parent_statuses if s is not None and s.state not in FINISHED
        ),
        children=await _statuses(pool, children),
        workflow_step=await queries.job_workflow_step(pool, job_id),
        rate_waits=status.rate_waits if status.state in RATE_WAITING else (),
        finished=status.state in FINISHED,
        error_summary=first_line(status.last_error),
        earlier_errors=[
            (e.attempt, e.at, first_line(e.error))
            for e in await attempt_errors(pool, job_id)
            if e.error.rstrip() != (status.last_error or "").rstrip()[:4000]
        ],
    )


async def workers_page(ctx: WebContext, request: Request) -> Response:
    pool = await ctx.pools.open()
    return render(
        ctx, request, "workers.html", workers=await list_workers(pool), stale_after=STALE_AFTER
    )


async def channels_page(ctx: WebContext, request: Request) -> Response:
    pool = await ctx.pools.open()
    return render(ctx, request, "channels.html", channels=await list_channels(pool))


async def schedules_page(ctx: WebContext, request: Request) -> Response:
    pool = await ctx.pools.open()
    return render(ctx, request, "schedules.html", schedules=await list_schedules(pool))


def page_routes(ctx: WebContext) -> list[Route]:
    """The dashboard's routes."""

    def route(path: str, handler: PageHandler, method: str = "GET") -> Route:
        return Route(path, page(ctx, handler), methods=[method], name=handler.__name__)

    return [
        route("/", overview),
        route("/jobs", jobs_page),
        route("/jobs/{id}", job_page),
        route("/workers", workers_page),
        route("/channels", channels_page),
        route("/schedules", schedules_page),
        route("/workflows", workflows_page),
        route("/workflows/{id}", workflow_page),
        route("/actions/workflow-cancel", workflow_cancel_action, "POST"),
        route("/actions/workflow-retry", workflow_retry_action, "POST"),
        route("/rate-limits", rate_limits_page),
        route("/actions/rate-limit-set", rate_limit_set_action, "POST"),
        route("/actions/rate-limit-remove", rate_limit_remove_action, "POST"),
        route("/login", login_page),
        route("/login", login, "POST"),
        route("/logout", logout, "POST"),
        route("/actions/retry", retry_action, "POST"),
        route("/actions/cancel", cancel_action, "POST"),
        route("/actions/purge", purge_action, "POST"),
        route("/actions/bulk", bulk_action, "POST"),
        route("/actions/pause", pause_action, "POST"),
        route("/actions/resume", resume_action, "POST"),
        route("/actions/limit", limit_action, "POST"),
        *(
            Route(
                f"/actions/schedule-{change}",
                page(ctx, functools.partial(schedule_action, change=change)),
                methods=["POST"],
                name=f"schedule_{change}_action",
            )
            for change in SCHEDULE_CHANGES
        ),
    ]
