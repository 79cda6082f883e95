"""The backlog seen by an operator: gauges that ``pigeon run`` samples and serves on /metrics, the
message-age histogram, ``pigeon status`` (once and ``--watch``) and ``pigeon dlq replay``'s bar."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from typer.testing import CliRunner

from pigeon import App, Backlog, ConfigurationError, Reject
from pigeon.cli import cli
from pigeon.metrics import PrometheusMetrics
from pigeon.running import Ports, backlog_interval, sample_backlog, serve
from pigeon.status import (
    REPLAY_BATCH,
    Reading,
    inspecting,
    print_readings,
    replay,
    watch_live,
)
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


LONG = "orders.invoices.render-pdf-for-the-accounting-department.eu-west"


def test_numbers_are_never_cut_in_a_narrow_terminal() -> None:
    backlog = Backlog(1_234_567, 12_345, 123_456, 12, 3725.0)
    readings = [Reading(f"{LONG}.{n}", 0.0, backlog) for n in range(2)]
    for width in (80, 60):
        output = io.StringIO()
        console = Console(file=output, force_terminal=True, width=width)
        print_readings(console, readings, {})
        text = output.getvalue()
        assert "…" not in text
        for number in ("1,234,567", "12,345", "123,456", "1h02m"):
            assert text.count(number) == 2, text
        assert ("┃" in text) == (width == 80)  # too narrow for a table: plain lines


def test_status_prints_plain_full_lines_when_not_a_terminal(uid: str) -> None:
    url, queue = f"memory://{uid}", f"{uid}.{LONG}"

    async def fill() -> None:
        async with App(url) as producer:  # the memory broker outlives it, in this process
            for n in range(1234):
                await producer.enqueue(queue, n)

    asyncio.run(fill())
    args = ["status", "--url", url, "--queue", queue, "--window", "0"]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output
    assert "┃" not in result.output
    header, row = result.output.splitlines()[-2:]
    assert header.split() == [
        *("queue", "ready", "unacked", "dead", "letters", "consumers", "oldest", "age"),
        "ready/s",
    ]
    assert row.split()[:5] == [queue, "1,234", "0", "0", "0"]


async def test_status_watch_without_a_terminal_prints_each_refresh_and_stops_on_sigterm(
    uid: str,
) -> None:
    command = [sys.executable, "-m", "pigeon", "status", "--watch", "--every", "0.1"]
    command += ["--url", f"memory://{uid}", "--queue", f"{uid}.jobs"]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    headers = 0
    while headers < 2:
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        assert line, "status --watch ended early"
        headers += line.startswith(b"queue ")
    process.send_signal(signal.SIGTERM)
    _, errors = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, errors.decode()
    assert b"Traceback" not in errors


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--queue", "q"],
        ["dlq", "ls", "q"],
        ["dlq", "replay", "q"],
        ["enqueue", "q", "1"],
    ],
)
def test_a_bad_url_is_an_error_that_shows_no_secret(args: list[str]) -> None:
    for url in ("nats//u:s3cr3tXYZ@h:1", "kafka://u:s3cr3tXYZ@h:1", "s3cr3tXYZ@h:1"):
        result = CliRunner().invoke(cli, [*args, "--url", url])
        assert result.exit_code == 2, (url, result.output)
        assert result.output.startswith("error: "), result.output
        assert "s3cr3tXYZ" not in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_dlq_replay_refuses_a_limit_below_one(limit: str) -> None:
    result = CliRunner().invoke(cli, ["dlq", "replay", "q", "--url", "memory://", "--limit", limit])
    assert result.exit_code == 2
    assert "--limit" in result.output


@pytest.mark.parametrize("interval", ["-1", "nan", "inf", "soon"])
def test_a_bad_backlog_interval_is_refused(interval: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIGEON_BACKLOG_INTERVAL", interval)
    with pytest.raises(ConfigurationError, match="PIGEON_BACKLOG_INTERVAL"):
        backlog_interval()


def test_backlog_interval_zero_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIGEON_BACKLOG_INTERVAL", "0")
    assert backlog_interval() == 0


async def test_samples_are_dropped_while_the_broker_is_away(uid: str) -> None:
    metrics, queue = PrometheusMetrics(), f"{uid}.jobs"
    app = App(f"memory://{uid}")

    @app.worker(queue)
    async def work(n: int) -> None: ...

    metrics.record_backlog(queue, Backlog(3, 0, 0, 1, 0.0))
    app.ready = True  # as if serving, but not connected
    sampling = asyncio.create_task(sample_backlog(app, metrics, 0.01))
    try:
        value = metrics.registry.get_sample_value
        await wait_for(lambda: value("pigeon_queue_ready", {"queue": queue}) is None)
    finally:
        sampling.cancel()
        await asyncio.gather(sampling, return_exceptions=True)


def test_an_unreachable_rabbitmq_prints_only_pigeons_error() -> None:
    url = f"amqp://127.0.0.1:{free_port()}/"
    command = [sys.executable, "-m", "pigeon", "dlq", "ls", "q", "--url", url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: cannot connect"), result.stderr
    assert "creating transport" not in result.stderr


SUBSCRIBER = """
from pigeon import App

