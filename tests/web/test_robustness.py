"""Odd input never makes the app answer 500: property-based tests send arbitrary text (NUL,
lone surrogates as their UTF-8-like bytes and as JSON escapes, non-ASCII digits, bytes that are
not UTF-8, huge values) in every query parameter, path parameter, form field, cookie and
request header the pages and the API read.

Requests go straight to the ASGI app (no HTTP client in between), so that the bytes are exactly
the generated ones. A 400 must name the parameter at fault; an unusable session cookie is no
session (and is cleared), never an error.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import psycopg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from sqlxmq_py import JobBuilder
from sqlxmq_py.web.security import SESSION_COOKIE, Sessions

from .conftest import TOKEN, failed_job

NO_JOB = "01900000-0000-7000-8000-000000000000"
SPECIAL = [
    "",
    "\x00",
    "a\x00b",
    "²",  # str.isdigit() says yes, int() says no
    "¹²³",
    "٣",  # an Arabic-Indic digit: int() takes it, an ASCII pattern must not
    "1e309",
    "nan",
    "-0",
    "99999999999999999999999999",
    "\ufeff60",
    "\u202e",
    "é",
    "😀",
    "%",
    "%zz",
    "<script>alert(1)</script>",
    "v1.²².00000000000000000000000000000000." + "0" * 64,
    "v1.1." + "é" * 32 + "." + "0" * 64,
    "http://[",
    "/[",
    "//evil.example",
    "\r\nSet-Cookie: x=1",
]
TEXT = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(max_size=30),  # any Unicode but surrogates
    st.text(st.characters(categories=["Cs", "Cc", "Co", "Cn"]), min_size=1, max_size=4),
    st.text(max_size=4).map(lambda s: s * 20_000),  # huge
)
"""Text; surrogates go over the wire as the bytes UTF-8 would give them (ED A0 80...)."""
RAW = st.binary(max_size=40)
"""Bytes that need not be UTF-8."""


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def _pct(value: str | bytes) -> bytes:
    return quote_from_bytes(_bytes(value), safe="").encode("ascii")


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header_values(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k.lower() == name]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


async def asgi(
    app: Starlette,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
) -> Answer:
    """One request, its bytes exactly as given; an exception out of the app counts as 500."""
    started: dict[str, Any] = {}
    chunks: list[bytes] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await asyncio.sleep(3600)  # the client stays
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    header_list = headers or []
    if not any(name == b"host" for name, _ in header_list):
        header_list = [(b"host", b"testserver"), *header_list]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": _pct(path).replace(b"%2F", b"/"),
        "query_string": query,
        "root_path": "",
        "headers": header_list,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }
    try:
        await asyncio.wait_for(app(scope, receive, send), 30)  # type: ignore[arg-type]
    except Exception as exc:
        return Answer(500, [], repr(exc).encode())
    return Answer(
        int(started.get("status", 500)), list(started.get("headers", [])), b"".join(chunks)
    )


def _names_the_field(answer: Answer, field: str, api: bool) -> bool:
    if api:
        return bool(answer.json()["field"] == field)
    return field in answer.text


FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def job_id(db: psycopg.Connection[Any]) -> str:
    return str(JobBuilder("later").set_channel_name("fuzz").set_delay(3600).spawn(db))


@pytest.fixture
def session() -> tuple[bytes, str]:
    """A valid session cookie header and its CSRF token."""
    sessions = Sessions(TOKEN)
    cookie = sessions.new()
    nonce = sessions.nonce(cookie)
    assert nonce is not None
    return f"{SESSION_COOKIE}={cookie}".encode(), sessions.csrf(nonce)


# --- query parameters -----------------------------------------------------------------------

QUERY_PARAMETERS = [
    ("/", "minutes"),
    ("/", "channel"),
    ("/jobs", "state"),
    ("/jobs", "channel_name"),
    ("/jobs", "name"),
    ("/jobs", "job_key"),
    ("/jobs", "limit"),
    ("/jobs", "before"),
    ("/jobs", "default_channel"),
    ("/login", "next"),
    ("/api/jobs", "state"),
    ("/api/jobs", "channel_name"),
    ("/api/jobs", "name"),
    ("/api/jobs", "job_key"),
    ("/api/jobs", "limit"),
    ("/api/jobs", "before"),
    ("/api/throughput", "minutes"),
    ("/api/throughput", "channel_name"),
    ("/api/jobs/{id}/result", "timeout"),
    ("/api/workflows", "name"),
    ("/api/workflows", "limit"),
]


@pytest.mark.parametrize(("path", "parameter"), QUERY_PARAMETERS)
@FUZZ
@given(value=st.one_of(TEXT, RAW), encode=st.booleans())
@example(value="²", encode=True)
@example(value="\x00", encode=True)
@example(value="\udcff", encode=True)
@example(value=b"\xff\xfe", encode=False)
async def test_query_parameters(
    app: Starlette, job_id: str, path: str, parameter: str, value: str | bytes, encode: bool
) -> None:
    raw = _pct(value) if encode else _bytes(value).replace(b"&", b"%26").replace(b"#", b"%23")
    answer = await _query(app, path.replace("{id}", job_id), parameter, raw)
    assert answer.status < 500, answer.text[:2000]
    if answer.status == 400:
        assert _names_the_field(answer, parameter, path.startswith("/api")), answer.text[:2000]


async def _query(app: Starlette, path: str, parameter: str, raw: bytes) -> Answer:
    return await asgi(app, "GET", path, query=parameter.encode() + b"=" + raw)


async def test_the_reported_query_values_are_refused_by_name(app: Starlette) -> None:
    for path, parameter, raw in (
        ("/", "minutes", "%C2%B2"),
        ("/", "minutes", "5"),
        ("/", "channel", "%00"),
        ("/jobs", "channel_name", "a%00"),
        ("/api/jobs", "name", "a%00b"),
        ("/api/throughput", "minutes", "%D9%A3"),
    ):
        answer = await _query(app, path, parameter, raw.encode())
        assert answer.status == 400, (path, parameter, raw)
        assert _names_the_field(answer, parameter, path.startswith("/api")), answer.text


# --- path parameters ------------------------------------------------------------------------

PATHS = [
    ("GET", "/jobs/{}"),
    ("GET", "/api/jobs/{}"),
    ("GET", "/api/jobs/{}/details"),
    ("GET", "/api/jobs/{}/result"),
    ("POST", "/api/jobs/{}/result"),
    ("POST", "/api/jobs/{}/cancel"),
    ("POST", "/api/jobs/{}/retry"),
    ("GET", "/workflows/{}"),
    ("GET", "/api/workflows/{}"),
    ("POST", "/api/workflows/{}/cancel"),
    ("POST", "/api/workflows/{}/steps/extract/retry"),
]


@pytest.mark.parametrize(("method", "template"), PATHS)
@FUZZ
@given(value=TEXT.filter(lambda s: s and "/" not in s))
@example(value="\x00")
@example(value=NO_JOB.replace("0", "\u0660"))  # ARABIC-INDIC DIGIT ZERO
async def test_path_parameters(app: Starlette, method: str, template: str, value: str) -> None:
    auth = [(b"authorization", f"Bearer {TOKEN}".encode())]
    answer = await asgi(app, method, template.format(value), headers=auth)
    assert answer.status < 500, answer.text[:2000]
    if answer.status == 400:
        assert _names_the_field(answer, "id", template.startswith("/api")), answer.text[:2000]


NAMED_PATHS = [
    ("PUT", "/api/rate-limits/{}", "pattern"),
    ("DELETE", "/api/rate-limits/{}", "pattern"),
    ("POST", "/api/workflows/" + NO_JOB + "/steps/{}/retry", "step"),
]


@pytest.mark.parametrize(("method", "template", "field"), NAMED_PATHS)
@FUZZ
@given(value=TEXT.filter(bool))
@example(value="\x00")
@example(value="a*b")
@example(value="\udcff")
@example(value="é" * 101)
async def test_text_path_parameters(
    app: Starlette, method: str, template: str, field: str, value: str
) -> None:
    headers = [
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"content-type", b"application/json"),
    ]
    body = b'{"max_starts": 1, "period_s": 60}' if method == "PUT" else b""
    answer = await asgi(app, method, template.format(value), headers=headers, body=body)
    assert answer.status < 500, answer.text[:2000]
    if answer.status == 400:
        assert answer.json()["field"] == field, answer.text[:2000]
    else:
        assert answer.status in (200, 404), answer.text[:2000]


# --- cookies --------------------------------------------------------------------------------


@FUZZ
@given(value=st.one_of(TEXT, RAW), name=st.sampled_from([SESSION_COOKIE, "sqlxmq_flash"]))
@example(value="v1.²².00000000000000000000000000000000." + "0" * 64, name=SESSION_COOKIE)
@example(value="v1.1.00000000000000000000000000000000." + "é" * 64, name=SESSION_COOKIE)
async def test_cookies(app: Starlette, value: str | bytes, name: str) -> None:
    cookie = name.encode() + b"=" + _bytes(value).replace(b";", b"")
    for method, path, body in (
        ("GET", "/", b""),
        ("GET", "/jobs", b""),
        ("GET", "/login", b""),
        ("POST", "/logout", b"csrf=x"),
        ("POST", "/actions/retry", b"csrf=x&id=" + NO_JOB.encode()),
    ):
        headers = [(b"cookie", cookie)]
        if method == "POST":
            headers.append((b"content-type", b"application/x-www-form-urlencoded"))
        answer = await asgi(app, method, path, headers=headers, body=body)
        assert answer.status < 500, answer.text[:2000]
        if name == SESSION_COOKIE and method == "GET":
            # no session: the page is served logged out, and the cookie is cleared
            assert answer.status == 200
            assert "Log out" not in answer.text
            cleared = [c for c in answer.header_values(b"set-cookie") if b"sqlxmq_session=" in c]
            assert cleared, "the unusable session cookie is not cleared"
            assert b"Max-Age=0" in cleared[0] or b"expires=" in cleared[0].lower()
        if method == "POST" and path == "/actions/retry":
            assert answer.status == 403  # not logged in


async def test_a_valid_session_survives_and_an_expired_one_is_cleared(
    app: Starlette, session: tuple[bytes, str]
) -> None:
    cookie, _csrf = session
    expired = Sessions(TOKEN).new(now=0).encode()
    page = await asgi(app, "GET", "/", headers=[(b"cookie", cookie)])
    assert page.status == 200
    assert "Log out" in page.text
    assert not [c for c in page.header_values(b"set-cookie") if b"sqlxmq_session=" in c]
    stale = await asgi(app, "GET", "/", headers=[(b"cookie", b"sqlxmq_session=" + expired)])
    assert "Log in" in stale.text
    assert [c for c in stale.header_values(b"set-cookie") if b"sqlxmq_session=" in c]


# --- form fields ----------------------------------------------------------------------------

FORMS = [
    ("/actions/retry", ["csrf", "id", "next"]),
    ("/actions/cancel", ["csrf", "id", "reason", "next"]),
    ("/actions/purge", ["csrf", "failed_days", "history_days", "next"]),
    ("/logout", ["csrf"]),
    ("/login", ["token", "next"]),
    ("/actions/rate-limit-set", ["csrf", "pattern", "max_starts", "period_s", "next"]),
    ("/actions/rate-limit-remove", ["csrf", "pattern", "next"]),
    ("/actions/workflow-cancel", ["csrf", "workflow", "next"]),
    ("/actions/workflow-retry", ["csrf", "workflow", "step", "next"]),
]


@pytest.mark.parametrize(("path", "fields"), FORMS)
@FUZZ
@given(data=st.data())
async def test_form_fields(
    app: Starlette,
    session: tuple[bytes, str],
    db: psycopg.Connection[Any],
    path: str,
    fields: list[str],
    data: st.DataObject,
) -> None:
    cookie, csrf = session
    field = data.draw(st.sampled_from(fields), label="field")
    value = data.draw(st.one_of(TEXT, RAW), label="value")
    valid = {"csrf": csrf, "id": NO_JOB, "next": "/jobs", "reason": "x", "token": "wrong"}
    valid.update({"failed_days": "30", "history_days": ""})
    valid.update({"pattern": "p:*", "max_starts": "3", "period_s": "1.5"})
    valid.update({"workflow": NO_JOB, "step": "extract"})
    pairs = [(k.encode(), _pct(v)) for k, v in valid.items() if k in fields and k != field]
    pairs.append((field.encode(), _pct(value) if data.draw(st.booleans()) else _bytes(value)))
    body = b"&".join(k + b"=" + v for k, v in pairs)
    headers = [
        (b"cookie", cookie),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"origin", b"http://testserver"),
    ]
    answer = await asgi(app, "POST", path, headers=headers, body=body)
    assert answer.status < 500, answer.text[:2000]
    named = ("id", "failed_days", "history_days", "pattern", "max_starts", "period_s", "workflow")
    if answer.status == 400 and field in named:
        assert field in answer.text or "select at least one job" in answer.text


async def test_a_non_ascii_csrf_field_is_refused_not_an_error(
    app: Starlette, session: tuple[bytes, str], db: psycopg.Connection[Any]
) -> None:
    cookie, csrf = session
    job = failed_job(db)
    headers = [
        (b"cookie", cookie),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"origin", b"http://testserver"),
    ]

    async def post(value: bytes) -> Answer:
        body = b"csrf=" + value + b"&id=" + str(job).encode()
        return await asgi(app, "POST", "/actions/retry", headers=headers, body=body)

    for value in (b"%C3%A9", b"%ED%A0%80", b"%00", _pct("é" * 64)):
        answer = await post(value)
        assert answer.status == 403, value
        assert "CSRF" in answer.text
    assert (await post(csrf.encode())).status == 303


# --- headers --------------------------------------------------------------------------------

HEADERS = [
    ("POST", "/login", "origin"),
    ("POST", "/login", "sec-fetch-site"),
    ("POST", "/login", "host"),
    ("POST", "/login", "content-type"),
    ("POST", "/actions/purge", "origin"),
    ("POST", "/api/jobs", "content-length"),
    ("POST", "/api/jobs", "content-type"),
    ("POST", "/api/jobs", "authorization"),
    ("GET", "/", "host"),
    ("GET", "/jobs", "accept"),
    ("GET", "/api/counts", "host"),
]


@pytest.mark.parametrize(("method", "path", "header"), HEADERS)
@FUZZ
@given(value=st.one_of(TEXT.map(_bytes), RAW))
@example(value=b"http://[")
@example(value="²".encode())
async def test_headers(
    app: Starlette, session: tuple[bytes, str], method: str, path: str, header: str, value: bytes
) -> None:
    cookie, csrf = session
    base = {
        "host": b"testserver",
        "cookie": cookie,
        "authorization": f"Bearer {TOKEN}".encode(),
        "origin": b"http://testserver",
        "content-type": b"application/json"
        if path.startswith("/api")
        else b"application/x-www-form-urlencoded",
    }
    base[header] = value[:8000]
    body = (
        b'{"name": "fuzzed", "delay": 3600}'
        if path.startswith("/api")
        else b"csrf=" + csrf.encode()
    )
    if path == "/login":
        body = b"token=wrong"
    headers = [(name.encode(), header_value) for name, header_value in base.items()]
    answer = await asgi(app, method, path, headers=headers, body=body)
    assert answer.status < 500, answer.text[:2000]
    if answer.status == 400 and header == "content-length":
        assert answer.json()["field"] == "content-length"


# --- JSON fields of the API -------------------------------------------------------------------

JSON_TEXT_FIELDS = ["name", "channel_name", "channel_args", "job_key", "dead_letter", "run_at"]


@pytest.mark.parametrize("field", JSON_TEXT_FIELDS)
@FUZZ
@given(value=TEXT)
@example(value="\ud800")
async def test_json_text_fields(
    app: Starlette, db: psycopg.Connection[Any], field: str, value: str
) -> None:
    body = {"name": "fuzzed", "delay": 3600, field: value}
    if field == "job_key":
        body["job_key_mode"] = "unsafe_dedupe"
    raw = json.dumps(body, ensure_ascii=True).encode()  # surrogates as \\ud800 escapes
    headers = [
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"content-type", b"application/json"),
    ]
    answer = await asgi(app, "POST", "/api/jobs", headers=headers, body=raw)
    assert answer.status < 500, answer.text[:2000]
    if answer.status == 400:
        assert answer.json()["field"] == field, answer.text[:2000]
    else:
        assert answer.status == 201, answer.text[:2000]


@FUZZ
@given(timeout=st.one_of(st.floats(allow_nan=True), st.integers(), TEXT, st.booleans()))
async def test_wait_timeouts(app: Starlette, timeout: Any) -> None:
    headers = [
        (b"authorization", f"Bearer {TOKEN}".encode()),
        (b"content-type", b"application/json"),
    ]
    raw = json.dumps({"timeout": timeout}, ensure_ascii=True, allow_nan=True).encode()
    answer = await asgi(app, "POST", f"/api/jobs/{NO_JOB}/result", headers=headers, body=raw)
    assert answer.status in (400, 404), answer.text[:2000]
    if answer.status == 400:
        assert answer.json()["field"] in ("timeout", None)


async def test_everything_rendered_from_odd_input_is_escaped(app: Starlette) -> None:
    evil = "<script>alert(1)</script>"
    for path, query in (
        ("/", b"minutes=" + _pct(evil)),
        ("/", b"channel=" + _pct(evil)),
        ("/jobs", b"state=" + _pct(evil)),
        ("/jobs", b"limit=" + _pct(evil)),
        ("/login", b"next=" + _pct(evil)),
    ):
        answer = await asgi(app, "GET", path, query=query)
        assert answer.status < 500
        assert "<script>alert" not in answer.text, (path, query)
    refused = await asgi(
        app,
        "POST",
        "/login",
        headers=[
            (b"origin", evil.encode()),
            (b"content-type", b"application/x-www-form-urlencoded"),
        ],
        body=b"token=x",
    )
    assert refused.status == 403
    assert "<script>alert" not in refused.text
    assert "&lt;script&gt;" in refused.text
