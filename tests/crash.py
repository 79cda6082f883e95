"""A worker (or durable subscriber) process SIGKILLed mid-job (mid-event), and what another
worker (member of the durable subscription) then sees of it: shared by the brokers'
crash-recovery tests (``tests/nats``, ``tests/redis``)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

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

    async def send(_: asyncio.StreamReader) -> None:
        async with App(url) as producer:
            await producer.enqueue(queue, Job(1))

    killed = await _kill_once_started(worker, send)
    return await _first_run(url, lambda app: app.worker(queue), killed, within)


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

    async def send(stdout: asyncio.StreamReader) -> None:
        assert (await asyncio.wait_for(stdout.readline(), 20)).strip() == b"ready"
        async with App(url) as publisher:
            await publisher.publish(subject, Job(1))

    killed = await _kill_once_started(subscriber, send)
    return await _first_run(
        url, lambda app: app.subscribe(subject, durable=durable), killed, within
    )


async def _kill_once_started(
    process: asyncio.subprocess.Process,
    send: Callable[[asyncio.StreamReader], Awaitable[None]],
) -> float:
    """``send`` the message, SIGKILL ``process`` once its handler says it started; return when
    (``time.monotonic()``). The process is reaped whatever happens."""
    try:
        assert process.stdout is not None
        await send(process.stdout)
        line = await asyncio.wait_for(process.stdout.readline(), 20)
        assert line.strip() == b"started"
        os.kill(process.pid, signal.SIGKILL)
        return time.monotonic()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def _first_run(
    url: str, register: Callable[[App], Callable[..., Any]], killed: float, within: float
) -> tuple[int, float]:
    """Start an App here whose handler ``register`` decorates; return the ``attempt`` and the
    seconds since ``killed`` of the first message it handles, waiting ``within`` + 2 s at most."""
    survivor = App(url)
    seen: list[tuple[int, float]] = []

    async def record(job: Job, msg: Message) -> None:
        seen.append((msg.attempt, time.monotonic() - killed))

    register(survivor)(record)
    async with survivor:
        await wait_for(lambda: bool(seen), timeout=within + 2, what="the killed handler's message")
    return seen[0]
