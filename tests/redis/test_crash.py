"""A worker process killed mid-job: another worker reclaims its jobs after ``claim_idle``, within
seconds by default (live workers renew their claims every third of it)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from pigeon import App, Message
from pigeon.testing.waiting import wait_for
from tests.crash import killed_job_comes_back

RECOVERY = 8.0
"""Seconds from the kill to the job's next delivery, at most (claim_idle 5 s by default, plus
a claim every second and the survivor's start)."""

DYING = """
import asyncio, os, sys
from pigeon import App

app = App(os.environ["URL"], claim_idle=1.0)

@app.worker(os.environ["QUEUE"], concurrency=4)
async def work(job: dict) -> None:
    print(job["n"], flush=True)
    await asyncio.Event().wait()  # hangs until the process is killed

asyncio.run(app.run())
"""


async def test_a_killed_workers_jobs_are_reclaimed(
    redis_url: str, uid: str, tmp_path: Path
) -> None:
    queue = f"{uid}.crash"
    (tmp_path / "dying.py").write_text(textwrap.dedent(DYING))
    env = {**os.environ, "URL": redis_url, "QUEUE": queue}
    dying = await asyncio.create_subprocess_exec(
        sys.executable, str(tmp_path / "dying.py"), env=env, stdout=asyncio.subprocess.PIPE
    )
    assert dying.stdout is not None
    async with App(redis_url, claim_idle=1.0) as producer:  # every App of a queue agrees
        for n in range(6):
            await producer.enqueue(queue, {"n": n})
    taken = {int(await asyncio.wait_for(dying.stdout.readline(), 20)) for _ in range(4)}
    dying.send_signal(signal.SIGKILL)
    await dying.wait()

    survivor = App(redis_url, claim_idle=1.0)
    done: dict[int, int] = {}

    @survivor.worker(queue, concurrency=4)
    async def work(job: dict[str, int], msg: Message) -> None:
        done[job["n"]] = msg.attempt

    async with survivor:
        await wait_for(lambda: len(done) == 6, timeout=20, what="every job, reclaimed ones too")
    assert {n for n, attempt in done.items() if attempt == 2} == taken
    assert {n for n, attempt in done.items() if attempt == 1} == set(range(6)) - taken


async def test_a_killed_workers_job_comes_back_within_seconds(redis_url: str, uid: str) -> None:
    attempt, after = await killed_job_comes_back(redis_url, f"{uid}.crash", RECOVERY)
    assert attempt == 2
    assert after < RECOVERY, f"came back {after:.1f}s after the kill"
