"""A three-node NATS cluster with JetStream replicas 3: one node dies mid-run, no job is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Iterator

import nats
import pytest

from pigeon import App, BrokerError
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for
from tests.brokers.nats import NatsServer, routed_servers

JOBS = 300
STREAM = "PIGEON_Q_cluster_jobs"


@pytest.fixture
def cluster() -> Iterator[list[NatsServer]]:
    """Three servers of this test, routed to each other, each with its own JetStream store."""
    with routed_servers(3, cluster="pigeon-test", prefix="n") as servers:
        yield servers


async def _ignore(error: Exception) -> None:
    """The observer's errors (reconnecting to the killed node) are not what the test is about."""


async def _jetstream_ready(client: nats.NATS) -> bool:
    try:
        reply = await client.request("$JS.API.INFO", b"", timeout=1)
    except nats.errors.Error:
        return False
    return "error" not in json.loads(reply.data)


async def _lead_on(client: nats.NATS, node: str) -> bool:
    """Whether ``node`` leads the work stream; if not, ask its leader to hand over to ``node``."""
    info = await client.jetstream().stream_info(STREAM)
    assert info.config.num_replicas == 3
    if info.cluster is not None and info.cluster.leader == node:
        return True
    request = json.dumps({"placement": {"preferred": node}}).encode()
    with contextlib.suppress(nats.errors.Error):  # an election under way: asked again next poll
        await client.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}", request, timeout=2)
    return False


@pytest.mark.slow
async def test_a_node_killed_mid_run_loses_no_job(cluster: list[NatsServer]) -> None:
    url = ",".join(server.url for server in cluster)
    observer = await nats.connect([server.url for server in cluster], error_cb=_ignore)
    await wait_for(lambda: _jetstream_ready(observer), timeout=30, what="JetStream cluster")
    app = App(url, replicas=3, reconnect_time_wait=0.2, dont_randomize=True)  # on n0 first
    done: Counter[int] = Counter()

    @app.worker("cluster.jobs", concurrency=8)
    async def work(job: Job) -> None:
        await asyncio.sleep(0.002)  # the job's work
        done[job.n] += 1

    async def produce() -> None:
        for n in range(JOBS):
            await app.enqueue("cluster.jobs", Job(n))

    try:
        async with app:
            producing = asyncio.create_task(produce())
            await wait_for(lambda: len(done) >= 60, timeout=30, what="the run under way")
            await wait_for(lambda: _lead_on(observer, "n0"), timeout=20, what="n0 leading")
            await asyncio.to_thread(cluster[0].stop)  # the App's server and the stream's leader
            await producing
            await wait_for(lambda: len(done) == JOBS, timeout=40, what="every job handled")
    finally:
        await observer.close()
    duplicates = sum(count - 1 for count in done.values())
    print(f"\ncluster: killed n0 mid-run; {JOBS} jobs, none lost, {duplicates} handled twice")
    assert set(done) == set(range(JOBS))


async def test_more_replicas_than_live_servers_is_a_broker_error_saying_so() -> None:
    """A cluster with too few servers up for a stream's replicas ("no suitable peers for
    placement", also after nodes died or came back wiped) is a state that passes: a
    ``BrokerError`` (``pigeon run --workers`` restarts), not a ``ConfigurationError``."""
    with routed_servers(2, cluster="pigeon-few", prefix="f") as servers:
        url = ",".join(server.url for server in servers)
        observer = await nats.connect(servers=[server.url for server in servers])
        try:
            await wait_for(lambda: _jetstream_ready(observer), 30, "JetStream to have a leader")
        finally:
            await observer.close()
        async with App(url, replicas=3) as app:
            with pytest.raises(BrokerError, match="too few servers of the cluster are up"):
                await app.enqueue("few.jobs", Job(1))
