"""The worker process of jobs declared with ``isolation="process"``: it imports each job's
function by its module and qualified name, runs it on a :class:`~sqlxmq_py.ProcessJob`, and
answers with what it returned or raised, and its peak memory, until told to stop.

Messages from the runner: ``(module, qualname, job)``, or ``None`` to exit. Answers:
``("returned", value, peak_rss)`` or ``("raised", exception or None, class path, traceback
text, peak_rss)`` (the exception is ``None`` when it cannot be pickled)."""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import resource
import signal
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["serve"]


def serve(conn: Connection) -> None:
    """Runs jobs sent on ``conn`` until it receives ``None`` or the runner goes away."""
    # Ctrl-C reaches the whole process group: the runner decides what stops, and kills us
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    functions: dict[tuple[str, str], tuple[Callable[..., Any], Any]] = {}
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request is None:
            return
        module, qualname, job = request
        try:
            found = functions.get((module, qualname))
            if found is None:
                found = functions[(module, qualname)] = _resolve(module, qualname)
            fn, codec = found
            if codec is not None:
                job = dataclasses.replace(job, codec=codec)
            reply: tuple[Any, ...] = ("returned", fn(job), _peak_rss())
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: the job's failure
            reply = _raised(exc)
        try:
            conn.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            # a return value that cannot cross back: the attempt fails and says why
            conn.send(_raised(TypeError(f"the job's return value cannot be pickled: {exc}")))
        except (EOFError, OSError):
            return


def _resolve(module: str, qualname: str) -> tuple[Callable[..., Any], Any]:
    """The function named ``qualname`` in ``module`` (the plain function of a ``@job``) and its
    payload codec (None: plain JSON)."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    fn = getattr(obj, "fn", obj)  # a NamedJob holds the function it decorates
    codec = getattr(obj, "payload_codec", None)
    return fn, codec


def _raised(exc: BaseException) -> tuple[Any, ...]:
    text = "".join(traceback.format_exception(exc))
    path = f"{type(exc).__module__}.{type(exc).__qualname__}"
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own object, round-tripped
        sendable: BaseException | None = exc
    except Exception:
        sendable = None
    return ("raised", sendable, path, text, _peak_rss())


def _peak_rss() -> int:
    """The process's peak resident memory, in bytes (Linux counts in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