app = App("{url}")

@app.subscribe("{subject}", durable="audit")
async def audit(n: int) -> None: ...
"""


def test_status_shows_an_apps_durable_subscriptions(
    uid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, subject = f"memory://{uid}", f"{uid}.placed"
    module = SUBSCRIBER.format(url=url, subject=subject)
    (tmp_path / f"sub_{uid}.py").write_text(textwrap.dedent(module))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))

    async def fill() -> None:
        subscriber, publisher = App(url), App(url)

        @subscriber.subscribe(subject, durable="audit")
        async def audit(n: int) -> None: ...

        async with subscriber:
            pass  # ran once: the broker keeps its events
        async with publisher:
            for n in range(2):
                await publisher.publish(subject, n)

    asyncio.run(fill())
    args = ["status", f"sub_{uid}:app", "--window", "0"]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if f"{subject} [audit]" in line)
    cells = re.findall(r"[\w.?]+", row.split("]", 1)[1])
    assert cells[:4] == ["2", "0", "?", "0"]  # ready, unacked, no dead letters, consumers


async def test_gauges_sample_the_apps_durable_subscriptions(uid: str) -> None:
    metrics, url, subject = PrometheusMetrics(), f"memory://{uid}", f"{uid}.placed"
    app, publisher = App(url), App(url)

    @app.subscribe(subject, durable="audit")
    async def audit(n: int) -> None: ...

    async with app:
        pass  # ran once: the broker keeps its events
    async with publisher, inspecting(app):
        for n in range(3):
            await publisher.publish(subject, n)
        app.ready = True  # as if serving
        sampling = asyncio.create_task(sample_backlog(app, metrics, 0.01))
        try:
            labels = {"queue": f"{subject} [audit]"}
            value = metrics.registry.get_sample_value
            await wait_for(lambda: value("pigeon_queue_ready", labels) == 3)
            assert value("pigeon_queue_unacked", labels) == 0
            assert value("pigeon_dead_letters", labels) is None  # a subscription has none
        finally:
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)


def test_status_of_a_memory_app_from_another_process_says_why_it_sees_nothing(
    uid: str, tmp_path: Path
) -> None:
    queue = f"{uid}.jobs"
    (tmp_path / f"svc_{uid}.py").write_text(SERVICE.format(url=f"memory://{uid}", queue=queue))
    command = [sys.executable, "-m", "pigeon", "status", f"svc_{uid}:app", "--window", "0"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=30, check=False, env=env, cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert "memory:// lives inside one process" in result.stdout + result.stderr
    assert "PIGEON_URL" in result.stdout + result.stderr


def test_dlq_ls_of_a_dead_letter_queues_own_name_says_which_name_to_give(uid: str) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["dlq", "ls", f"{uid}.jobs.dlq", "--url", f"memory://{uid}"])
    assert result.exit_code != 0
    assert f"give '{uid}.jobs' itself" in result.output
    result = runner.invoke(cli, ["dlq", "ls", f"{uid}.jobs", "--url", f"memory://{uid}"])
    assert result.exit_code == 1
    assert "memory:// lives inside one process" in result.output
