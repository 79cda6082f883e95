"""``make soak``: every scenario at full size, on NATS (JetStream) and RabbitMQ (quorum queues),
one after the other, and a table per scenario.

``python -m reliability [--only crash,poison] [--brokers nats] [--scale 0.1] [--markdown FILE]``.
``--scale`` multiplies every size (for a quick look); ``--markdown`` also writes the tables as
Markdown, as ``docs/reliability.md`` shows them. Exits 1 if any guarantee was broken.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from reliability.result import Result, format_markdown, format_table
from reliability.scenarios.cluster import cluster_node_loss
from reliability.scenarios.crash import worker_crash
from reliability.scenarios.cut import broker_cut
from reliability.scenarios.fuzz import bad_input
from reliability.scenarios.poison import poison
from reliability.scenarios.rpc_load import rpc_under_load
from reliability.scenarios.slow import slow_consumer
from reliability.targets import (
    Target,
    Unavailable,
    nats_cluster,
    nats_server,
    rabbitmq_broker,
    rabbitmq_cluster,
    redis_server,
)

Run = Callable[[str, Path, float], Awaitable[Result]]
"""Runs a scenario on a broker (``nats``, ``rabbitmq``, ``redis``) in a work directory, sizes
scaled."""


def sized(full: int, scale: float, least: int = 100) -> int:
    """``full`` times ``scale``, at least ``least`` (or ``full``, if smaller)."""
    return max(min(full, least), round(full * scale))


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    run: Run
    brokers: tuple[str, ...] = ("nats", "rabbitmq", "redis")


def on_target(run: Callable[[Target, Path, float], Awaitable[Result]]) -> Run:
    """A scenario run on a broker of its own: a fresh NATS server, or RabbitMQ's session vhost."""

    async def on(broker: str, workdir: Path, scale: float) -> Result:
        async with _broker(broker) as target:
            return await run(target, workdir, scale)

    return on


async def _cluster(broker: str, workdir: Path, scale: float) -> Result:
    if broker == "rabbitmq":
        async with rabbitmq_cluster() as nodes:
            return await cluster_node_loss(nodes, workdir, jobs=sized(3_000, scale))
    async with nats_cluster() as cluster:
        return await cluster_node_loss(cluster, workdir, jobs=sized(10_000, scale))


SCENARIOS = [
    Scenario(
        "crash",
        "Worker crash: 3 worker processes, one SIGKILLed twice mid-run",
        on_target(lambda t, w, s: worker_crash(t, w, jobs=sized(10_000, s), workers=3, kills=2)),
    ),
    Scenario(
        "cut",
        "Broker cut: jobs enqueued and consumed while every connection is cut twice",
        on_target(lambda t, w, s: broker_cut(t, w, jobs=sized(10_000, s), cuts=2)),
    ),
    Scenario(
        "cluster",
        "Cluster: 3 nodes (NATS replicas 3, RabbitMQ quorum queues), the leader's node killed",
        _cluster,
        brokers=("nats", "rabbitmq"),
    ),
    Scenario(
        "poison",
        "Poison: 1% of jobs always fail, 5% fail twice then succeed",
        on_target(lambda t, w, s: poison(t, w, jobs=sized(10_000, s))),
    ),
    Scenario(
        "slow",
        "Slow consumer: a backlog waiting for a worker handling 100 jobs/s",
        on_target(
            lambda t, w, s: slow_consumer(
                t, w, backlog=sized(100_000, s), rate=100, slow_jobs=sized(1_000, s)
            )
        ),
    ),
    Scenario(
        "fuzz",
        "Bad input: fuzzed bodies and headers, each as an event, a job and a request",
        on_target(lambda t, w, s: bad_input(t, w, cases=sized(1_000, s))),
        brokers=("nats", "rabbitmq"),  # no fuzzing raw Redis client yet
    ),
    Scenario(
        "rpc",
        "RPC under load: 200 requests in flight, 2 servers, one SIGKILLed midway",
        on_target(lambda t, w, s: rpc_under_load(t, w, requests=sized(10_000, s), in_flight=200)),
    ),
]


@contextlib.asynccontextmanager
async def _broker(name: str) -> AsyncIterator[Target]:
    if name == "nats":
        async with nats_server() as target:
            yield target
    elif name == "redis":
        async with redis_server() as target:
            yield target
    else:
        async with rabbitmq_broker() as target:
            yield target


async def run_scenario(scenario: Scenario, brokers: list[str], scale: float) -> list[Result]:
    """``scenario`` on each of ``brokers`` in turn, one run at a time."""
    results = []
    for broker in brokers:
        if broker not in scenario.brokers:
            continue
        print(f"  {scenario.key} on {broker} ...", file=sys.stderr, flush=True)
        try:
            with tempfile.TemporaryDirectory(prefix="pigeon-soak-") as workdir:
                results.append(await scenario.run(broker, Path(workdir), scale))
        except Unavailable as exc:
            print(f"  {scenario.key} on {broker}: skipped, {exc}", file=sys.stderr)
        except Exception as exc:  # one scenario's crash must not end the soak
            results.append(_crashed(scenario, broker, exc))
    return results


def _crashed(scenario: Scenario, broker: str, exc: Exception) -> Result:
    problem = f"the scenario itself failed: {type(exc).__name__}: {exc}"
    return Result(scenario.key, broker, 0, 0, 0, 0, 0, None, 0.0, problems=[problem])


async def soak(keys: list[str], brokers: list[str], scale: float, markdown: Path | None) -> bool:
    """Run the scenarios named by ``keys``; print their tables (and write them as Markdown to
    ``markdown``); whether every guarantee held."""
    ok, sections = True, []
    for scenario in (s for s in SCENARIOS if s.key in keys):
        results = await run_scenario(scenario, brokers, scale)
        print(f"\n{scenario.title}\n\n{format_table(results)}", flush=True)
        for result in results:
            for problem in _first_problems(result):
                print(f"  {result.broker}: {problem}")
            ok = ok and result.ok
        sections.append(f"#### {scenario.title}\n\n{format_markdown(results)}\n")
        if markdown is not None:
            await asyncio.to_thread(markdown.write_text, "\n".join(sections))
    return ok


def _first_problems(result: Result, count: int = 5) -> list[str]:
    """The first ``count`` problems of ``result``, and how many more there are."""
    shown = result.problems[:count]
    more = len(result.problems) - count
    return [*shown, f"... and {more} more"] if more > 0 else shown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reliability",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keys = [s.key for s in SCENARIOS]
    parser.add_argument("--only", default=",".join(keys), help=f"of {','.join(keys)}")
    parser.add_argument("--brokers", default="nats,rabbitmq,redis", help="of nats,rabbitmq,redis")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every size")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)  # clients' reconnect chatter is expected here
    chosen = args.only.split(",")
    unknown = set(chosen) - set(keys)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose of {','.join(keys)}")
    ok = asyncio.run(soak(chosen, args.brokers.split(","), args.scale, args.markdown))
    return 0 if ok else 1
