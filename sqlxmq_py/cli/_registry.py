"""Finding the worker's registry from ``MODULE:REGISTRY`` on the command line."""

from __future__ import annotations

import importlib
import os
import sys

from ..registry import JobRegistry
from ._common import EXIT_USAGE, CliError

__all__ = ["load_registry"]


def load_registry(spec: str) -> JobRegistry:
    """Imports the registry named ``module:attribute`` (the attribute may be dotted, and may
    be a function returning the registry).

    Raises:
        CliError: (usage) the module or attribute is missing or is not a registry.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise CliError(
            f"expected MODULE:REGISTRY, like myapp.jobs:registry, got {spec!r}", EXIT_USAGE
        )
    cwd = os.getcwd()
    if cwd not in sys.path:  # like `python -m`: modules of the current directory import
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module_name + ".").startswith(exc.name + "."):
            raise CliError(f"cannot import {module_name!r}: {exc}", EXIT_USAGE) from exc
        raise CliError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", EXIT_USAGE
        ) from exc
    except Exception as exc:
        raise CliError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", EXIT_USAGE
        ) from exc
    found: object = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise CliError(f"{module_name!r} has no attribute {attribute!r}", EXIT_USAGE) from None
    if not isinstance(found, JobRegistry) and callable(found):
        try:
            found = found()
        except Exception as exc:
            raise CliError(
                f"calling {spec} failed: {type(exc).__name__}: {exc}", EXIT_USAGE
            ) from exc
    if not isinstance(found, JobRegistry):
        raise CliError(
            f"{spec} is a {type(found).__name__}, not a JobRegistry (nor a function returning one)",
            EXIT_USAGE,
        )
    return found
