"""NATS: pigeon beside the same work written by hand with raw nats-py, and with FastStream 0.7.

Cases: pub-sub of a small pydantic model, sequential RPC (p50, p99; also with pigeon's and raw
nats-py's requests interleaved in blocks, below), RPC with 64 and 512 requests in flight
(throughput, and p50/p99 at 512), and a work pool (64 producers enqueueing with PubAck, one
worker of concurrency 64).
Each implementation uses one connection and validates every message into the model, like pigeon.
The server is ``PIGEON_BENCH_NATS_URL`` if set, else a ``nats-server -js`` started for the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from pydantic import BaseModel

from benchmarks import common
from benchmarks.common import (
    Result,
    Stopwatch,
    latencies,
    median_of,
    pigeon_pubsub_seconds,
    throughput,
)
from pigeon import App
from pigeon.transports.nats.client import registered

IN_FLIGHT = 64
MANY_IN_FLIGHT = 512
JSON = "application/json"


class Tick(BaseModel):
    symbol: str
    price: float
    volume: int


TICK = Tick(symbol="PGN", price=12.5, volume=300)
Case = Callable[[str, int], Awaitable[list[Result]]]


# -- pub-sub ---------------------------------------------------------------------------------


async def pigeon_pubsub(url: str, count: int, observe: str = "") -> list[Result]:
    """pigeon's pub-sub; ``observe``: "metrics" or "tracing" to measure their overhead."""
    app = App(url)
    if observe == "metrics":
        from pigeon.metrics import PrometheusMetrics

        app.observe(PrometheusMetrics())
    elif observe == "tracing":
        from opentelemetry.sdk.trace import TracerProvider

        from pigeon.tracing import OpenTelemetryTracing

        app.observe(OpenTelemetryTracing(TracerProvider()))
    seconds = await pigeon_pubsub_seconds(app, "bench.pigeon.ticks", Tick, TICK, count)
    impl = f"pigeon + {observe}" if observe else "pigeon"
    return [throughput("nats pub-sub", impl, count, seconds)]


async def raw_pubsub(url: str, count: int, *, with_headers: bool = False) -> list[Result]:
    """By hand: publish the model's JSON, validate it in the callback. ``with_headers`` adds the
    two headers pigeon sends on every event (message id, content type), to show their cost."""
    nc = await nats.connect(url)
    done, received = asyncio.Event(), 0

    async def on_tick(msg: Any) -> None:
        nonlocal received
        Tick.model_validate_json(msg.data)
        received += 1
        if received == count:
            done.set()

    await nc.subscribe("bench.raw.ticks", cb=on_tick)
    await nc.flush()
    with Stopwatch() as sw:
        for n in range(count):
            headers = {"Nats-Msg-Id": f"{n:x}", "content-type": JSON} if with_headers else None
            await nc.publish("bench.raw.ticks", TICK.model_dump_json().encode(), headers=headers)
        await done.wait()
    await nc.close()
    impl = "raw nats-py + 2 headers" if with_headers else "raw nats-py"
    return [throughput("nats pub-sub", impl, count, sw.seconds)]


async def faststream_pubsub(url: str, count: int) -> list[Result]:
    from faststream.nats import NatsBroker

    broker = NatsBroker(url, logger=None)
    done, received = asyncio.Event(), 0

    @broker.subscriber("bench.fs.ticks")
    async def on_tick(tick: Tick) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    await broker.start()
    with Stopwatch() as sw:
        for _ in range(count):
            await broker.publish(TICK, "bench.fs.ticks")
        await done.wait()
    await broker.stop()
    return [throughput("nats pub-sub", "faststream", count, sw.seconds)]


# -- RPC -------------------------------------------------------------------------------------


