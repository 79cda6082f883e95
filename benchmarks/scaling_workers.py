"""``pigeon run --workers 1`` against ``--workers 2`` (issue 18): the throughput of a work pool
served by ``pigeon run`` with one and with two worker processes, on NATS (the server of
``benchmarks.nats_cases.nats_server``: a ``nats-server -js`` started for the run, or
``PIGEON_BENCH_NATS_URL``).

Each job takes ``JOB_CPU_US`` of CPU (``benchmarks.workers_app``), the kind of work more processes
are for, and enough that one producer process keeps two workers busy. Once every worker reports
ready (``/readyz`` on ``--http-port``), this process enqueues the jobs from 16 concurrent producers
and waits for each job's ``scaling.done`` event: jobs per second from the first enqueue to the
last job done, and the CPU time the ``pigeon run`` processes spent meanwhile, per job. Runs of 1
and 2 workers alternate, the median counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator

import nats

from benchmarks import workers_app
from benchmarks.nats_cases import nats_server
from pigeon import App

WORKERS = (1, 2)
JOB_CPU_US = 1000
PRODUCERS = 16
TICK = workers_app.Tick(symbol="PGN", price=12.5, volume=300)


def _free_ports(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + count > 65535:
            continue
        try:
            for port in range(first + 1, first + count):
                with socket.socket() as other:
                    other.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first
    raise RuntimeError("no consecutive free ports")


async def _ready(port: int, patience: float = 60.0) -> None:
    """Wait until ``GET /readyz`` on ``port`` answers 200."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the worker on port {port} did not become ready")


@contextlib.asynccontextmanager
async def _pigeon_run(url: str, workers: int) -> AsyncIterator[int]:
    """``pigeon run benchmarks.workers_app:app --workers N`` until the block ends (SIGTERM); its
    process id."""
    port = _free_ports(workers)
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pigeon", "run", "benchmarks.workers_app:app"),
        *("--url", url, "--workers", str(workers), "--http-port", str(port)),
        *("--bind", "127.0.0.1", "--log-level", "WARNING"),
        env={**os.environ, "PIGEON_BENCH_JOB_CPU_US": str(JOB_CPU_US)},
    )
    try:
        for index in range(workers):
            await _ready(port + index)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` and its descendants (Linux ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/task/{pid}/children") as listed:
            children = [int(child) for child in listed.read().split()]
    except FileNotFoundError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    return own + sum(_tree_cpu(child) for child in children)


async def run_once(url: str, workers: int, jobs: int) -> tuple[float, float]:
    """Jobs per second of ``jobs`` jobs through ``pigeon run --workers workers``, and the CPU
    microseconds its processes spent per job."""
    client, done, finished = App(url), asyncio.Event(), 0
    share = jobs // PRODUCERS

    @client.subscribe(workers_app.DONE)
    async def on_done(volume: int) -> None:
        nonlocal finished
        finished += 1
        if finished == share * PRODUCERS:
            done.set()

    async def producer() -> None:
        for _ in range(share):
            await client.enqueue(workers_app.QUEUE, TICK)

    async with _pigeon_run(url, workers) as pid, client:
        cpu, start = _tree_cpu(pid), time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
        await asyncio.wait_for(done.wait(), 300)
        seconds, cpu = time.perf_counter() - start, _tree_cpu(pid) - cpu
    return share * PRODUCERS / seconds, cpu / (share * PRODUCERS) * 1e6


async def _delete_streams(url: str) -> None:
    connection = await nats.connect(url)
    for name in ("PIGEON_Q_scaling_jobs", "PIGEON_DLQ_scaling_jobs"):
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await connection.jetstream().delete_stream(name)
    await connection.close()


async def measure(jobs: int, rounds: int) -> dict[str, list[float]]:
    """Jobs per second with 1 and 2 worker processes, the median of ``rounds`` alternations."""
    rates: list[list[float]] = [[] for _ in WORKERS]
    cpu: list[list[float]] = [[] for _ in WORKERS]
    async with nats_server() as url:
        for _ in range(rounds):
            for index, workers in enumerate(WORKERS):
                rate, cpu_per_job = await run_once(url, workers, jobs)
                rates[index].append(rate)
                cpu[index].append(cpu_per_job)
                print(f"   --workers {workers}: {rate:,.0f} jobs/s", file=sys.stderr, flush=True)
        await _delete_streams(url)
    return {
        "pigeon run --workers (jobs/s)": [statistics.median(s) for s in rates],
        "pigeon run --workers, CPU (us/job)": [statistics.median(s) for s in cpu],
    }


if __name__ == "__main__":
    given = [int(arg) for arg in sys.argv[1:3]]  # [jobs [rounds]]
    jobs, rounds = [*given, *(2_000, 3)[len(given) :]]
    print(asyncio.run(measure(jobs, rounds)))
