"""Who may change the queue: the bearer token (API), and for the dashboard a login session with a
per-session CSRF token, checked together with the request's origin.

The session is stateless: its cookie carries an expiry and a random nonce, signed with a key
derived from the token, and the session's CSRF token is derived from the same nonce. Changing the
token therefore ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

__all__ = [
    "SESSION_COOKIE",
    "SESSION_LIFETIME_S",
    "Sessions",
    "bearer_matches",
    "cross_origin_reason",
    "safe_next",
]

SESSION_COOKIE = "sqlxmq_session"
SESSION_LIFETIME_S = 8 * 3600
"""A dashboard login lasts eight hours."""
_SESSION_FORMAT = re.compile(r"v1\.([0-9]{1,12})\.([0-9a-f]{32})\.([0-9a-f]{64})", re.ASCII)
"""A session cookie as ``Sessions.new`` makes it; anything else is no session."""


def _token_matches(expected: str, given: str) -> bool:
    """Constant-time comparison of any two texts (as UTF-8 bytes: ``hmac.compare_digest``
    refuses non-ASCII ``str``; a lone surrogate is replaced, and then does not match)."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "replace"))


def bearer_matches(token: str, authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>``."""
    if not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and _token_matches(token, given.strip())


class Sessions:
    """Signs and checks dashboard sessions and their CSRF tokens for one token."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._key = hashlib.sha256(b"sqlxmq dashboard session\x00" + token.encode()).digest()

    def token_matches(self, given: str) -> bool:
        """Whether a token typed on the login page is the configured one (constant time)."""
        return _token_matches(self._token, given)

    def _sign(self, *parts: str) -> str:
        return hmac.new(self._key, "|".join(parts).encode(), hashlib.sha256).hexdigest()

    def new(self, now: float | None = None) -> str:
        """A new session cookie value."""
        expires = str(int((time.time() if now is None else now) + SESSION_LIFETIME_S))
        nonce = secrets.token_hex(16)
        return f"v1.{expires}.{nonce}.{self._sign('session', expires, nonce)}"

    def nonce(self, cookie: str | None, now: float | None = None) -> str | None:
        """The nonce of a valid, unexpired session cookie, else ``None`` (for any text: a
        cookie that is not one this class made is no session, never an error)."""
        match = _SESSION_FORMAT.fullmatch(cookie) if isinstance(cookie, str) else None
        if match is None:
            return None
        expires, nonce, signature = match.groups()
        if not _token_matches(self._sign("session", expires, nonce), signature):
            return None
        if int(expires) < (time.time() if now is None else now):
            return None
        return nonce

    def csrf(self, nonce: str) -> str:
        """The CSRF token of the session with this nonce."""
        return self._sign("csrf", nonce)

    def csrf_matches(self, nonce: str, given: str | None) -> bool:
        """Whether a form's CSRF field is the session's token (any text may be given)."""
        return isinstance(given, str) and bool(given) and _token_matches(self.csrf(nonce), given)


def cross_origin_reason(request: HTTPConnection) -> str | None:
    """Why a state-changing form post must be refused as cross-site, or ``None``.

    Browsers send ``Sec-Fetch-Site`` and ``Origin`` with form posts: the first must say
    ``same-origin`` and the second must name this host. Clients that send neither (curl, old
    browsers) are left to the CSRF token and the ``SameSite=Strict`` cookie.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"the request came from another site (Sec-Fetch-Site: {fetch_site[:200]})"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        try:
            netloc = urlsplit(origin).netloc
        except ValueError:  # e.g. "http://[": not a URL, so not this origin
            netloc = None
        if origin == "null" or netloc is None or netloc.lower() != host.lower():
            return f"the request came from another origin ({origin[:200]})"
    return None


def safe_next(base: str, value: str | None) -> str:
    """A local path under ``base`` to go back to after a form post; the overview otherwise.

    Refuses absolute and scheme-relative URLs so that a form cannot redirect elsewhere.
    """
    home = base + "/"
    if not value or not value.startswith(home) or value.startswith("//") or "\\" in value:
        return home
    try:
        parts = urlsplit(value)
    except ValueError:
        return home
    if parts.scheme or parts.netloc:
        return home
    return value
