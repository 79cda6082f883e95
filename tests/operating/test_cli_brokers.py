"""The CLI against real brokers: ``pigeon run --workers 2`` drains on SIGTERM with nothing lost,
and ``pigeon dlq`` round-trips a poison message."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from asyncio.subprocess import DEVNULL, PIPE
from collections import Counter
from pathlib import Path

import pytest

from pigeon import App
from pigeon.testing.waiting import wait_dead_letters, wait_for
from tests.backends import Backend
from tests.conftest import BACKEND_FACTORIES

SERVICE = """
import asyncio, os
from pigeon import App

app = App()
done_file = os.environ["DONE_FILE"]

@app.worker(os.environ["QUEUE"], concurrency=4)
async def work(job: dict) -> None:
    await asyncio.sleep(0.02)  # the job's work
    with open(done_file, "a") as out:
        out.write(f"{job['n']}\\n")
"""


@pytest.fixture(params=["nats", "rabbitmq", "redis"])
def broker(request: pytest.FixtureRequest) -> Backend:
    """The CLI runs Apps in other processes: they need a broker they share, not memory://."""
    return BACKEND_FACTORIES[request.param]()


async def pigeon(*args: str, url: str, cwd: Path) -> str:
    """Run one ``pigeon`` command to completion; its stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pigeon", *args, "--url", url, cwd=cwd, stdout=PIPE, stderr=PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def failing(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run one ``pigeon`` command expected to fail: its exit code and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pigeon", *args, stdout=PIPE, stderr=PIPE, env=env
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


async def serve(*args: str, cwd: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pigeon", "run", "svc:app", *args, cwd=cwd, env=env, stderr=DEVNULL
    )


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 30)


def done(path: Path) -> list[int]:
    return [int(line) for line in path.read_text().split()] if path.exists() else []


async def test_workers_drain_on_sigterm_and_lose_nothing(
    broker: Backend, uid: str, tmp_path: Path
) -> None:
    url, queue, done_file = broker.url(), f"{uid}.cli", tmp_path / "done.txt"
    (tmp_path / "svc.py").write_text(textwrap.dedent(SERVICE))
    env = {**os.environ, "QUEUE": queue, "DONE_FILE": str(done_file), "PIGEON_URL": url}
    async with App(url) as producer:
        for n in range(200):
            await producer.enqueue(queue, {"n": n})
    workers = await serve("--workers", "2", cwd=tmp_path, env=env)
    await wait_for(lambda: len(done(done_file)) >= 40, timeout=30, what="40 jobs done")
    assert await stop(workers) == 0
    worker = await serve(cwd=tmp_path, env=env)
    await wait_for(lambda: set(done(done_file)) == set(range(200)), timeout=40, what="all jobs")
    assert await stop(worker) == 0
    duplicates = sum(c - 1 for c in Counter(done(done_file)).values())
    assert duplicates == 0, "SIGTERM drained the jobs in flight: none ran twice"


async def test_dlq_commands_round_trip_a_poison_message(
    broker: Backend, uid: str, tmp_path: Path
) -> None:
    url, queue = broker.url(), f"{uid}.poison"
    worker = App(url)

    @worker.worker(queue)
    async def strict(job: list[int]) -> None: ...

    async with worker:
        await worker.enqueue(queue, {"not": "a list"})
        await wait_dead_letters(worker, queue, 1)
    assert f"{queue}: 1 dead letter\n" in await pigeon("dlq", "ls", queue, url=url, cwd=tmp_path)
    shown = await pigeon("dlq", "show", queue, url=url, cwd=tmp_path)
    assert "DecodeError" in shown
    assert "attempts=1" in shown
    assert '{"not":"a list"}' in shown
    assert "replayed 1" in await pigeon("dlq", "replay", queue, url=url, cwd=tmp_path)
    replayed: list[dict[str, str]] = []
    lenient = App(url)

    @lenient.worker(queue)
    async def accept(job: dict[str, str]) -> None:
        replayed.append(job)

    async with lenient:
        await wait_for(lambda: replayed == [{"not": "a list"}], what="the replayed job")
        assert await lenient.dead_letters(queue) == []
    async with worker:
        await worker.enqueue(queue, "poison")
        await wait_dead_letters(worker, queue, 1)
    assert "purged 1" in await pigeon("dlq", "purge", queue, "--yes", url=url, cwd=tmp_path)
    assert f"{queue}: 0 dead letters" in await pigeon("dlq", "ls", queue, url=url, cwd=tmp_path)


async def test_ad_hoc_publish_request_and_enqueue(
    broker: Backend, uid: str, tmp_path: Path
) -> None:
    url = broker.url()
    app = App(url)
    events: list[dict[str, int]] = []
    jobs: list[dict[str, int]] = []

    @app.subscribe(f"{uid}.events")
    async def on_event(event: dict[str, int]) -> None:
        events.append(event)

    @app.worker(f"{uid}.jobs")
    async def on_job(job: dict[str, int]) -> None:
        jobs.append(job)

    @app.rpc(f"{uid}.add")
    async def add(numbers: list[int]) -> int:
        return sum(numbers)

    async with app:
        await pigeon("publish", f"{uid}.events", '{"n": 1}', url=url, cwd=tmp_path)
        await pigeon("enqueue", f"{uid}.jobs", '{"n": 2}', url=url, cwd=tmp_path)
        reply = await pigeon("request", f"{uid}.add", "[1, 2, 3]", url=url, cwd=tmp_path)
        await wait_for(lambda: events == [{"n": 1}] and jobs == [{"n": 2}])
    assert reply.strip() == "6"


@pytest.mark.parametrize(
    "command",
    [
        ("publish", "a.b", "{}"),
        ("request", "a.b", "{}"),
        ("enqueue", "a.b", "{}"),
        ("dlq", "ls", "a.b"),
        ("dlq", "replay", "a.b"),
        ("dlq", "purge", "a.b", "--yes"),
        ("status", "--queue", "a.b"),
    ],
)
async def test_broker_commands_without_a_url_say_what_to_set(command: tuple[str, ...]) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PIGEON_URL"}
    code, err = await failing(*command, env=env)
    assert code == 2
    assert "--url" in err
    assert "PIGEON_URL" in err


@pytest.mark.parametrize("command", [("ls",), ("show",), ("replay",), ("purge", "--yes")])
async def test_dlq_of_an_unknown_queue_says_it_does_not_exist(
    broker: Backend, uid: str, command: tuple[str, ...]
) -> None:
    """A misspelt queue is refused, and refused again: the first command declared nothing."""
    for _ in range(2):
        code, err = await failing(
            "dlq", command[0], f"{uid}.nothing", *command[1:], "--url", broker.url()
        )
        assert code == 1
        assert f"work queue '{uid}.nothing' does not exist" in err


async def test_the_cli_uses_a_queue_declared_with_other_settings(
    broker: Backend, uid: str, tmp_path: Path
) -> None:
    url, queue = broker.url(), f"{uid}.settled"
    options = {"queue_type": "classic"} if broker.name == "rabbitmq" else {}
    worker = App(url, delivery_limit=3, **options)  # type: ignore[arg-type]
    done: list[int] = []

    @worker.worker(queue)
    async def work(job: dict[str, int]) -> None:
        if job["n"] == 2:
            raise ValueError("fails")
        done.append(job["n"])

    async with worker:
        await pigeon("enqueue", queue, '{"n": 1}', url=url, cwd=tmp_path)
        await pigeon("enqueue", queue, '{"n": 2}', url=url, cwd=tmp_path)
        await wait_dead_letters(worker, queue, 1)
        assert done == [1]
        assert "1 dead letter\n" in await pigeon("dlq", "ls", queue, url=url, cwd=tmp_path)
        assert "replayed 1 dead letter\n" in await pigeon(
            "dlq", "replay", queue, url=url, cwd=tmp_path
        )
        await wait_dead_letters(worker, queue, 1)
        assert "purged 1 dead letter\n" in await pigeon(
            "dlq", "purge", queue, "--yes", url=url, cwd=tmp_path
        )
