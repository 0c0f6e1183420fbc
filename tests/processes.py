"""Subprocesses of tests (``sqlxmq worker``, the worker scripts of tests/process and
tests/reliability): one helper that starts them, reads their output as it comes, waits for the
line or log event a test needs, signals them, and kills whatever is left at teardown.

``processes.worker(dsn, "tests.cli.app:registry")`` runs ``sqlxmq --json worker`` (its JSON log
events on stderr: ``child.wait_for("worker_started")``); ``processes.python("-m", module, ...,
ready="ready")`` runs a script and waits for the line it prints once it is ready.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_WAIT = 30.0
"""How long a wait for a line or an event may take before the test fails (a deadline for an
event that never comes, never a pause)."""


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any database variable, with this checkout importable, plus
    ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SQLXMQ_DSN", "DATABASE_URL", "SQLXMQ_DASHBOARD_TOKEN")
    }
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


class Child:
    """A process started by a test. A thread per stream reads its stdout and stderr line by
    line; waits consume lines in order (a wait returns the first matching line after the one
    the previous wait on that stream returned)."""

    def __init__(self, argv: list[str], *, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env if env is not None else clean_env(),
            cwd=ROOT,
        )
        self._lines: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._cursor = {"stdout": 0, "stderr": 0}
        self._open = {"stdout": True, "stderr": True}
        self._changed = threading.Condition()
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._readers = [
            threading.Thread(target=self._read, args=(name, pipe), daemon=True)
            for name, pipe in (("stdout", self.proc.stdout), ("stderr", self.proc.stderr))
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, name: str, pipe: IO[str]) -> None:
        for line in pipe:
            with self._changed:
                self._lines[name].append(line)
                self._changed.notify_all()
        with self._changed:
            self._open[name] = False
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        """The exit code, or None while the process runs."""
        return self.proc.poll()

    def wait_line(
        self,
        match: str | Callable[[str], bool],
        *,
        stream: str = "stdout",
        timeout: float = DEFAULT_WAIT,
    ) -> str:
        """Blocks until the process writes a line that is ``match`` (stripped) or satisfies it;
        fails the test if the stream ends first or after ``timeout``."""
        accept = match if callable(match) else (lambda line: line.strip() == match)
        found: list[str] = []
        with self._changed:
            lines = self._lines[stream]

            def done() -> bool:
                while self._cursor[stream] < len(lines):
                    line = lines[self._cursor[stream]]
                    self._cursor[stream] += 1
                    if accept(line):
                        found.append(line)
                        return True
                return not self._open[stream]

            if not self._changed.wait_for(done, timeout):
                raise AssertionError(f"no {match!r} on {stream} within {timeout}s\n{self.output()}")
        if not found:
            raise AssertionError(f"{stream} ended before {match!r}\n{self.output()}")
        return found[0]

    def wait_for(self, event_name: str, timeout: float = DEFAULT_WAIT) -> dict[str, Any]:
        """Blocks until the process logs the JSON event ``event_name`` on stderr (``sqlxmq
        --json``); returns the event."""

        def is_event(line: str) -> bool:
            return _event(line).get("event") == event_name

        return _event(self.wait_line(is_event, stream="stderr", timeout=timeout))

    def events(self, event_name: str) -> list[dict[str, Any]]:
        """Every JSON event ``event_name`` logged on stderr so far."""
        with self._changed:
            found = [_event(line) for line in self._lines["stderr"]]
        return [e for e in found if e.get("event") == event_name]

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = DEFAULT_WAIT) -> int:
        """Waits for the process to exit and for its output to be read; its exit code."""
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def stdout(self) -> str:
        with self._changed:
            return "".join(self._lines["stdout"])

    def stderr(self) -> str:
        with self._changed:
            return "".join(self._lines["stderr"])

    def output(self) -> str:
        """Both streams, for failure messages."""
        return f"command: {self.argv}\nstdout:\n{self.stdout()}\nstderr:\n{self.stderr()}"

    def close(self) -> None:
        """Kills the process if it still runs, reaps it and closes its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def _event(line: str) -> dict[str, Any]:
    try:
        event = json.loads(line)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


class Processes:
    """Starts subprocesses for one test (or module); :meth:`close` kills what is left."""

    def __init__(self) -> None:
        self.started: list[Child] = []

    def start(
        self, argv: list[str], *, ready: str | None = None, env: dict[str, str] | None = None
    ) -> Child:
        """Starts ``argv``; with ``ready``, waits until it prints that line on stdout."""
        child = Child(argv, env=env)
        self.started.append(child)
        if ready is not None:
            child.wait_line(ready)
        return child

    def python(self, *args: str, ready: str | None = None) -> Child:
        """``python ARGS`` (this interpreter), e.g. ``("-m", "tests.process.worker", dsn)``."""
        return self.start([sys.executable, *args], ready=ready)

    def worker(self, dsn: str, *args: str) -> Child:
        """``sqlxmq --dsn DSN --json worker ARGS``; wait for its ``worker_started`` event."""
        return self.python("-m", "sqlxmq_py.cli", "--dsn", dsn, "--json", "worker", *args)

    def close(self) -> None:
        for child in self.started:
            child.close()
        self.started.clear()


@contextmanager
def started_processes() -> Iterator[Processes]:
    """A :class:`Processes` whose children are all killed when the block ends."""
    processes = Processes()
    try:
        yield processes
    finally:
        processes.close()
