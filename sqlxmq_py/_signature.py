"""What a job function's signature says: its default name, the payload and result types it
declares, and its context parameters. Pure inspection, for ``@job``."""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .current_job import BlockingCurrentJob, CurrentJob
from .errors import ConfigurationError
from .process_job import ProcessJob

__all__ = ["context_parameters", "declared_types", "default_name"]


def default_name(fn: Callable[..., Any]) -> str:
    """The name of a job declared without ``name=``: its function's module and qualified name
    (``myapp.emails.send``), so that two jobs called ``send`` in two modules never run each
    other's payloads. A function of the ``__main__`` module is named after the module it was
    started as (``python -m myapp.tasks``) or its file (``python tasks.py``: ``tasks``), as a
    worker importing that module would name it."""
    module = getattr(fn, "__module__", None) or ""
    if module == "__main__":
        main = sys.modules.get("__main__")
        spec = getattr(main, "__spec__", None)
        spec_name = getattr(spec, "name", None)
        path = getattr(main, "__file__", None)
        if isinstance(spec_name, str) and spec_name:
            module = spec_name.removesuffix(".__main__")
        elif isinstance(path, str):
            module = Path(path).stem
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "")
    return f"{module}.{qualname}" if module and qualname else str(qualname)


def declared_types(fn: Callable[..., Any]) -> tuple[object, object]:
    """The payload type a job function declares (``CurrentJob[Email]`` as its first
    parameter's annotation: ``Email``) and its result type (its return annotation); ``Any``
    for what it does not declare.

    Raises:
        ConfigurationError: a declared payload type cannot be resolved.
    """
    params = list(inspect.signature(fn).parameters.values())
    first = params[0].annotation if params else inspect.Parameter.empty
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # NameError for a class the function's module cannot see
        if isinstance(first, str) and "[" in first:
            raise ConfigurationError(
                f"cannot resolve the payload type of {fn.__qualname__!r} ({first!r}): {exc}; "
                "define the type at module level (not inside a function, nor under "
                "TYPE_CHECKING)"
            ) from exc
        return Any, Any
    payload: object = Any
    annotation = hints.get(params[0].name) if params else None
    if typing.get_origin(annotation) in (CurrentJob, BlockingCurrentJob, ProcessJob):
        (payload,) = typing.get_args(annotation)
    return payload, hints.get("return", Any)


def context_parameters(fn: Callable[..., Any], name: str) -> tuple[str, ...]:
    """The names of a job function's context parameters (those after the running job), each
    checked: annotated, neither positional-only nor ``*args``/``**kwargs``."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"job {name!r}: cannot read the function's signature") from exc
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if not params or params[0].kind not in positional:
        raise ConfigurationError(
            f"job {name!r}: the function must take the running job as its first positional "
            "parameter, e.g. `async def my_job(current_job: CurrentJob) -> None`"
        )
    context = []
    for param in params[1:]:
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ConfigurationError(f"job {name!r}: *args and **kwargs are not supported")
        if param.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigurationError(
                f"job {name!r}: context parameter {param.name!r} must not be positional-only"
            )
        if param.annotation is inspect.Parameter.empty:
            raise ConfigurationError(
                f"job {name!r}: parameter {param.name!r} needs a type annotation; extra "
                "parameters receive the context value of that type (JobRegistry.set_context)"
            )
        context.append(param.name)
    return tuple(context)
