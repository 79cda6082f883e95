"""A failure is logged on one line, whatever its error's message holds: line breaks and other
control characters in it are escaped, so that a message cannot forge a line of its own (a second
``subject=... message_id=...``) for whoever reads or parses the logs. Workers, subscribers and
rpc servers alike."""

from __future__ import annotations

import logging

import pytest

from pigeon import RemoteError
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

FORGED = "bad input\npigeon: job failed subject=elsewhere message_id=forged\r\x1b[2J"
"""An error message that would forge a second log line, and clear a terminal, if logged as is."""


def _failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "bad input" in r.getMessage()]


def _one_line(caplog: pytest.LogCaptureFixture) -> bool:
    lines = _failure_lines(caplog)
    assert all("\n" not in line and "\r" not in line and "\x1b" not in line for line in lines), (
        f"a failure was logged on more than one line: {lines!r}"
    )
    return bool(lines)


async def test_a_workers_failure_is_logged_on_one_line(
    make_app: MakeApp, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    caplog.set_level(logging.WARNING, logger="pigeon")

    @app.worker(f"{uid}.jobs")
    async def work(job: Job) -> None:
        raise ValueError(FORGED)

    async with app:
        await app.enqueue(f"{uid}.jobs", Job(1))
        await wait_for(lambda: _one_line(caplog), what="the failure logged")
    assert "bad input\\npigeon: job failed" in _failure_lines(caplog)[0], "the text is kept"


async def test_a_subscribers_failure_is_logged_on_one_line(
    make_app: MakeApp, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    caplog.set_level(logging.WARNING, logger="pigeon")

    @app.subscribe(f"{uid}.created")
    async def on_created(job: Job) -> None:
        raise ValueError(FORGED)

    async with app:
        await app.publish(f"{uid}.created", Job(1))
        await wait_for(lambda: _one_line(caplog), what="the failure logged")


async def test_an_rpc_servers_failure_is_logged_on_one_line(
    make_app: MakeApp, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    server, client = make_app(), make_app()
    caplog.set_level(logging.WARNING, logger="pigeon")

    @server.rpc(f"{uid}.ask")
    async def ask(n: int) -> int:
        raise ValueError(FORGED)

    async with server, client:
        with pytest.raises(RemoteError):
            await client.request(f"{uid}.ask", 1, timeout=20)
        await wait_for(lambda: _one_line(caplog), what="the failure logged")
