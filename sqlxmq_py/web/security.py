"""Who may change the queue: the bearer token (API), and for the dashboard a login session with a
per-session CSRF token, checked together with the request's origin.

The session is stateless: its cookie carries an expiry and a random nonce, signed with a key
derived from the token, and the session's CSRF token is derived from the same nonce. Changing the
token therefore ends every session.
"""

from __future__ import annotations

import hashlib
import hmac
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


def _token_matches(expected: str, given: str) -> bool:
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
        """The nonce of a valid, unexpired session cookie, else ``None``."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            return None
        _, expires, nonce, signature = parts
        if not hmac.compare_digest(signature, self._sign("session", expires, nonce)):
            return None
        if int(expires) < (time.time() if now is None else now):
            return None
        return nonce

    def csrf(self, nonce: str) -> str:
        """The CSRF token of the session with this nonce."""
        return self._sign("csrf", nonce)

    def csrf_matches(self, nonce: str, given: str | None) -> bool:
        """Whether a form's CSRF field is the session's token."""
        return bool(given) and hmac.compare_digest(self.csrf(nonce), str(given))


def cross_origin_reason(request: HTTPConnection) -> str | None:
    """Why a state-changing form post must be refused as cross-site, or ``None``.

    Browsers send ``Sec-Fetch-Site`` and ``Origin`` with form posts: the first must say
    ``same-origin`` and the second must name this host. Clients that send neither (curl, old
    browsers) are left to the CSRF token and the ``SameSite=Strict`` cookie.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"the request came from another site (Sec-Fetch-Site: {fetch_site})"
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
            return f"the request came from another origin ({origin})"
    return None


def safe_next(base: str, value: str | None) -> str:
    """A local path under ``base`` to go back to after a form post; the overview otherwise.

    Refuses absolute and scheme-relative URLs so that a form cannot redirect elsewhere.
    """
    home = base + "/"
    if not value or not value.startswith(home) or value.startswith("//") or "\\" in value:
        return home
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return home
    return value
