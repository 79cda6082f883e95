"""The backlog seen by an operator: gauges that ``pigeon run`` samples and serves on /metrics, the
message-age histogram, ``pigeon status`` (once and ``--watch``) and ``pigeon dlq replay``'s bar."""

from __future__ import annotations

import asyncio
import io
import re
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from typer.testing import CliRunner

from pigeon import App, Backlog, Reject
from pigeon.cli import cli
from pigeon.metrics import PrometheusMetrics
from pigeon.running import Ports, serve
from pigeon.status import REPLAY_BATCH, replay, watch_live
from pigeon.testing.conformance import Backend
from pigeon.testing.conformance.backlog import unknown
from pigeon.testing.waiting import wait_for
from tests.brokers.nats import free_port


def scrape(port: int) -> dict[tuple[str, str], float]:
    """``(sample name, queue or handler subject) -> value`` from ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            label = sample.labels.get("queue") or sample.labels.get("subject", "")
            samples[(sample.name, label)] = sample.value
    return samples


async def test_pigeon_run_serves_backlog_gauges_of_a_known_run(
    uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PIGEON_BACKLOG_INTERVAL", "0.02")
    url, queue, port = f"memory://{uid}", f"{uid}.jobs", free_port()
    app, producer = App(url), App(url)
    release = asyncio.Event()
    done: list[int] = []

    @app.worker(queue, concurrency=1)
    async def work(n: int) -> None:
        await release.wait()
        done.append(n)

    serving = asyncio.create_task(serve(app, Ports(port, None, "127.0.0.1")))
    async with producer:
        await wait_for(lambda: app.ready, what="the App serving")
        for n in range(4):
            await producer.enqueue(queue, n)

        async def gauges(**expected: float) -> bool:
            samples = await asyncio.to_thread(scrape, port)
            return all(samples.get((name, queue)) == value for name, value in expected.items())

        await wait_for(lambda: gauges(pigeon_queue_ready=3, pigeon_queue_unacked=1))
        samples = await asyncio.to_thread(scrape, port)
        assert samples[("pigeon_queue_consumers", queue)] == 1
        assert samples[("pigeon_dead_letters", queue)] == 0
        assert 0 <= samples[("pigeon_queue_oldest_age_seconds", queue)] < 5
        release.set()
        await wait_for(lambda: gauges(pigeon_queue_ready=0, pigeon_queue_unacked=0))
        samples = await asyncio.to_thread(scrape, port)
    app.stop()
    await serving
    assert done == [0, 1, 2, 3]
    assert samples[("pigeon_message_age_seconds_count", queue)] == 4
    assert samples[("pigeon_queue_oldest_age_seconds", queue)] == 0


def test_a_number_the_broker_cannot_tell_has_no_sample() -> None:
    metrics = PrometheusMetrics()
    metrics.record_backlog("q", Backlog(3, None, 0, 2, None))
    value = metrics.registry.get_sample_value
    assert value("pigeon_queue_ready", {"queue": "q"}) == 3
    assert value("pigeon_queue_unacked", {"queue": "q"}) is None
    assert value("pigeon_queue_oldest_age_seconds", {"queue": "q"}) is None
    metrics.forget_backlog("q")
    assert value("pigeon_queue_ready", {"queue": "q"}) is None


SERVICE = """
from pigeon import App

app = App("{url}")

@app.worker("{queue}")
async def work(n: int) -> None: ...
"""


def test_status_prints_the_backlog_of_an_apps_queues(
    uid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, queue = f"memory://{uid}", f"{uid}.jobs"
    (tmp_path / f"svc_{uid}.py").write_text(textwrap.dedent(SERVICE.format(url=url, queue=queue)))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))

    async def fill() -> None:
        async with App(url) as producer:  # the memory broker outlives it, in this process
            for n in range(3):
                await producer.enqueue(queue, n)

    asyncio.run(fill())
    args = ["status", f"svc_{uid}:app", "--window", "0", "--queue", f"{uid}.missing"]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "120"})
    assert result.exit_code == 1, result.output
    row = next(line for line in result.output.splitlines() if queue in line)
    cells = re.findall(r"[\w.?]+", row)[1:]
    assert cells[:4] == ["3", "0", "0", "0"]  # ready, unacked, dead letters, consumers
    assert re.fullmatch(r"\d+(\.\d)?s", cells[4])  # oldest age
    assert f"{uid}.missing" in result.output
    assert "does not exist" in result.output


def test_status_shows_what_the_broker_cannot_tell_as_unknown(backend: Backend, uid: str) -> None:
    url, queue = backend.url(), f"{uid}.jobs"

    async def fill() -> None:
        async with App(url, **backend.options) as producer:
            for n in range(2):
                await producer.enqueue(queue, n)

    asyncio.run(fill())
    args = ["status", "--url", url, "--queue", queue, "--window", "0"]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if queue in line)
    cells = dict(zip(FIELDS, re.findall(r"[\w.?]+", row)[1:], strict=True))
    assert cells["ready"] == "2"
    assert cells["dead_letters"] == "0"
    for field in FIELDS:
        assert (cells[field] == "?") == (field in unknown(backend)), (field, row)


FIELDS = ("ready", "unacked", "dead_letters", "consumers", "oldest_age")


async def test_status_watch_redraws_the_table_live(uid: str) -> None:
    queue = f"{uid}.jobs"
    output = io.StringIO()
    console = Console(file=output, force_terminal=True, width=120, record=True)
    async with App(f"memory://{uid}") as app:
        await app.enqueue(queue, 1)
        watching = asyncio.create_task(watch_live(app, [queue], 0.02, console))
        await wait_for(lambda: _row(console, queue) == ["1", "0", "0", "0"])
        for n in range(3):
            await app.enqueue(queue, n)
        await wait_for(lambda: _row(console, queue) == ["4", "0", "0", "0"])
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
    assert "\x1b[1A" in output.getvalue()  # redrawn in place, not printed again below


def _row(console: Console, queue: str) -> list[str]:
    """The first four numbers of the last row of ``queue`` the console drew."""
    rows = [line for line in console.export_text(clear=False).splitlines() if queue in line]
    return re.findall(r"[\w.?+-]+", rows[-1])[1:5] if rows else []


async def test_dlq_replay_of_many_letters_shows_progress(uid: str) -> None:
    url, queue, count = f"memory://{uid}", f"{uid}.jobs", REPLAY_BATCH * 2 + 50
    worker, producer = App(url), App(url)

    @worker.worker(queue, concurrency=16)
    async def work(n: int) -> None:
        raise Reject("no")

    async with producer:
        async with worker:
            for n in range(count):
                await producer.enqueue(queue, n)

            async def all_dead() -> bool:
                return (await producer.backlog(queue)).dead_letters == count

            await wait_for(all_dead)
        output = io.StringIO()
        console = Console(file=output, force_terminal=True, width=100)
        assert await replay(producer, queue, None, console) == count
        backlog = await producer.backlog(queue)
    assert (backlog.ready, backlog.dead_letters) == (count, 0)
    assert f"replaying {queue}" in output.getvalue()
    assert "100%" in output.getvalue()
