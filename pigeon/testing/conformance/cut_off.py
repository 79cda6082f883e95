"""The line that says a closing App cut off handlers still running after ``shutdown_timeout``
names the handler and its subject or queue, and says truthfully what becomes of its message,
per kind: a worker's job goes back to the queue; a durable subscription's event stays with it;
a group's event goes back to the group's queue where the broker keeps one (memory, RabbitMQ),
else is dropped (core NATS, Redis's ``NOACK`` groups); a plain subscriber's event is dropped; a
request's caller is answered ``ServerStopped``; a sync handler goes on in its thread, its message
kept meanwhile. One line per handler cut off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from pigeon.app import App
from pigeon.testing.conformance.fixtures import Backend, MakeApp
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

GROUPS_KEEP = frozenset({"memory", "rabbitmq"})
"""Transports that hand a group's cut-off event back to the group's queue."""

CUT_OFF = "after the shutdown timeout"


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if CUT_OFF in r.getMessage()]


async def _cut_off(
    app: App, send: Callable[[], Coroutine[Any, Any, object]], started: asyncio.Event
) -> asyncio.Task[object]:
    """Start ``app``, send once, wait until the handler started, close: the close's task."""
    await app.start()
    sending = asyncio.create_task(send())
    await started.wait()
    closing = asyncio.create_task(app.close())
    await asyncio.wait({closing})
    return sending


@pytest.mark.parametrize("kind", ["worker", "durable", "group", "plain", "rpc"])
async def test_the_cut_off_line_names_the_handler_and_what_becomes_of_its_message(
    make_app: MakeApp, backend: Backend, uid: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, sender = make_app(shutdown_timeout=0.2), make_app()
    started = asyncio.Event()
    subject = f"{uid}.{kind}"
    durable = f"{uid}d" if kind == "durable" else None
    group = f"{uid}g" if kind == "group" else None

    async def hang(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    if kind == "worker":
        app.worker(subject)(hang)
        send: Callable[[], Coroutine[Any, Any, object]] = lambda: sender.enqueue(subject, Job(1))  # noqa: E731
    elif kind == "rpc":
        app.rpc(subject)(hang)
        send = lambda: sender.request(subject, Job(1), timeout=5)  # noqa: E731
    else:
        app.subscribe(subject, group=group, durable=durable)(hang)
        send = lambda: sender.publish(subject, Job(1))  # noqa: E731
    await sender.start()
    with caplog.at_level(logging.WARNING, logger="pigeon"):
        sending = await _cut_off(app, send, started)
    await asyncio.gather(sending, return_exceptions=True)
    lines = _lines(caplog)
    assert len(lines) == 1, lines
    line = lines[0]
    assert "hang" in line, line
    assert repr(subject) in line, line
    assert "were cancelled" in line, line
    transport = backend.name.split("-")[0]
    expected = {
        "worker": "their jobs go back to the queue unacked, to be delivered again",
        "durable": "their events stay with the durable subscription, to be delivered again",
        "group": "go back to the group's queue"
        if transport in GROUPS_KEEP
        else "their events are dropped",
        "plain": "their events are dropped",
        "rpc": "their callers are answered ServerStopped",
    }[kind]
    assert expected in line, line
    assert "go back to the broker unsettled" not in line, line


async def test_a_sync_handler_cut_off_is_said_to_run_on_in_its_thread(
    make_app: MakeApp, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(shutdown_timeout=0.2)
    started, release = threading.Event(), threading.Event()
    queue = f"{uid}.jobs"

    @app.worker(queue)
    def blocking(job: Job) -> None:
        started.set()
        release.wait(30)

    with caplog.at_level(logging.WARNING, logger="pigeon"):
        await app.start()
        await app.enqueue(queue, Job(1))
        await wait_for(started.is_set, what="the sync handler running")
        closing = asyncio.create_task(app.close())
        try:
            await wait_for(lambda: bool(_lines(caplog)), what="the cut-off line")
        finally:
            release.set()
        await closing
    lines = _lines(caplog)
    assert len(lines) == 1, lines
    assert "blocking" in lines[0], lines
    assert repr(queue) in lines[0], lines
    assert "go on in their threads" in lines[0], lines
    assert "were cancelled" not in lines[0], lines
    assert "back to the broker" not in lines[0], lines
