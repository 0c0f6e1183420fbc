"""The dashboard's forms: login, logout, and the actions that change the queue (retry, cancel,
purge; pause, resume and limit a channel; enable, disable, trigger and delete a schedule). Each
action needs a login session, the session's CSRF token in the form, and a same-origin request;
it answers with a redirect and a flash message."""

from __future__ import annotations

import asyncio
import uuid

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..admin import (
    cancel,
    delete_schedule,
    disable_schedule,
    enable_schedule,
    pause_channel,
    purge,
    resume_channel,
    retry,
    set_channel_limit,
    trigger_schedule,
)
from ..errors import ConfigurationError
from .context import WebContext, base_path
from .fields import canonical_uuid
from .forms import Form, flash_redirect, form_days, plural, read_form, refuse
from .http import ApiError, bad
from .render import Session, html_error, is_https, render
from .security import SESSION_COOKIE, SESSION_LIFETIME_S, cross_origin_reason, safe_next

__all__ = [
    "SCHEDULE_CHANGES",
    "cancel_action",
    "limit_action",
    "login",
    "login_page",
    "logout",
    "pause_action",
    "purge_action",
    "resume_action",
    "retry_action",
    "schedule_action",
]


def _form_ids(form: Form) -> list[uuid.UUID]:
    try:
        ids = [canonical_uuid(value) for value in form.getlist("id")]
    except ValueError as exc:
        raise bad("id", f"id: {exc}") from exc
    if not ids:
        raise ApiError(400, "bad_request", "select at least one job")
    return ids


async def retry_action(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    ids = _form_ids(form)
    pool = await ctx.pools.open()
    retried = await retry(pool, ids)
    message = f"Retried {plural(len(retried), 'job')}."
    if len(retried) < len(ids):
        message += f" {len(ids) - len(retried)} not retried: only failed jobs can be."
    return flash_redirect(request, form, message)


async def cancel_action(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    ids = _form_ids(form)
    reason = (form.get("reason") or "").strip() or "cancelled from the dashboard"
    pool = await ctx.pools.open()
    outcomes = await cancel(pool, ids, reason.replace("\x00", ""))
    cancelled = sum(1 for o in outcomes.values() if o == "cancelled")
    requested = len(outcomes) - cancelled
    message = f"Cancelled {plural(cancelled, 'job')}."
    if requested:
        message += f" Asked the runners of {plural(requested, 'running job')} to stop."
    if len(outcomes) < len(ids):
        message += f" {len(ids) - len(outcomes)} already finished or unknown."
    return flash_redirect(request, form, message)


async def purge_action(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    failed = form_days(form, "failed_days")
    history = form_days(form, "history_days")
    pool = await ctx.pools.open()
    result = await purge(pool, failed_before=failed, history_before=history)
    message = (
        f"Purged {plural(result.failed, 'failed job')} and "
        f"{plural(result.history, 'history entry')}."
    ).replace("entrys", "entries")
    if result.chains_kept:
        waiting = sum(c.waiting for c in result.chains_kept)
        message += (
            f" Kept the failed head of {plural(len(result.chains_kept), 'ordered chain')}: "
            f"purging it would run the {waiting} waiting behind (retry or cancel it, or delete "
            "it with the job list's bulk delete, which asks)."
        )
    return flash_redirect(request, form, message)


def _channel(form: Form) -> str:
    channel = form.get("channel")
    if channel is None:
        raise bad("channel", "channel: missing")
    return channel


def _limit(form: Form) -> int | None:
    text = (form.get("limit") or "").strip()
    if not text or text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError as exc:
        raise bad("limit", "limit must be a whole number >= 0, or empty for none") from exc


async def _change_channel(
    ctx: WebContext, request: Request, change: str, limit: bool = False
) -> Response:
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    channel = _channel(form)
    max_running = _limit(form) if limit else None
    pool = await ctx.pools.open()
    try:
        if change == "pause":
            await pause_channel(pool, channel)
            message = f"Paused {channel!r}: its running jobs finish, no new one starts."
        elif change == "resume":
            await resume_channel(pool, channel)
            message = f"Resumed {channel!r}."
        else:
            await set_channel_limit(pool, channel, max_running)
            message = (
                f"Removed the limit of {channel!r}."
                if max_running is None
                else f"Limited {channel!r} to {plural(max_running, 'running job')}."
            )
    except ConfigurationError as exc:
        raise bad("limit" if limit else "channel", str(exc)) from exc
    return flash_redirect(request, form, message)


async def pause_action(ctx: WebContext, request: Request) -> Response:
    return await _change_channel(ctx, request, "pause")


async def resume_action(ctx: WebContext, request: Request) -> Response:
    return await _change_channel(ctx, request, "resume")


async def limit_action(ctx: WebContext, request: Request) -> Response:
    return await _change_channel(ctx, request, "limit", limit=True)


SCHEDULE_CHANGES = ("enable", "disable", "trigger", "delete")
"""The schedule actions, each at ``/actions/schedule-<change>``."""


async def schedule_action(ctx: WebContext, request: Request, change: str) -> Response:
    """Enables, disables, triggers or deletes the form's ``schedule``."""
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    name = form.get("schedule")
    if name is None:
        raise bad("schedule", "schedule: missing")
    pool = await ctx.pools.open()
    try:
        if change == "trigger":
            job_id = await trigger_schedule(pool, name)
            found = job_id is not None
            message = f"Triggered {name!r}: spawned job {job_id}."
        else:
            operate = {
                "enable": enable_schedule,
                "disable": disable_schedule,
                "delete": delete_schedule,
            }[change]
            found = await operate(pool, name)
            message = f"{change.capitalize()}d {name!r}."
    except ConfigurationError as exc:
        raise bad("schedule", str(exc)) from exc
    if not found:
        raise ApiError(404, "not_found", f"no schedule is named {name!r}", field="schedule")
    return flash_redirect(request, form, message)


async def login_page(ctx: WebContext, request: Request) -> Response:
    return render(
        ctx,
        request,
        "login.html",
        next=safe_next(base_path(request.scope), request.query_params.get("next")),
    )


async def login(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    base = base_path(request.scope)
    next_url = safe_next(base, form.get("next"))
    if ctx.sessions is None:
        return render(ctx, request, "login.html", status=403, next=next_url)
    reason = cross_origin_reason(request)
    if reason is not None:
        return html_error(ctx, request, 403, f"Refused: {reason}.")
    if not ctx.sessions.token_matches(form.get("token") or ""):
        await asyncio.sleep(0.3)  # slows down guessing
        return render(
            ctx, request, "login.html", status=401, next=next_url, error="That is not the token."
        )
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        ctx.sessions.new(),
        max_age=SESSION_LIFETIME_S,
        path=base + "/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


async def logout(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    base = base_path(request.scope)
    if Session(ctx, request).logged_in:  # an expired session just loses its cookie
        refusal = refuse(ctx, request, form)
        if refusal is not None:
            return refusal
    response = RedirectResponse(base + "/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=base + "/", httponly=True, samesite="strict")
    return response
