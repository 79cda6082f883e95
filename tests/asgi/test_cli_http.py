"""``pigeon run --http-port`` serves the ASGI app beside the App; ``--reload`` restarts the App
when its source changes; ``pigeon docs`` still writes the document."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import textwrap
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from pigeon import App, NoResponders, RequestTimeout
from pigeon.testing.waiting import wait_for
from tests.brokers.nats import free_port

SERVICE = """
from pigeon import App

app = App()

@app.rpc("{subject}")
async def version(n: int) -> int:
    return {version}
"""


def write_service(directory: Path, subject: str, version: int) -> None:
    (directory / "svc.py").write_text(
        textwrap.dedent(SERVICE.format(subject=subject, version=version))
    )


async def pigeon(*args: str, cwd: Path, stderr: int = DEVNULL) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pigeon", *args, cwd=cwd, stderr=stderr, stdout=DEVNULL
    )


async def stop(process: asyncio.subprocess.Process) -> int:
    process.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(process.wait(), 30)


async def test_http_port_serves_probes_metrics_and_docs(
    nats_url: str, uid: str, tmp_path: Path
) -> None:
    write_service(tmp_path, f"{uid}.version", 1)
    port = free_port()
    served = await pigeon(
        "run",
        "svc:app",
        "--url",
        nats_url,
        "--http-port",
        str(port),
        "--bind",
        "127.0.0.1",
        cwd=tmp_path,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for(ready, timeout=20, what="/readyz to answer 200")
            async with App(nats_url) as caller:
                assert await caller.request(f"{uid}.version", 1) == 1
            health = await http.get("/healthz")
            metrics = await http.get("/metrics")
            document = (await http.get("/asyncapi.json")).json()
            page = await http.get("/asyncapi")
        assert health.status_code == 200
        assert f'pigeon_messages_processed_total{{pattern="rpc",subject="{uid}.version"}} 1.0' in (
            metrics.text
        )
        assert f"{uid}.version" in {c["address"] for c in document["channels"].values()}
        assert "AsyncApiStandalone.render" in page.text
    finally:
        code = await stop(served)
    assert code == 0
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the HTTP port closed with the App"


async def test_http_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    write_service(tmp_path, "anything", 1)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = await pigeon(
            "run",
            "svc:app",
            "--http-port",
            str(port),
            "--bind",
            "127.0.0.1",
            cwd=tmp_path,
            stderr=PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2  # a configuration error: exit 2, never restarted
    assert f"cannot serve HTTP on 127.0.0.1:{port}" in err.decode()
    assert "choose another --http-port" in err.decode()


async def test_reload_restarts_the_app_when_its_source_changes(
    nats_url: str, uid: str, tmp_path: Path
) -> None:
    subject = f"{uid}.version"
    write_service(tmp_path, subject, 1)
    served = await pigeon("run", "svc:app", "--url", nats_url, "--reload", cwd=tmp_path)
    try:
        async with App(nats_url) as caller:
            await wait_for(answers(caller, subject, 1), timeout=20, what="version 1 to answer")
            write_service(tmp_path, subject, 2)
            await wait_for(answers(caller, subject, 2), timeout=20, what="version 2 to answer")
    finally:
        code = await stop(served)
    assert code == 0


def answers(caller: App, subject: str, expected: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        try:
            return bool(await caller.request(subject, 1, timeout=1) == expected)
        except (NoResponders, RequestTimeout):  # restarting: a request may reach the old one
            return False  # as it closes, which leaves it unanswered (docs/patterns/rpc.md)

    return check


async def test_reload_refuses_several_workers(tmp_path: Path) -> None:
    write_service(tmp_path, "anything", 1)
    process = await pigeon(
        "run", "svc:app", "--reload", "--workers", "2", cwd=tmp_path, stderr=PIPE
    )
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "--reload restarts one process" in " ".join(err.decode().split())


async def test_docs_without_a_subcommand_still_exports(tmp_path: Path) -> None:
    write_service(tmp_path, "svc.version", 1)
    env = {**os.environ, "PIGEON_URL": "memory://"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pigeon", "docs", "svc:app", "-o", "doc.json", cwd=tmp_path, env=env
    )
    assert await asyncio.wait_for(process.wait(), 30) == 0
    document = json.loads((tmp_path / "doc.json").read_text())
    assert document["info"]["title"] == "svc:app"
