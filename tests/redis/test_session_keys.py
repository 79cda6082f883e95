"""The test sessions' keys: a session deletes, as it starts, the keys of the sessions on its
host (pid namespace) whose process is gone before its exit cleanup ran (pytest-xdist kills a
worker 10 s after the run; exit handlers run last registered first)."""

from __future__ import annotations

import os
import subprocess
import sys

from redis import Redis

from tests.brokers.redis import PID_NAMESPACE, PREFIX, RedisServer, delete_stale_keys


def _dead_pid() -> int:
    """The pid of a process that has ended (until it is reused)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_keys_of_a_session_whose_process_is_gone_are_deleted(
    own_server: RedisServer,
) -> None:
    dead = f"pigeon-test-{_dead_pid()}@{PID_NAMESPACE}-abc123:"
    elsewhere = f"pigeon-test-{_dead_pid()}@{PID_NAMESPACE + 1}-abc123:"  # other namespace
    older = "pigeon-test-1-abc123:"  # the earlier form, which names no namespace
    alive = f"pigeon-test-{os.getppid()}@{PID_NAMESPACE}-abc123:"
    kept = [f"{PREFIX}q:jobs", f"{elsewhere}q:jobs", f"{older}q:jobs", f"{alive}q:jobs", "other"]
    with Redis.from_url(own_server.url) as client:
        for key in [f"{dead}q:jobs", f"{dead}q:jobs:settings", *kept]:
            client.set(key, 1)
        assert delete_stale_keys(own_server.url) == 2
        assert sorted(k.decode() for k in client.keys("*")) == sorted(kept)


def test_a_server_that_cannot_be_reached_is_no_error() -> None:
    assert delete_stale_keys("redis://127.0.0.1:1/0") == 0
