"""Broker cut: every connection dies while jobs are being enqueued and consumed.

An App enqueues ``jobs`` at a steady ``rate`` while a ``pigeon run`` worker consumes them;
meanwhile the broker cuts every connection (RabbitMQ: ``rabbitmqctl close_all_connections`` on the
run's virtual host; NATS: the test-owned server is killed and started again on the same port and
store). Each enqueue either returns (the broker confirmed it) or raises a ``PigeonError`` within
its patience (RabbitMQ: ``reconnect_patience``; NATS: 20 s of retries); every confirmed job is
handled. A job whose enqueue raised may have been stored all the same, and be handled too: that is
no loss. ``stall`` keeps the producer busy as the cut lands, as a loaded application would be.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from pigeon import App
from reliability.models import Job
from reliability.processes import running
from reliability.result import Result
from reliability.scenarios.workpool import SERVICE, JobRun
from reliability.tally import Sender, settle
from reliability.targets import Target, Unavailable


async def broker_cut(
    target: Target,
    workdir: Path,
    *,
    jobs: int = 10_000,
    cuts: int = 2,
    rate: float = 1_000.0,
    parallel: int = 32,
    stall: float = 0.0,
    send_timeout: float = 30.0,
) -> Result:
    """Enqueue ``jobs`` at ``rate`` a second and consume them while the broker cuts every
    connection ``cuts`` times. With ``stall``, the producer's event loop is kept busy that many
    seconds as each cut begins, as a CPU-bound application's would be. An enqueue that neither
    returns nor raises within ``send_timeout`` seconds is a problem (it hung)."""
    if target.cut is None:
        raise Unavailable(f"{target.broker}: no way to cut only this run's connections here")
    run = JobRun("broker cut", target, workdir)
    async with running(SERVICE, run.env()) as service, target.app() as producer:
        sender = run.sending(producer, parallel)
        sender.timeout = send_timeout
        producing = asyncio.create_task(sender.run((Job(n=n) for n in range(jobs)), rate))
        landed = []
        # the first cut as soon as jobs flow (rabbitmqctl takes a second to land), the others
        # spread over the run
        for point in [1, *(k * jobs / cuts for k in range(1, cuts))]:
            await settle(_reached(sender, producing, point), run.progress)
            landed.append(await _cut(target, producer, sender, stall))
        await producing
        await run.all_handled()
        await run.stop(service)
        rss = service.peak_rss
        letters = await producer.dead_letters(run.queue)
    stored_anyway = len(run.done.numbers().keys() - sender.confirmed)
    notes = (
        f"cut {len(landed)} times, when {', '.join(f'{n:,}' for n in landed)} jobs were "
        f"confirmed; {sender.describe_raised()}"
        + (f" ({stored_anyway} of them stored all the same)" if sender.raised else "")
    )
    figures = {"cuts_while_sending": float(sum(0 < count < jobs for count in landed))}
    return run.result(letters, rss, notes, figures=figures)


def _reached(sender: Sender, producing: asyncio.Task[None], count: float) -> Callable[[], bool]:
    return lambda: len(sender.confirmed) >= count or producing.done()


async def _cut(target: Target, producer: App, sender: Sender, stall: float) -> int:
    """Cut the broker; return how many jobs were confirmed when the producer lost its
    connection (``rabbitmqctl`` takes a while to start, so that is not when the cut began)."""
    assert target.cut is not None
    cutting = asyncio.create_task(target.cut())
    if stall:
        await asyncio.sleep(0.05)  # the cut is under way (rabbitmqctl started, NATS killed)
        _busy(stall)
    await settle(lambda: not producer.transport.connected or cutting.done(), lambda: 0, poll=0.002)
    landed = len(sender.confirmed)
    await cutting
    return landed


def _busy(seconds: float) -> None:
    """Keep this thread, and so the event loop, busy for ``seconds``: CPU-bound work."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
