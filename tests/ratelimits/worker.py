"""A runner process for the rate limit tests: ``python -m tests.ratelimits.worker DSN``; prints
``ready`` once started, stops on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import structlog

from sqlxmq_py import JobRegistry

from .jobs import free, limited


async def main(dsn: str) -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    handle = await JobRegistry([limited, free]).runner(dsn).set_concurrency(10, 20).run()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await handle.stop(timeout=10)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
    sys.exit(0)
