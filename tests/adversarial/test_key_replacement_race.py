"""Issue 9.12: a job-key replacement must never be lost. Replacers spawn every key again and
again (replace mode, payload = an increasing version) while pull consumers and a runner lease
and complete the keyed jobs. Whatever the interleaving, the newest version spawned for each key
must be the one some run of the key finally sees."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import defaultdict
from typing import Any

import psycopg
import pytest

from sqlxmq_py import CurrentJob, JobRegistry, LeaseLostError, job
from sqlxmq_py.pull import complete, fetch

from ..helpers import Runner, count_jobs, wait_until

CHANNEL = "race"
KEYS = 2_000
REPLACERS = 4
SPAWNS = 2_500
"""Spawns by each replacer."""
CONSUMERS = 3


class Seen:
    """The newest version each key, and each job, was run with (by runs that completed)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.newest: dict[int, int] = defaultdict(int)
        self.by_job: dict[uuid.UUID, int] = defaultdict(int)
        self.runs = 0

    def record(self, job_id: uuid.UUID, payload: Any) -> None:
        with self.lock:
            key, version = payload["k"], payload["v"]
            self.newest[key] = max(self.newest[key], version)
            self.by_job[job_id] = max(self.by_job[job_id], version)
            self.runs += 1


_seen = Seen()


@job(channel_name=CHANNEL)
async def keyed(current_job: CurrentJob) -> None:
    await current_job.complete()
    _seen.record(current_job.id, current_job.json())


def replace(dsn: str, replacer: int) -> list[tuple[uuid.UUID, int, int]]:
    """Spawns the keys of this replacer (``key % REPLACERS == replacer``, so each key's
    versions are spawned in order), one transaction per spawn, SPAWNS times: each of its keys
    once, then each spawn replaces one of its keys among the oldest waiting jobs (the ones
    consumers lease next) or, when none waits, the next key in turn. Returns (the id of the job
    that stands for the spawn, key, version) of each spawn."""
    mine = list(range(replacer, KEYS, REPLACERS))
    versions = dict.fromkeys(mine, 0)
    spawned: list[tuple[uuid.UUID, int, int]] = []
    turn = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while len(spawned) < SPAWNS:
            head = conn.execute(
                "SELECT job_key FROM mq_jobs WHERE channel_name = %s AND state = 'r' "
                "ORDER BY priority DESC, attempt_at LIMIT %s",
                (CHANNEL, 8 * REPLACERS),
            ).fetchall()
            keys = [int(k.removeprefix("key-")) for (k,) in head if k is not None]
            keys = [k for k in keys if k % REPLACERS == replacer][:4]
            if not keys or turn < len(mine):
                keys = [mine[turn % len(mine)]]
                turn += 1
            for key in keys:
                versions[key] += 1
                job_id = (
                    keyed.builder()
                    .set_job_key(f"key-{key}", "replace")
                    .set_json({"k": key, "v": versions[key]})
                    .spawn(conn)
                )
                spawned.append((job_id, key, versions[key]))
    return spawned


def consume(dsn: str, stop: threading.Event, seen: Seen) -> None:
    """Fetches and completes keyed jobs with the pull API until told to stop."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            fetched = fetch(conn, [CHANNEL], limit=20, lease=60)
            for job_ in fetched:
                try:
                    complete(conn, job_)
                except LeaseLostError:
                    continue
                seen.record(job_.id, job_.json())
            if not fetched:
                stop.wait(0.01)  # nothing ready: poll again shortly (not a synchronisation)


@pytest.mark.timeout(600)  # a safety deadline: 10,000 spawns take minutes on a loaded machine
async def test_no_key_replacement_is_lost_under_concurrent_leasing(
    dsn: str, db: psycopg.Connection[Any], runner: Runner
) -> None:
    """issue 9.12: 2,000 keys replaced in tight loops by 4 replacers (10,000 spawns, aimed at
    the jobs consumers lease next) while 3 pull consumers and a runner lease concurrently: for
    every key, some completed run saw the newest version spawned; and every job that a
    replacement returned (replaced in place) ran with that replacement's payload or a newer
    one. No replacement is lost."""
    global _seen
    _seen = seen = Seen()
    stop = threading.Event()
    async with runner(JobRegistry([keyed]), concurrency=(8, 16), poll_interval=0.1):
        consumers = [asyncio.to_thread(consume, dsn, stop, seen) for _ in range(CONSUMERS)]
        consuming = asyncio.gather(*consumers)
        try:
            spawned = await asyncio.gather(
                *(asyncio.to_thread(replace, dsn, r) for r in range(REPLACERS))
            )
            await wait_until(lambda: count_jobs(db, f"channel_name = '{CHANNEL}'") == 0, 300)
        finally:
            stop.set()
            await consuming
    spawns = [s for per_replacer in spawned for s in per_replacer]
    last: dict[int, int] = {}
    for _, key, version in spawns:
        last[key] = max(last.get(key, 0), version)
    lost = {k: (v, seen.newest.get(k, 0)) for k, v in last.items() if seen.newest.get(k, 0) < v}
    assert lost == {}, (
        f"{len(lost)} of {len(last)} keys never ran with their newest version ({seen.runs} "
        f"runs, {len(spawns)} spawns); key: (newest spawned, newest run) = "
        f"{dict(list(lost.items())[:10])}"
    )
    # the same for every replacement, not only the last of each key: a spawn that returned the
    # id of a waiting job (replaced it in place) was promised that job's run
    promised: dict[uuid.UUID, int] = defaultdict(int)
    for job_id, _, version in spawns:
        promised[job_id] = max(promised[job_id], version)
    broken = {
        str(j): (v, seen.by_job.get(j, 0)) for j, v in promised.items() if seen.by_job.get(j, 0) < v
    }
    assert broken == {}, (
        f"{len(broken)} of {len(promised)} jobs ran with an older payload than a replacement "
        f"that returned their id ({len(spawns)} spawns); job: (replaced with, ran with) = "
        f"{dict(list(broken.items())[:10])}"
    )
