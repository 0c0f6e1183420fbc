"""A dashboard form post from end to end, shared by the forms that change the queue
(``actions``, ``bulk_actions``): reading the body, refusing a post that may not change anything
(no token, another origin, no login, a stale CSRF token), reading its fields, and the redirect
with a flash message that answers it."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .context import WebContext, base_path
from .http import ApiError
from .render import FLASH_COOKIE, Session, html_error, is_https
from .security import cross_origin_reason, safe_next

__all__ = ["MAX_FORM_BYTES", "Form", "flash_redirect", "form_days", "plural", "read_form", "refuse"]

MAX_FORM_BYTES = 1024 * 1024


class Form:
    """A parsed ``application/x-www-form-urlencoded`` body."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        """The form's (name, value) pairs, in the order posted."""
        self.pairs = pairs

    def get(self, name: str) -> str | None:
        """The field's last value, or ``None`` if the form has no such field."""
        values = self.getlist(name)
        return values[-1] if values else None

    def getlist(self, name: str) -> list[str]:
        """Every value of the field, in the order posted."""
        return [v for k, v in self.pairs if k == name]


async def read_form(request: Request) -> Form:
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
    return Form(pairs)


def refuse(ctx: WebContext, request: Request, form: Form) -> Response | None:
    """The refusal of a state-changing form post (an error page saying why), or ``None`` if
    it may go ahead: the dashboard has a token, the post comes from its own origin, with a login
    session and that session's CSRF token."""
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
    session = Session(ctx, request)
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


def flash_redirect(request: Request, form: Form, message: str) -> Response:
    """The answer to a form post that did its work: a redirect (303) to the form's ``next``
    page (a path of this dashboard, else its overview), with ``message`` in a one-minute flash
    cookie that the next page shows."""
    base = base_path(request.scope)
    response = RedirectResponse(safe_next(base, form.get("next")), status_code=303)
    response.set_cookie(
        FLASH_COOKIE,
        quote(message),
        max_age=60,
        path=base + "/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )
    return response


def plural(count: int, noun: str) -> str:
    """``"1 job"``, ``"3 jobs"``: a count and its noun, in the plural unless it is one."""
    return f"{count} {noun}" + ("" if count == 1 else "s")


def form_days(form: Form, name: str) -> timedelta | None:
    """The field ``name`` as a number of days (0 to 36,500, fractions allowed), or ``None`` if
    it is blank.

    Raises:
        ApiError: 400, naming the field, if it is not such a number.
    """
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
