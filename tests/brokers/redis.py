"""The Redis backend of the conformance suite, and the ``redis-server`` processes tests start.

Tests use ``PIGEON_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``). Every App of a test
session gets the key prefix ``pigeon-test-<pid>@<pid namespace>-<hex>:`` (in the URL's ``prefix``
parameter), so sessions running at once on one server never see each other's keys or channels.
At exit the session deletes its keys; and as it starts, it deletes those of the sessions in its
pid namespace whose process is gone, which never got to: pytest-xdist kills a worker that has
not exited 10 s after the run (``EXIT_TIMEOUT``), and exit handlers run last registered first,
so a slow one registered after this one (the RabbitMQ vhost's, 6 s and more) used to cost
these keys. Tests that restart a server start their own with ``RedisServer``, on a free
loopback port.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from urllib.parse import quote, urlsplit

from tests.backends import Backend, unavailable
from tests.brokers.nats import free_port, reachable

URL = os.environ.get("PIGEON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _pid_namespace() -> int:
    """The id of this process's pid namespace (0 where there is no ``/proc``): pids of
    processes in other namespaces (containers) sharing the server say nothing here."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


PID_NAMESPACE = _pid_namespace()
PREFIX = f"pigeon-test-{os.getpid()}@{PID_NAMESPACE}-{uuid.uuid4().hex[:6]}:"
"""The key prefix of this test session."""

_SESSION_KEY = re.compile(rb"pigeon-test-(\d+)@(\d+)-[0-9a-f]{6}:")
"""A key of a test session: its pid and pid namespace."""

REDIS_SERVER = shutil.which("redis-server")


@functools.cache
def session() -> tuple[str | None, str]:
    """``(url, prefix)`` of this session, or ``(None, reason)`` if Redis is unreachable."""
    parts = urlsplit(URL)
    if not reachable(f"redis://{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"):
        return None, f"Redis is not reachable at {parts.hostname}:{parts.port or 6379}"
    delete_stale_keys(URL)
    atexit.register(delete_keys, URL, PREFIX)
    return URL, PREFIX


def require() -> tuple[str, str]:
    """The session's URL and prefix, or skip (fail under ``PIGEON_REQUIRE_BROKERS=1``)."""
    url, prefix = session()
    if url is None:
        unavailable(prefix)
    assert url is not None
    return url, prefix


def delete_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` on ``url``."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        try:
            batch = []
            for key in client.scan_iter(match=prefix.replace("*", "\\*") + "*", count=1000):
                batch.append(key)
                if len(batch) >= 500:
                    client.delete(*batch)
                    batch.clear()
            if batch:
                client.delete(*batch)
        finally:
            client.close()
    except Exception as exc:  # cleanup at exit must not turn a passing run into a failure
        print(f"pigeon tests: could not delete test keys on {url}: {exc}", file=sys.stderr)


def delete_stale_keys(url: str) -> int:
    """Delete the keys of the test sessions in this pid namespace whose process is gone;
    return how many were deleted. Never raises (a cleanup)."""
    import redis

    if not PID_NAMESPACE:
        return 0
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5) as client:
            stale = [
                key for key in client.scan_iter(match="pigeon-test-*", count=1000) if _is_stale(key)
            ]
            for start in range(0, len(stale), 500):
                client.delete(*stale[start : start + 500])
            return len(stale)
    except Exception as exc:  # never fail a run over an earlier one's leftovers
        print(f"pigeon tests: could not delete stale test keys on {url}: {exc}", file=sys.stderr)
        return 0


def _is_stale(key: bytes) -> bool:
    """Whether ``key`` belongs to a test session of this pid namespace whose process is gone."""
    match = _SESSION_KEY.match(key)
    if match is None or int(match[2]) != PID_NAMESPACE:
        return False  # not a session's, or of another namespace: its pid says nothing here
    try:
        os.kill(int(match[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


class RedisServer:
    """A ``redis-server`` of the tests on a free loopback port, with AOF (``appendfsync always``)
    in its own directory. ``stop()`` kills it (only it) and keeps the data, so ``start()``
    restarts it from its AOF; ``remove()`` also deletes the directory."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="pigeon-redis-")
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        assert REDIS_SERVER is not None
        return [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.dir,
            "--appendonly", "yes",
            "--appendfsync", "always",
            "--save", "",
            *self.args,
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while not reachable(self.url, 0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start: {' '.join(self.command())}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def session_url() -> str:
    """The URL of this session, its key prefix in the ``prefix`` query parameter (so that Apps
    in other processes, such as the CLI's, share it)."""
    url, prefix = require()
    return f"{url}?prefix={quote(prefix)}"


def _redis_backend() -> Backend:
    url = session_url()
    return Backend("redis", lambda: url)


BACKENDS: dict[str, Callable[[], Backend]] = {"redis": _redis_backend}
