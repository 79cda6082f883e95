"""``pigeon enqueue --delay/--at``: a job from the command line, held by the broker until due."""

from __future__ import annotations

import asyncio
import sys
import time
from asyncio.subprocess import PIPE
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pigeon import App
from pigeon.testing.waiting import wait_for
from tests.backends import Backend
from tests.conftest import BACKEND_FACTORIES
from tests.operating.test_cli_brokers import pigeon


@pytest.fixture(params=["nats", "rabbitmq", "redis"])
def broker(request: pytest.FixtureRequest) -> Backend:
    return BACKEND_FACTORIES[request.param]()


async def test_enqueue_with_delay_and_at(broker: Backend, uid: str, tmp_path: Path) -> None:
    url = broker.url()
    app = App(url)
    jobs: list[tuple[int, float]] = []

    @app.worker(f"{uid}.cli")
    async def on_job(job: dict[str, int]) -> None:
        jobs.append((job["n"], time.monotonic()))

    async with app:
        at = datetime.now(UTC) + timedelta(seconds=1.5)
        due_at = time.monotonic() + 1.5
        await pigeon(
            "enqueue", f"{uid}.cli", '{"n": 1}', "--at", at.isoformat(), url=url, cwd=tmp_path
        )
        due_delayed = time.monotonic() + 0.5  # at least: the command starts after this
        await pigeon("enqueue", f"{uid}.cli", '{"n": 2}', "--delay", "0.5", url=url, cwd=tmp_path)
        await wait_for(lambda: len(jobs) == 2, what="two jobs")
    handled = dict(jobs)
    assert handled[1] >= due_at - 0.05, "not before --at"
    assert handled[2] >= due_delayed - 0.05, "not before --delay"


async def test_a_time_without_offset_is_refused(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pigeon", "enqueue", "q", "{}", "--at", "2030-01-01T09:00"),
        cwd=tmp_path,
        stdout=PIPE,
        stderr=PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode != 0
    assert "has no UTC offset" in err.decode()
