"""A worker (or durable subscriber) process SIGKILLed mid-job (mid-event), and what another
worker (member of the durable subscription) then sees of it: shared by the brokers'
crash-recovery tests (``tests/nats``, ``tests/redis``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from pigeon import App, Message
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

HANGING = """
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
"""A worker App (default settings) on ``argv[1]`` whose handler says it started, then hangs."""


async def killed_job_comes_back(url: str, queue: str, within: float) -> tuple[int, float]:
    """Enqueue a job on ``queue``, SIGKILL the worker process running it, then start a worker
    here; return the job's ``attempt`` there and the seconds from the kill until it ran, waiting
    ``within`` seconds and 2 more at most (``TimeoutError`` past that)."""
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HANGING, url, queue, stdout=asyncio.subprocess.PIPE
    )
    try:
        async with App(url) as producer:
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
    survivor = App(url)
    seen: list[tuple[int, float]] = []

    @survivor.worker(queue)
    async def work(job: Job, msg: Message) -> None:
        seen.append((msg.attempt, time.monotonic() - killed))

    async with survivor:
        await wait_for(lambda: bool(seen), timeout=within + 2, what="the killed worker's job")
    return seen[0]


HANGING_SUBSCRIBER = """
import asyncio, sys
from pigeon import App
from pigeon.testing.conformance.models import Job

app = App(sys.argv[1])

@app.subscribe(sys.argv[2], durable=sys.argv[3])
async def hang(job: Job) -> None:
    print("started", flush=True)
    await asyncio.Event().wait()

async def main() -> None:
    async with app:
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""
"""A durable subscriber App (default settings) on ``argv[1]``, subject ``argv[2]``, durable name
``argv[3]``: it says when it is subscribed, and its handler says it started, then hangs."""


async def killed_event_comes_back(
    url: str, subject: str, durable: str, within: float
) -> tuple[int, float]:
    """Start a durable subscriber process (it makes the durable subscription), publish an event
    on ``subject``, SIGKILL the process while it handles it, then subscribe to the same durable
    here; return the event's ``attempt`` here and the seconds from the kill until it ran,
    waiting ``within`` seconds and 2 more at most (``TimeoutError`` past that)."""
    subscriber = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HANGING_SUBSCRIBER,
        url,
        subject,
        durable,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert subscriber.stdout is not None
        assert (await asyncio.wait_for(subscriber.stdout.readline(), 20)).strip() == b"ready"
        async with App(url) as publisher:
            await publisher.publish(subject, Job(1))
        line = await asyncio.wait_for(subscriber.stdout.readline(), 20)
        assert line.strip() == b"started"
        os.kill(subscriber.pid, signal.SIGKILL)
        killed = time.monotonic()
    finally:
        if subscriber.returncode is None:
            subscriber.kill()
        await subscriber.wait()
    survivor = App(url)
    seen: list[tuple[int, float]] = []

    @survivor.subscribe(subject, durable=durable)
    async def handle(job: Job, msg: Message) -> None:
        seen.append((msg.attempt, time.monotonic() - killed))

    async with survivor:
        await wait_for(lambda: bool(seen), timeout=within + 2, what="the killed subscriber's event")
    return seen[0]
