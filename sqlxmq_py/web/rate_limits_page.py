"""The dashboard's rate-limits page (``/rate-limits``): the rules, the busiest keys (starts in
the current window, when a spent key allows a start again), and, logged in, forms that set or
remove a rule (the session's CSRF token, same origin, as every form that changes the queue).
Every key and pattern is escaped by the template."""

from __future__ import annotations

import re
from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from ..admin import (
    BUSIEST_KEYS,
    busiest_rate_keys,
    list_rate_limits,
    remove_rate_limit,
    set_rate_limit,
)
from ..errors import ConfigurationError
from .context import WebContext
from .fields import MAX_SECONDS
from .forms import Form, flash_redirect, plural, read_form, refuse
from .http import ApiError, bad
from .render import render

__all__ = ["rate_limit_remove_action", "rate_limit_set_action", "rate_limits_page"]


async def rate_limits_page(ctx: WebContext, request: Request) -> Response:
    """The rules, and the keys in use, the fullest first."""
    pool = await ctx.pools.open()
    return render(
        ctx,
        request,
        "rate_limits.html",
        rules=await list_rate_limits(pool),
        keys=await busiest_rate_keys(pool, BUSIEST_KEYS),
        keys_limit=BUSIEST_KEYS,
    )


def _pattern(form: Form) -> str:
    pattern = form.get("pattern")
    if not pattern:
        raise bad("pattern", "pattern: missing")
    return pattern


_STARTS = re.compile(r"[0-9]{1,10}", re.ASCII)
_SECONDS = re.compile(r"[0-9]{1,10}(\.[0-9]{1,6})?|\.[0-9]{1,6}", re.ASCII)
_MAX_STARTS = 2**31 - 1


def _max_starts(form: Form) -> int:
    text = (form.get("max_starts") or "").strip()
    # ASCII digits only: int() also takes "٣" and "1_0"
    if not _STARTS.fullmatch(text) or not 1 <= int(text) <= _MAX_STARTS:
        raise bad("max_starts", f"max_starts must be a whole number from 1 to {_MAX_STARTS}")
    return int(text)


def _period_s(form: Form) -> float:
    text = (form.get("period_s") or "").strip()
    # digits and a point only: float() also takes "nan", "inf" and "1e309"
    if not _SECONDS.fullmatch(text) or not 0 < float(text) <= MAX_SECONDS:
        raise bad("period_s", f"period_s must be a number of seconds > 0, up to {MAX_SECONDS}")
    return float(text)


async def rate_limit_set_action(ctx: WebContext, request: Request) -> Response:
    """Sets (or replaces) the form's rule: ``pattern``, ``max_starts``, ``period_s``."""
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    pattern = _pattern(form)
    max_starts = _max_starts(form)
    period_s = _period_s(form)
    pool = await ctx.pools.open()
    try:
        await set_rate_limit(pool, pattern, max_starts, per=timedelta(seconds=period_s))
    except ConfigurationError as exc:
        raise bad("pattern", str(exc)) from exc
    message = f"Rule {pattern!r}: {plural(max_starts, 'start')} per {period_s:g} s."
    return flash_redirect(request, form, message)


async def rate_limit_remove_action(ctx: WebContext, request: Request) -> Response:
    """Removes the form's rule (``pattern``)."""
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    pattern = _pattern(form)
    pool = await ctx.pools.open()
    try:
        removed = await remove_rate_limit(pool, pattern)
    except ConfigurationError as exc:
        raise bad("pattern", str(exc)) from exc
    if not removed:
        raise ApiError(
            404, "not_found", f"no rate rule has the pattern {pattern!r}", field="pattern"
        )
    return flash_redirect(request, form, f"Removed the rule {pattern!r}.")
