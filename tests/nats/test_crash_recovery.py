"""A worker SIGKILLed mid-job: JetStream delivers its job again within seconds (the short default
ack wait is safe because pigeon keeps handlers in progress alive)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import nats

from pigeon import App, Message
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

RECOVERY = 8.0
"""Seconds from the kill to the job's next delivery, at most (ack wait 5 s, plus a pull)."""

WORKER = """
import asyncio, sys
from pigeon import App
from pigeon.testing.conformance.models import Job

app = App(sys.argv[1])

@app.worker(sys.argv[2])
async def hang(job: Job) -> None:
    print("started", flush=True)
    await asyncio.Event().wait()

asyncio.run(app.run())
"""


async def test_a_killed_workers_job_comes_back_within_seconds(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    queue = f"{uid}.crash"
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, nats_url, queue, stdout=asyncio.subprocess.PIPE
    )
    try:
        async with App(nats_url) as producer:
            await producer.enqueue(queue, Job(1))
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), 20)
        assert line.strip() == b"started"
        os.kill(worker.pid, signal.SIGKILL)
        killed = time.monotonic()
    finally:
        if worker.returncode is None:
            worker.kill()
        await worker.wait()
    survivor = App(nats_url)
    seen: list[tuple[int, float]] = []

    @survivor.worker(queue)
    async def work(job: Job, msg: Message) -> None:
        seen.append((msg.attempt, time.monotonic() - killed))

    async with survivor:
        await wait_for(lambda: bool(seen), timeout=RECOVERY + 2, what="the killed worker's job")
    attempt, after = seen[0]
    assert attempt == 2
    assert after < RECOVERY, f"came back {after:.1f}s after the kill"
