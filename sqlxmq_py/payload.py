"""Encoding and decoding of job payloads (pure functions)."""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import PayloadError

__all__ = ["check_raw_json", "decode_json", "encode_bytes", "encode_json", "encode_result"]

# a \uD800-\uDFFF escape: only then can JSON that Python accepts be refused by PostgreSQL
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> Any:
    raise PayloadError(f"JSON payloads cannot contain {name}: it is not valid JSON")


_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
"""One encoder for every payload: ``json.dumps`` with these options builds a new one per call."""


def encode_json(value: object) -> str:
    """Encodes ``value`` as JSON text, refusing what JSON (and PostgreSQL) cannot represent."""
    text = _encode(value, _ENCODER)
    _check_encodable(text)
    return text


def _encode(value: object, encoder: json.JSONEncoder) -> str:
    try:
        return encoder.encode(value)
    except ValueError as exc:
        if "Out of range float" in str(exc):
            raise PayloadError(f"JSON payloads cannot contain NaN or Infinity: {exc}") from exc
        raise PayloadError(f"payload cannot be encoded as JSON: {exc}") from exc
    except (TypeError, RecursionError) as exc:
        raise PayloadError(f"payload is not JSON-serialisable: {exc}") from exc
    except Exception as exc:  # an object whose iteration or conversion raises
        raise PayloadError(
            f"payload cannot be encoded as JSON: {type(exc).__name__} while encoding"
        ) from exc


_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def encode_result(value: object) -> str:
    """Encodes a job's result as JSON. Unlike a payload, text that is not valid Unicode (a lone
    surrogate) is kept rather than refused: as a ``\\udxxx`` escape, which PostgreSQL's json
    type stores and Python decodes back to the same string.

    Raises:
        PayloadError: the value is not JSON-serialisable (or holds NaN or Infinity).
    """
    text = _encode(value, _ENCODER)
    if text.isascii() or _is_valid_unicode(text):
        return text
    return _encode(value, _ASCII_ENCODER)


def _is_valid_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_raw_json(text: object) -> str:
    """Checks that ``text`` is one JSON document PostgreSQL's json type accepts; returns it."""
    if not isinstance(text, str):
        raise PayloadError(f"raw JSON must be a str, got {type(text).__name__}")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"raw JSON payload is not valid JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:  # e.g. an integer longer than Python converts
        raise PayloadError(f"raw JSON payload cannot be read: {exc}") from exc
    if _SURROGATE_ESCAPE.search(text):
        # a lone surrogate escape: re-encoding shows it (PostgreSQL refuses those)
        _check_encodable(json.dumps(value, ensure_ascii=False))
    return text


def _check_encodable(text: str) -> None:
    if text.isascii():  # no surrogates possible: skip the copy that encode() makes
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(
            f"JSON payload contains text that is not valid Unicode (a lone surrogate?): {exc}"
        ) from exc


def encode_bytes(value: object) -> bytes:
    """Checks a raw binary payload and returns it as ``bytes``."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise PayloadError(f"raw bytes payload must be bytes-like, got {type(value).__name__}")
    return bytes(value)


def decode_json(text: str | None, *, job_name: str) -> Any:
    """Decodes a job's stored JSON payload; ``None`` when the job has none."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(f"payload of job {job_name!r} is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # PostgreSQL accepts nesting deeper than Python can decode
        raise PayloadError(f"payload of job {job_name!r} is nested too deeply to decode") from exc
    except ValueError as exc:  # e.g. an integer longer than Python converts from text
        raise PayloadError(f"payload of job {job_name!r} cannot be decoded: {exc}") from exc
