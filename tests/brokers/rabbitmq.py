"""The RabbitMQ backends of the conformance suite, and the broker the RabbitMQ tests share.

Tests use ``PIGEON_TEST_AMQP_URL`` (default ``amqp://guest:guest@127.0.0.1:5672/``). When
``rabbitmqctl`` works and manages that broker (a local one on port 5672, or the one the command in
``PIGEON_TEST_RABBITMQCTL`` reaches, e.g. ``docker compose exec -T rabbitmq rabbitmqctl``), the
session gets a virtual host of its own, deleted at exit with every queue and exchange the tests
declared in it: tests never see, nor disturb, anyone else's objects on a shared broker. Otherwise
they run in the URL's virtual host and leave their queues behind (each named after its test's
``t<hex>`` token).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shlex
import socket
import subprocess
import uuid
from collections.abc import Callable
from urllib.parse import quote, unquote, urlsplit

from tests.backends import Backend, unavailable

URL = os.environ.get("PIGEON_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
RABBITMQCTL = shlex.split(os.environ.get("PIGEON_TEST_RABBITMQCTL", "rabbitmqctl"))
LOCAL = ("127.0.0.1", "localhost", "::1")
VHOST_PREFIX = f"pigeon-test-{socket.gethostname()}-"


def rabbitmqctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``rabbitmqctl`` with ``args``; raises ``OSError`` / ``CalledProcessError``."""
    return subprocess.run(
        [*RABBITMQCTL, *args], check=True, capture_output=True, text=True, timeout=timeout
    )


@functools.cache
def session_url() -> tuple[str | None, str]:
    """``(url, vhost)`` the tests of this process use; ``(None, reason)`` if unreachable."""
    parts = urlsplit(URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 2).close()
    except OSError as exc:
        return None, f"RabbitMQ is not reachable at {parts.hostname}:{parts.port}: {exc}"
    if "PIGEON_TEST_RABBITMQCTL" not in os.environ and (
        parts.hostname not in LOCAL or (parts.port or 5672) != 5672
    ):  # the local rabbitmqctl would manage another broker than the URL's
        return URL, unquote(parts.path[1:]) or "/"
    vhost = f"{VHOST_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, unquote(parts.username or "guest"), *[".*"] * 3)
    except (OSError, subprocess.SubprocessError):
        return URL, unquote(parts.path[1:]) or "/"
    atexit.register(_delete_vhosts, vhost)
    return parts._replace(path="/" + quote(vhost, safe="")).geturl(), vhost


def require_url() -> str:
    """The session's URL, or skip (fail under ``PIGEON_REQUIRE_BROKERS=1``) the test."""
    url, reason = session_url()
    if url is None:
        unavailable(reason)
    assert url is not None
    return url


SWEEP_EVERY = 25
"""RabbitMQ tests between two sweeps of the session's vhost (``sweep_when_due``)."""
_since_sweep = 0


def sweep_when_due() -> None:
    """After every ``SWEEP_EVERY``-th RabbitMQ test, delete every queue of this session's vhost.

    RabbitMQ 3.10 reserves file handles for each quorum queue (three on one node) from a
    budget of about 90% of its process's descriptor limit: with Debian's default of 1,024, the
    ~309th quorum queue on the node left none for new connections, which then waited for good
    (the node stopped answering AMQP, while ``rabbitmq-diagnostics ping`` still worked). A session
    declares far more than that, so it deletes them as it goes. Called between tests, when no
    App of a finished test is left; raises ``OSError`` / ``SubprocessError`` / pika's errors
    if the broker cannot be swept (the next tests would fail anyway, less clearly).
    """
    global _since_sweep
    _since_sweep += 1
    if _since_sweep < SWEEP_EVERY or not session_url.cache_info().currsize:
        return
    _since_sweep = 0
    url, vhost = session_url()
    if url is not None and vhost.startswith(VHOST_PREFIX):  # never anyone else's queues
        _empty(vhost)


def _delete_vhosts(own: str) -> None:
    """Delete this session's vhost, and those of sessions on this host that died before theirs."""
    stale = [own]
    try:
        listed = rabbitmqctl("list_vhosts", "--silent", "name").stdout.split()
    except (OSError, subprocess.SubprocessError):
        listed = []
    for name in listed:
        pid = name[len(VHOST_PREFIX) :].split("-")[0] if name.startswith(VHOST_PREFIX) else ""
        if pid.isdigit() and name != own and not _alive(int(pid)):
            stale.append(name)
    for name in stale:
        with contextlib.suppress(Exception):  # cleanup at exit: never fail a passing run
            _empty(name)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            rabbitmqctl("delete_vhost", name)


def _empty(vhost: str) -> None:
    """Purge, then delete, every queue of ``vhost`` one at a time (the delay ladder first).

    RabbitMQ 3.10 here hung for good deleting a vhost whose quorum queues still held messages
    moving between them (delayed jobs dead-lettered from level to level): the node stopped
    answering AMQP. Emptying the queues first leaves the vhost deletion nothing to move.
    """
    import pika  # a dev dependency; imported only to clean up

    listed = rabbitmqctl("list_queues", "-p", vhost, "--silent", "name", timeout=30).stdout.split()
    queues = sorted(listed, key=lambda name: not name.startswith("pigeon.delay."))
    parts = urlsplit(URL)
    credentials = pika.PlainCredentials(
        unquote(parts.username or "guest"), unquote(parts.password or "guest")
    )
    params = pika.ConnectionParameters(
        parts.hostname or "127.0.0.1",
        parts.port or 5672,
        vhost,
        credentials,
        blocked_connection_timeout=30,
        socket_timeout=10,
    )
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        for queue in queues:
            channel.queue_purge(queue)
        for queue in queues:
            channel.queue_delete(queue)
    finally:
        connection.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _backend(name: str, **options: object) -> Callable[[], Backend]:
    def make() -> Backend:
        url = require_url()
        return Backend(name, lambda: url, dict(options))

    return make


BACKENDS: dict[str, Callable[[], Backend]] = {
    "rabbitmq": _backend("rabbitmq"),
    "rabbitmq-classic": _backend("rabbitmq-classic", queue_type="classic"),
}
