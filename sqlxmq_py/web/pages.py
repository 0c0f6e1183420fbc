"""The dashboard's HTML pages (Jinja2, autoescaped) and its form actions.

Pages are readable without a token. Actions (retry, cancel, purge) are form posts that need a
login session, the session's CSRF token in the form, and a same-origin request.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import admin
from ..admin import (
    JobStatus,
    attempt_errors,
    blocked_chains,
    cancel,
    job_status,
    purge,
    queue_counts,
    retry,
    throughput,
)
from ..errors import ConfigurationError, PayloadError
from . import queries
from .api import (
    STATES,
    ApiError,
    database_error,
    list_filters,
    page_jobs,
    parse_uuid,
    query_text,
)
from .charts import bar_chart, bin_buckets
from .context import WebContext, base_path
from .security import SESSION_COOKIE, SESSION_LIFETIME_S, cross_origin_reason, safe_next

__all__ = ["html_error", "page_routes"]

FLASH_COOKIE = "sqlxmq_flash"
MAX_FORM_BYTES = 1024 * 1024
CHART_RANGES = (60, 360, 1440)
"""Minutes the overview's charts can show: an hour, six hours, a day."""
COUNT_STATES = ("ready", "running", "scheduled", "waiting", "uncommitted", "failed")
"""Columns of the overview's table (retrying jobs count as scheduled there)."""
FINISHED = frozenset({"completed", "cancelled"})


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return ""
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 1:
        return "now"
    if seconds < 90:
        text = f"{seconds:.0f} s"
    elif seconds < 90 * 60:
        text = f"{seconds / 60:.0f} min"
    elif seconds < 36 * 3600:
        text = f"{seconds / 3600:.1f} h"
    else:
        text = f"{seconds / 86400:.1f} days"
    return f"in {text}" if future else f"{text} ago"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 90:
        return f"{max(seconds, 0):.1f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _ts(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _seconds(value: timedelta | None) -> str:
    return "" if value is None else _age(value.total_seconds())


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    # a traceback's last line says what happened; a plain message's first line does
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def _approx(value: int) -> str:
    """An estimated count, to two significant digits: 1,234,567 -> "≈1,200,000"."""
    digits = len(str(value))
    rounded = round(value, -(digits - 2)) if digits > 2 else value
    return f"≈{rounded:,}"


def _channel(value: str) -> Markup:
    """A channel name for display: the default channel ``""`` is shown as (default)."""
    if value == "":
        return Markup('<span class="muted">(default)</span>')
    return Markup.escape(value)


def make_environment() -> jinja2.Environment:
    """The Jinja2 environment of the pages: autoescaped, strict about undefined names."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sqlxmq_py.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        ago=_ago,
        age=_age,
        ts=_ts,
        seconds=_seconds,
        first_line=_first_line,
        channel=_channel,
        approx=_approx,
    )
    return env


_ENV = make_environment()


class _Session:
    """The request's login state."""

    def __init__(self, ctx: WebContext, request: Request) -> None:
        self.nonce = (
            None
            if ctx.sessions is None
            else ctx.sessions.nonce(request.cookies.get(SESSION_COOKIE))
        )
        self.csrf = ""
        if self.nonce is not None and ctx.sessions is not None:
            self.csrf = ctx.sessions.csrf(self.nonce)

    @property
    def logged_in(self) -> bool:
        return self.nonce is not None


def _base(request: Request) -> str:
    return base_path(request.scope)


def _here(request: Request) -> str:
    """The request's path and query, from the ASGI scope (``request.url`` decodes the raw query
    as strict UTF-8, which a client's bytes need not be)."""
    path = str(request.scope.get("path", ""))
    raw_query = request.scope.get("query_string", b"")
    query = raw_query.decode("utf-8", "replace") if isinstance(raw_query, bytes) else ""
    return path + (f"?{query}" if query else "")


def _is_https(request: Request) -> bool:
    return request.scope.get("scheme") == "https"


