"""Text that PostgreSQL can store and a log can print, made from whatever a job produced.

Never raises: an object whose ``__str__`` and ``__repr__`` both fail still gets a description.
"""

from __future__ import annotations

__all__ = ["clean_text", "error_summary", "safe_text", "type_name"]


def safe_text(value: object, limit: int | None = None) -> str:
    """``str(value)`` that PostgreSQL can store and a log can print: never raises (falls back
    to ``repr``, then to the type's name), NUL becomes ``\\x00`` and lone surrogates become
    ``\\udxxx`` escapes. With ``limit``, at most that many characters."""
    text = _str_or_repr(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return clean_text(text)


def clean_text(text: str) -> str:
    """``text`` without what PostgreSQL's text type refuses (NUL, lone surrogates)."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _str_or_repr(value: object) -> str:
    for describe in (str, repr):
        try:
            text = describe(value)
        except BaseException:  # noqa: S112 - a job's object may raise anything; try the next
            continue
        if isinstance(text, str):
            return str.__str__(text)  # a str subclass could override methods used later
    return f"<{type_name(value)} object (str() and repr() failed)>"


def type_name(value: object) -> str:
    """The qualified name of ``value``'s class, or ``"object"`` if even that fails."""
    try:
        name = type(value).__qualname__
    except BaseException:
        return "object"
    return name if isinstance(name, str) else "object"


def error_summary(exc: BaseException) -> str:
    """``"Type: message"`` of an exception, for log lines: safe, one line's worth."""
    return f"{clean_text(type_name(exc))}: {safe_text(exc, 2000)}"
