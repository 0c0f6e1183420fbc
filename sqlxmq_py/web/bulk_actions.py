"""The dashboard's bulk action: retry, cancel, delete or run now every job matching the job
list's filters, not one page at a time. The first post counts the jobs (and, for a delete, the
ordered chains it would release) and shows a confirm step; the second, which carries the
count the user saw, acts in batches. Both need a login session and the CSRF token."""

from __future__ import annotations

from typing import cast, get_args

from starlette.requests import Request
from starlette.responses import Response

from ..admin import (
    BulkAction,
    ChainsWouldBeReleasedError,
    JobFilter,
    cancel_matching,
    chains_released,
    count_matching,
    delete_matching,
    retry_matching,
    run_now,
)
from ..states import StateName
from .context import WebContext
from .forms import Form, flash_redirect, form_days, plural, read_form, refuse
from .http import bad
from .render import html_error, render

__all__ = ["bulk_action"]

VERBS: dict[str, tuple[str, str]] = {
    "retry": ("Retry", "Retried"),
    "cancel": ("Cancel", "Cancelled"),
    "delete": ("Delete", "Deleted"),
    "run_now": ("Run now", "Made ready"),
}
"""Each action's button label and past tense."""

_FILTER_FIELDS = ("state", "channel_name", "default_channel", "name", "job_key", "error")


def _action(form: Form) -> BulkAction:
    action = form.get("action")
    if action not in get_args(BulkAction):
        raise bad("action", f"action must be one of {', '.join(get_args(BulkAction))}")
    return cast(BulkAction, action)


def form_filter(form: Form) -> JobFilter:
    """The filter of the job list's bulk form (an empty text box filters nothing)."""
    states = form.getlist("state")
    channel = form.get("channel_name") or None
    if form.get("default_channel"):
        channel = ""
    return JobFilter(
        states=cast(list[StateName], states) if states else None,
        channel_name=channel,
        name=form.get("name") or None,
        job_key=form.get("job_key") or None,
        error=form.get("error") or None,
        older_than=form_days(form, "older_days"),
    )


_FILTER_LABELS = {
    "state": "state",
    "channel_name": "channel",
    "name": "name",
    "job_key": "key",
    "error": "error contains",
    "older_days": "older than (days)",
}
"""How the confirm step names each filter it restates."""


def _described(form: Form) -> list[tuple[str, str]]:
    """The filter as the confirm step restates it, so that the count is read with what it
    counts (the error and age filters are not visible on the job list)."""
    shown = [(_FILTER_LABELS[k], v) for k, v in form.pairs if k in _FILTER_LABELS and v != ""]
    if form.get("default_channel"):
        shown = [(k, v) for k, v in shown if k != "channel"] + [("channel", "(default)")]
    return shown


def _kept(form: Form) -> list[tuple[str, str]]:
    """The form's filter, action and next page, to post again from the confirm step."""
    wanted = (*_FILTER_FIELDS, "older_days", "action", "reason", "next")
    return [(k, v) for k, v in form.pairs if k in wanted and v != ""]


async def bulk_action(ctx: WebContext, request: Request) -> Response:
    form = await read_form(request)
    refusal = refuse(ctx, request, form)
    if refusal is not None:
        return refusal
    action = _action(form)
    job_filter = form_filter(form)
    pool = await ctx.pools.open()
    verb, done = VERBS[action]
    if form.get("confirm_count") is None:
        count = await count_matching(pool, job_filter, action=action)
        chains = await chains_released(pool, job_filter) if action == "delete" else []
        return render(
            ctx,
            request,
            "bulk_confirm.html",
            verb=verb,
            action=action,
            count=count,
            chains=chains,
            fields=_kept(form),
            described=_described(form),
            back=form.get("next") or "",
        )
    reason = (form.get("reason") or "").strip() or "cancelled from the dashboard"
    if action == "retry":
        changed = await retry_matching(pool, job_filter)
    elif action == "cancel":
        changed = await cancel_matching(pool, job_filter, reason=reason.replace("\x00", ""))
    elif action == "run_now":
        changed = await run_now(pool, job_filter)
    else:
        try:
            changed = await delete_matching(
                pool, job_filter, release_chains=form.get("release_chains") == "1"
            )
        except ChainsWouldBeReleasedError as exc:
            return html_error(ctx, request, 409, f"Nothing was deleted: {exc}.")
    return flash_redirect(request, form, f"{done} {plural(changed, 'job')}.")