def render(
    ctx: WebContext,
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """A page, with what every page shows: title, login state, flash message."""
    session = _Session(ctx, request)
    flash = request.cookies.get(FLASH_COOKIE)
    stale_session = SESSION_COOKIE in request.cookies and not session.logged_in
    base = _base(request)
    html = _ENV.get_template(template).render(
        base=base,
        title=ctx.title,
        read_only=ctx.token is None,
        logged_in=session.logged_in,
        csrf=session.csrf,
        flash=unquote(flash)[:500] if flash else None,
        here=_here(request),
        **values,
    )
    response = HTMLResponse(html, status_code=status, headers=dict(headers or {}))
    response.headers["cache-control"] = "no-store"
    if flash:
        response.delete_cookie(FLASH_COOKIE, path=base + "/")
    if stale_session:  # forged, garbled, expired or from an old token: start afresh
        response.delete_cookie(SESSION_COOKIE, path=base + "/", httponly=True, samesite="strict")
    return response


def html_error(
    ctx: WebContext,
    request: Request,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """An error page."""
    return render(
        ctx,
        request,
        "error.html",
        status=status,
        headers=headers,
        status_code=status,
        message=message,
    )


PageHandler = Callable[[WebContext, Request], Awaitable[Response]]


def _page(ctx: WebContext, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(ctx, request)
        except ApiError as exc:
            return html_error(ctx, request, exc.status, exc.detail)
        except (ConfigurationError, PayloadError) as exc:
            # input the pages did not check and the library refused: still the client's
            return html_error(ctx, request, 400, str(exc))
        except Exception as exc:
            mapped = database_error(exc)
            if mapped is None:
                raise
            return html_error(ctx, request, mapped.status, mapped.detail)

    return endpoint


# --- pages ----------------------------------------------------------------------------------


def _minutes(request: Request) -> int:
    text = query_text(request, "minutes")
    if text is None:
        return 60
    if text not in {str(r) for r in CHART_RANGES}:
        ranges = ", ".join(str(r) for r in CHART_RANGES)
        raise ApiError(
            400,
            "bad_request",
            f"minutes must be one of {ranges}, got {text[:40]!r}",
            field="minutes",
        )
    return int(text)


async def overview(ctx: WebContext, request: Request) -> Response:
    minutes = _minutes(request)
    chart_channel = query_text(request, "channel") or None
    pool = await ctx.pools.open()
    counts = await queue_counts(pool, exact=False)
    chains = await blocked_chains(pool)
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
    """The job list's filters: like the API's, except that an empty text box filters nothing
    (``default_channel=1`` picks the default channel ``""``)."""
    params = request.query_params
    filters = list_filters(request)
    for name in ("channel_name", "name", "job_key"):
        if not params.get(name):
            filters[name] = None
    if params.get("default_channel"):
        filters["channel_name"] = ""
    return filters


async def jobs_page(ctx: WebContext, request: Request) -> Response:
    filters = _html_filters(request)
    pool = await ctx.pools.open()
    jobs, next_before = await page_jobs(pool, **filters)
    kept: list[tuple[str, str]] = [("state", s) for s in filters["states"] or []]
    for name in ("channel_name", "name", "job_key"):
        if filters[name]:
            kept.append((name, filters[name]))
    if filters["channel_name"] == "":
        kept.append(("default_channel", "1"))
    if filters["limit"] != 50:
        kept.append(("limit", str(filters["limit"])))
    base = _base(request)
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
    job_id = parse_uuid("id", request.path_params["id"])
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
        parents=await _statuses(pool, parents),
        children=await _statuses(pool, children),
        finished=status.state in FINISHED,
        error_summary=_first_line(status.last_error),
        earlier_errors=[
            (e.attempt, e.at, _first_line(e.error))
            for e in await attempt_errors(pool, job_id)
            if e.error.rstrip() != (status.last_error or "").rstrip()[:4000]
        ],
    )


# --- login and actions ----------------------------------------------------------------------


class _Form:
    """A parsed ``application/x-www-form-urlencoded`` body."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs

    def get(self, name: str) -> str | None:
        values = self.getlist(name)
        return values[-1] if values else None

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]


async def read_form(request: Request) -> _Form:
    """The request's form (urlencoded; at most 1 MiB)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise ApiError(415, "unsupported_media_type", "expected a form post")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise ApiError(413, "payload_too_large", "the form is too large")
    try:
        # bytes that are not UTF-8 become U+FFFD, as percent-escapes that are not do in
        # parse_qsl: each field's own check then refuses the value by name
        text = body.decode("utf-8", "replace")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=5000)
    except ValueError as exc:
        raise ApiError(400, "bad_request", f"the form could not be read: {exc}") from exc
    return _Form(pairs)


def _refuse(ctx: WebContext, request: Request, form: _Form) -> Response | None:
    """The refusal of a state-changing form post, or ``None`` if it may go ahead."""
    if ctx.sessions is None:
        return html_error(
            ctx,
            request,
            403,
            "State changes are disabled: this dashboard was started without a token. Restart "
            "it with a token (sqlxmq dashboard --token ..., or create_app(..., token=...)).",
        )
    reason = cross_origin_reason(request)
    if reason is not None:
        return html_error(ctx, request, 403, f"Refused: {reason}.")
    session = _Session(ctx, request)
    if session.nonce is None:
        return html_error(
            ctx, request, 403, "Log in with the dashboard's token before changing anything."
        )
    if not ctx.sessions.csrf_matches(session.nonce, form.get("csrf")):
        return html_error(
            ctx,
            request,
            403,
            "Refused: the form's CSRF token is missing or stale. Reload the page and try again.",
        )
    return None


def _done(request: Request, form: _Form, message: str) -> Response:
    base = _base(request)
    response = RedirectResponse(safe_next(base, form.get("next")), status_code=303)
    response.set_cookie(
        FLASH_COOKIE,
        quote(message),
        max_age=60,
        path=base + "/",
        httponly=True,
        samesite="strict",
        secure=_is_https(request),
    )
    return response


def _form_ids(form: _Form) -> list[uuid.UUID]:
    ids = [parse_uuid("id", value) for value in form.getlist("id")]
    if not ids:
        raise ApiError(400, "bad_request", "select at least one job")
    return ids


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


async def retry_action(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    refusal = _refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    ids = _form_ids(form)
    pool = await ctx.pools.open()
    retried = await retry(pool, ids)
    message = f"Retried {_plural(len(retried), 'job')}."
    if len(retried) < len(ids):
        message += f" {len(ids) - len(retried)} not retried: only failed jobs can be."
    return _done(request, form, message)


async def cancel_action(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    refusal = _refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    ids = _form_ids(form)
    reason = (form.get("reason") or "").strip() or "cancelled from the dashboard"
    pool = await ctx.pools.open()
    outcomes = await cancel(pool, ids, reason.replace("\x00", ""))
    cancelled = sum(1 for o in outcomes.values() if o == "cancelled")
    requested = len(outcomes) - cancelled
    message = f"Cancelled {_plural(cancelled, 'job')}."
    if requested:
        message += f" Asked the runners of {_plural(requested, 'running job')} to stop."
    if len(outcomes) < len(ids):
        message += f" {len(ids) - len(outcomes)} already finished or unknown."
    return _done(request, form, message)


def _days(form: _Form, name: str) -> timedelta | None:
    text = (form.get(name) or "").strip()
    if not text:
        return None
    try:
        days = float(text)
    except ValueError:
        days = -1.0
    if not 0 <= days <= 36500:
        raise ApiError(400, "bad_request", f"{name} must be a number of days from 0 to 36500")
    return timedelta(days=days)


async def purge_action(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    refusal = _refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    failed = _days(form, "failed_days")
    history = _days(form, "history_days")
    pool = await ctx.pools.open()
    result = await purge(pool, failed_before=failed, history_before=history)
    message = (
        f"Purged {_plural(result.failed, 'failed job')} and "
        f"{_plural(result.history, 'history entry')}."
    ).replace("entrys", "entries")
    return _done(request, form, message)


async def login_page(ctx: WebContext, request: Request) -> Response:
    return render(
        ctx, request, "login.html", next=safe_next(_base(request), request.query_params.get("next"))
    )


async def login(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    base = _base(request)
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
        secure=_is_https(request),
    )
    return response


async def logout(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    base = _base(request)
    if _Session(ctx, request).logged_in:  # an expired session just loses its cookie
        refusal = _refuse(ctx, request, form)
        if refusal is not None:
            return refusal
    response = RedirectResponse(base + "/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=base + "/", httponly=True, samesite="strict")
    return response


def page_routes(ctx: WebContext) -> list[Route]:
    """The dashboard's routes."""

    def route(path: str, handler: PageHandler, method: str = "GET") -> Route:
        return Route(path, _page(ctx, handler), methods=[method], name=handler.__name__)

    return [
        route("/", overview),
        route("/jobs", jobs_page),
        route("/jobs/{id}", job_page),
        route("/login", login_page),
        route("/login", login, "POST"),
        route("/logout", logout, "POST"),
        route("/actions/retry", retry_action, "POST"),
        route("/actions/cancel", cancel_action, "POST"),
        route("/actions/purge", purge_action, "POST"),
    ]
