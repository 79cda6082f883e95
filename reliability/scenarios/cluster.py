"""Cluster: a three-node cluster loses a node mid-run; no job is lost.

NATS: work streams have three replicas; RabbitMQ: quorum queues (replicated on the three nodes).
While an App enqueues ``jobs`` and ``pigeon run --workers 3`` (each worker connected to a node
picked at random) handles them, the node that leads the work queue is killed. Clients on it
reconnect to another node, the queue elects a new leader, stores in flight are retried, and jobs
left unacked come back.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from reliability.models import Job
from reliability.processes import running
from reliability.result import Result
from reliability.scenarios.workpool import SERVICE, JobRun
from reliability.tally import settle
from reliability.targets import Target


class Cluster(Protocol):
    """Nodes of a broker's cluster: a ``target`` naming them all, and a way to kill the leader
    of a work queue."""

    target: Target

    async def kill_leader_of(self, queue: str) -> str: ...


async def cluster_node_loss(
    cluster: Cluster,
    workdir: Path,
    *,
    jobs: int = 10_000,
    workers: int = 3,
    kill_at: float = 0.3,
    parallel: int = 32,
    delay: float = 0.001,
) -> Result:
    """Enqueue and handle ``jobs``; kill the work stream's leader once ``kill_at`` of them are
    handled."""
    run = JobRun("cluster node loss", cluster.target, workdir)
    env = run.env(delay=delay)
    async with running(SERVICE, env, workers=workers) as service, run.target.app() as producer:
        sender = run.sending(producer, parallel)
        producing = asyncio.create_task(sender.run(Job(n=n) for n in range(jobs)))
        await settle(lambda: run.done.handled >= kill_at * jobs or producing.done(), run.progress)
        killed = await cluster.kill_leader_of(run.queue)
        await producing
        await run.all_handled()
        await run.stop(service, "the supervisor")
        rss = service.peak_rss
        letters = await producer.dead_letters(run.queue)
    notes = f"killed {killed} (the queue's leader) at {kill_at:.0%}; {sender.describe_raised()}"
    return run.result(letters, rss, notes)
