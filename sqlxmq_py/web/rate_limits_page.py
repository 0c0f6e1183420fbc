"""The dashboard's rate-limits page (``/rate-limits``): the rules, the busiest keys (starts in
the current window, when a spent key allows a start again), and, logged in, forms that set or
remove a rule (the session's CSRF token, same origin, as every form that changes the queue).
Every key and pattern is escaped by the template."""

from __future__ import annotations

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


def _number(form: Form, name: str, kind: type[int] | type[float]) -> float:
    text = (form.get(name) or "").strip()
    try:
        return kind(text)
    except ValueError as exc:
        what = "a whole number >= 1" if kind is int else "a number of seconds > 0"
        raise bad(name, f"{name} must be {what}, got {text[:40]!r}") from exc


async def rate_limit_set_action(ctx: WebContext, request: Request) -> Response:
    """Sets (or replaces) the form's rule: ``pattern``, ``max_starts``, ``period_s``."""
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    pattern = _pattern(form)
    max_starts = int(_number(form, "max_starts", int))
    period_s = _number(form, "period_s", float)
    if not 0 < period_s <= 100 * 365 * 86400:
        raise bad("period_s", f"period_s must be a number of seconds > 0, got {period_s}")
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
