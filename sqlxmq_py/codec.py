"""Typed payloads and results: how a value of a declared type becomes JSON and comes back,
validated.

A job declares its payload type with its first parameter::

    @dataclass
    class Email:
        to: str
        subject: str

    @job
    async def send(current_job: CurrentJob[Email]) -> None:
        email = current_job.payload  # an Email, validated

``send.builder().set_json(Email(...))`` then accepts only an ``Email`` (for the type checker),
encoded with the type's own rules, and ``current_job.payload`` is the decoded ``Email``; a
payload that does not validate fails the attempt with a ``PayloadError`` naming the field.

Two libraries do the work, each for what it knows best: pydantic models go through pydantic
(when it is installed; it is not a dependency), everything else through msgspec, which knows
dataclasses, ``TypedDict``, ``NamedTuple``, enums, ``datetime``/``date``/``time``, ``UUID``,
``Decimal`` and the plain JSON types, and whose errors name the path of the bad field
(``$.to``).
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, cast

import msgspec

from .errors import PayloadError
from .payload import encode_result

__all__ = ["Codec", "codec_for", "describe_type"]

_ENCODER = msgspec.json.Encoder()


def describe_type(tp: object) -> str:
    """A type's name as its user wrote it (``Email``, ``list[int]``)."""
    if isinstance(tp, type):
        return tp.__qualname__
    return str(tp).replace("typing.", "")


def _is_pydantic_model(tp: object) -> bool:
    pydantic = sys.modules.get("pydantic")  # a model's class was made by it: it is imported
    return pydantic is not None and isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


class Codec:
    """Encodes values of one type as JSON text and decodes (validating) JSON text into them."""

    __slots__ = ("_adapter", "_decoder", "type", "type_name")

    def __init__(self, tp: object) -> None:
        """A codec for ``tp`` (any type msgspec or, for its models, pydantic understands).

        Raises:
            TypeError: neither library can encode and decode this type.
        """
        self.type = tp
        self.type_name = describe_type(tp)
        self._adapter: Any = None
        self._decoder: msgspec.json.Decoder[Any] | None = None
        if _is_pydantic_model(tp):
            import pydantic

            self._adapter = pydantic.TypeAdapter(cast(Any, tp))
        else:
            self._decoder = msgspec.json.Decoder(tp)

    def encode(self, value: object) -> str:
        """``value`` as JSON text.

        Raises:
            PayloadError: the value is not of this codec's type, or cannot be encoded.
        """
        tp = self.type
        if isinstance(tp, type) and _needs_instance(tp) and not isinstance(value, tp):
            raise PayloadError(f"expected {self.type_name}, got {type(value).__qualname__}")
        try:
            if self._adapter is not None:
                return str(self._adapter.dump_json(value).decode())
            return _ENCODER.encode(value).decode()
        except UnicodeEncodeError:
            # text that is not valid Unicode (a lone surrogate): plain JSON keeps it as an
            # escape, which PostgreSQL's json type stores and a decoder reads back exactly
            plain = (
                self._adapter.dump_python(value, mode="json")
                if self._adapter is not None
                else msgspec.to_builtins(value)
            )
            return encode_result(plain)
        except Exception as exc:  # each library raises its own errors
            raise PayloadError(
                f"cannot encode {type(value).__qualname__} as a {self.type_name}: {exc}"
            ) from exc

    def decode(self, text: str | None, *, what: str) -> Any:
        """Decodes and validates ``text`` (``what`` names it in errors, e.g. "payload of job
        'send'").

        Raises:
            PayloadError: the text is not valid JSON, or does not validate (the message names
                the field).
        """
        source = "null" if text is None else text
        try:
            if self._adapter is not None:
                return self._adapter.validate_json(source)
            assert self._decoder is not None
            return self._decoder.decode(source)
        except msgspec.ValidationError as exc:
            raise PayloadError(f"{what} is not a valid {self.type_name}: {exc}") from exc
        except msgspec.DecodeError as exc:
            raise PayloadError(f"{what} is not valid JSON: {exc}") from exc
        except Exception as exc:  # pydantic's ValidationError
            if self._adapter is None:
                raise
            raise PayloadError(
                f"{what} is not a valid {self.type_name}: {_pydantic_reason(exc)}"
            ) from exc


def _pydantic_reason(exc: Exception) -> str:
    """The first of a pydantic ValidationError's errors, worded as msgspec words them
    (``Input should be a valid array - at `$.items```), and how many more there are."""
    errors = getattr(exc, "errors", None)
    found: list[dict[str, Any]] = errors() if callable(errors) else []
    if not found:
        return str(exc).splitlines()[0]
    first = found[0]
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first.get("loc", ()))
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return f"{first.get('msg', 'invalid')} - at `${path}`{more}"


def _needs_instance(tp: type) -> bool:
    """Whether a value must be an instance of ``tp`` to be encoded as one (a dataclass, a
    pydantic model, a msgspec Struct), rather than a dict that looks like it (a TypedDict)."""
    return dataclasses.is_dataclass(tp) or _is_pydantic_model(tp) or issubclass(tp, msgspec.Struct)


def codec_for(tp: object) -> Codec | None:
    """The codec of a declared payload or result type; None for an undeclared one (``Any``,
    or nothing), which keeps plain JSON."""
    if tp is Any or tp is None or tp is type(None):
        return None
    return Codec(tp)