async def _sequential(request: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await request()
        samples.append(time.perf_counter() - start)
    return samples


async def _in_flight(
    request: Callable[[], Awaitable[Any]], count: int, callers: int = IN_FLIGHT
) -> tuple[float, list[float]]:
    """Seconds for ``count`` requests made by ``callers`` concurrent callers, and each one's."""
    samples: list[float] = []

    async def one_caller() -> None:
        for _ in range(count // callers):
            start = time.perf_counter()
            await request()
            samples.append(time.perf_counter() - start)

    with Stopwatch() as sw:
        await asyncio.gather(*(one_caller() for _ in range(callers)))
    return sw.seconds, samples


async def _rpc_results(
    impl: str, request: Callable[[], Awaitable[Any]], count: int
) -> list[Result]:
    for _ in range(100):  # warm up
        await request()
    samples = await _sequential(request, count)
    seconds, _ = await _in_flight(request, count * 2)
    done = (count * 2) // IN_FLIGHT * IN_FLIGHT
    many = max(count * 4, MANY_IN_FLIGHT * 8)
    many_seconds, many_samples = await _in_flight(request, many, MANY_IN_FLIGHT)
    return [
        *latencies("nats rpc sequential", impl, samples),
        throughput(f"nats rpc {IN_FLIGHT} in flight", impl, done, seconds),
        throughput(f"nats rpc {MANY_IN_FLIGHT} in flight", impl, len(many_samples), many_seconds),
        *latencies(f"nats rpc {MANY_IN_FLIGHT} in flight", impl, many_samples),
    ]


async def pigeon_rpc(url: str, count: int) -> list[Result]:
    app = App(url)

    @app.rpc("bench.pigeon.rpc")
    async def echo(tick: Tick) -> Tick:
        return tick

    async with app:
        return await _rpc_results(
            "pigeon", lambda: app.request("bench.pigeon.rpc", TICK, reply=Tick), count
        )


async def raw_rpc(url: str, count: int) -> list[Result]:
    nc = await nats.connect(url)

    async def echo(msg: Any) -> None:
        tick = Tick.model_validate_json(msg.data)
        await msg.respond(tick.model_dump_json().encode())

    async def request() -> Tick:
        reply = await nc.request("bench.raw.rpc", TICK.model_dump_json().encode(), timeout=5)
        return Tick.model_validate_json(reply.data)

    await nc.subscribe("bench.raw.rpc", queue="rpc", cb=echo)
    await nc.flush()
    results = await _rpc_results("raw nats-py", request, count)
    await nc.close()
    return results


async def faststream_rpc(url: str, count: int) -> list[Result]:
    from faststream.nats import NatsBroker

    broker = NatsBroker(url, logger=None)

    @broker.subscriber("bench.fs.rpc", queue="rpc")
    async def echo(tick: Tick) -> Tick:
        return tick

    async def request() -> Tick:
        reply = await broker.request(TICK, "bench.fs.rpc", timeout=5)
        return Tick.model_validate(await reply.decode())

    await broker.start()
    results = await _rpc_results("faststream", request, count)
    await broker.stop()
    return results


BLOCK = 20
"""Requests in a row of one implementation in the interleaved sequential case."""


async def interleaved_rpc(url: str, count: int) -> list[Result]:
    """Sequential requests of pigeon and raw nats-py (the cases above, each its own connection),
    taken in turns of ``BLOCK``: the machine's drift over seconds hits both alike, which it
    does not when each implementation's requests run in a block of their own."""
    app = App(url)

    @app.rpc("bench.pigeon.rpc")
    async def echo(tick: Tick) -> Tick:
        return tick

    nc = await nats.connect(url)

    async def raw_echo(msg: Any) -> None:
        tick = Tick.model_validate_json(msg.data)
        await msg.respond(tick.model_dump_json().encode())

    async def raw_request() -> Tick:
        reply = await nc.request("bench.raw.rpc", TICK.model_dump_json().encode(), timeout=5)
        return Tick.model_validate_json(reply.data)

    await nc.subscribe("bench.raw.rpc", queue="rpc", cb=raw_echo)
    await registered(nc)  # nats-py's own flush may pass its SUB
    calls = {
        "pigeon": lambda: app.request("bench.pigeon.rpc", TICK, reply=Tick),
        "raw nats-py": raw_request,
    }
    samples: dict[str, list[float]] = {impl: [] for impl in calls}
    async with app:
        for call in calls.values():
            for _ in range(100):  # warm up
                await call()
        for _ in range(count // BLOCK):
            for impl, call in calls.items():
                samples[impl] += await _sequential(call, BLOCK)
    await nc.close()
    case = "nats rpc sequential, interleaved"
    return [result for impl, taken in samples.items() for result in latencies(case, impl, taken)]


# -- work pool -------------------------------------------------------------------------------


async def _produce(enqueue: Callable[[], Awaitable[Any]], count: int) -> None:
    async def producer() -> None:
        for _ in range(count // IN_FLIGHT):
            await enqueue()

    await asyncio.gather(*(producer() for _ in range(IN_FLIGHT)))


async def pigeon_workpool(url: str, count: int) -> list[Result]:
    app = App(url)
    done, handled, total = asyncio.Event(), 0, count // IN_FLIGHT * IN_FLIGHT

    @app.worker("bench.pigeon.jobs", concurrency=IN_FLIGHT)
    async def work(tick: Tick) -> None:
        nonlocal handled
        handled += 1
        if handled == total:
            done.set()

    async with app:
        with Stopwatch() as sw:
            await _produce(lambda: app.enqueue("bench.pigeon.jobs", TICK), count)
            await done.wait()
    await _delete_streams(url, "PIGEON_Q_bench_pigeon_jobs", "PIGEON_DLQ_bench_pigeon_jobs")
    return [throughput("nats work pool", "pigeon", total, sw.seconds)]


async def raw_workpool(url: str, count: int) -> list[Result]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="BENCH_RAW", subjects=["bench.raw.jobs"], retention="workqueue")
    subscription = await js.pull_subscribe("bench.raw.jobs", durable="workers")
    total = count // IN_FLIGHT * IN_FLIGHT

    async def work() -> None:
        handled = 0
        while handled < total:
            with contextlib.suppress(nats.errors.TimeoutError):
                for msg in await subscription.fetch(IN_FLIGHT, timeout=1):
                    Tick.model_validate_json(msg.data)
                    await msg.ack()
                    handled += 1

    async def enqueue() -> None:
        await js.publish("bench.raw.jobs", TICK.model_dump_json().encode())

    with Stopwatch() as sw:
        await asyncio.gather(work(), _produce(enqueue, count))
    await js.delete_stream("BENCH_RAW")
    await nc.close()
    return [throughput("nats work pool", "raw nats-py", total, sw.seconds)]


async def faststream_workpool(url: str, count: int) -> list[Result]:
    from faststream.nats import JStream, NatsBroker, PullSub

    broker = NatsBroker(url, logger=None)
    stream = JStream("BENCH_FS", subjects=["bench.fs.jobs"], retention="workqueue")
    done, handled, total = asyncio.Event(), 0, count // IN_FLIGHT * IN_FLIGHT

    @broker.subscriber(
        "bench.fs.jobs",
        stream=stream,
        durable="workers",
        pull_sub=PullSub(batch_size=IN_FLIGHT),
        max_workers=IN_FLIGHT,
    )
    async def work(tick: Tick) -> None:
        nonlocal handled
        handled += 1
        if handled == total:
            done.set()

    await broker.start()
    with Stopwatch() as sw:
        await _produce(lambda: broker.publish(TICK, "bench.fs.jobs", stream="BENCH_FS"), count)
        await done.wait()
    await broker.stop()
    await _delete_streams(url, "BENCH_FS")
    return [throughput("nats work pool", "faststream", total, sw.seconds)]


async def _delete_streams(url: str, *names: str) -> None:
    nc = await nats.connect(url)
    for name in names:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(name)
    await nc.close()


# -- running ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def nats_server() -> AsyncIterator[str]:
    """``PIGEON_BENCH_NATS_URL``, or a ``nats-server -js`` on a free loopback port for the run."""
    given = os.environ.get("PIGEON_BENCH_NATS_URL")
    if given:
        yield given
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = tempfile.mkdtemp(prefix="pigeon-bench-")
    binary = Path(sys.executable).parent / "nats-server"
    command = [str(binary), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        url = f"nats://127.0.0.1:{port}"
        for _ in range(500):  # until it accepts connections
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            break
        yield url
    finally:
        process.kill()
        await process.wait()
        shutil.rmtree(store, ignore_errors=True)


async def _rounds(cases: list[Case], url: str, count: int) -> list[Result]:
    """Each case ``common.ROUNDS`` times, interleaved so drift hits every implementation alike;
    the median round of each."""
    rounds: dict[tuple[str, str], list[Result]] = {}
    for _ in range(common.ROUNDS):
        for case in cases:
            common.clean_slate()
            for result in await case(url, count):
                rounds.setdefault((result.case, result.impl), []).append(result)
    return [median_of(found) for found in rounds.values()]


async def run(count: int) -> list[Result]:
    """Every NATS case: pigeon first, then raw nats-py, then FastStream."""
    async with nats_server() as url:
        results = await _rounds(
            [
                pigeon_pubsub,
                raw_pubsub,
                lambda url, n: raw_pubsub(url, n, with_headers=True),
                faststream_pubsub,
                lambda url, n: pigeon_pubsub(url, n, "metrics"),
                lambda url, n: pigeon_pubsub(url, n, "tracing"),
            ],
            url,
            count,
        )
        results += await _rounds([pigeon_rpc, raw_rpc, faststream_rpc], url, max(1000, count // 20))
        results += await _rounds([interleaved_rpc], url, max(1000, count // 20))
        results += await _rounds(
            [pigeon_workpool, raw_workpool, faststream_workpool], url, max(1000, count // 10)
        )
    return results
