"""Slow consumer: a large backlog builds up for a worker that handles ``rate`` jobs a second.

A ``pigeon run`` worker handling ``rate`` jobs a second (``concurrency`` handlers, each sleeping
``concurrency / rate`` s) first handles ``warmup`` jobs: its peak resident set then is the
baseline. Then ``backlog`` jobs are enqueued, far faster than it handles them, and once it has
handled ``slow_jobs`` more its peak resident set is read again. A worker takes no more jobs from
the broker than it has free slots, so the backlog waits on the broker and the two figures are
close. Then the worker is stopped (SIGTERM) and one without the delay handles the rest: nothing
is lost across the stop.
"""

from __future__ import annotations

from pathlib import Path

from reliability.models import Job
from reliability.processes import running
from reliability.result import MIB, Result
from reliability.scenarios.workpool import SERVICE, JobRun
from reliability.tally import Stopwatch, settle
from reliability.targets import Target


async def slow_consumer(
    target: Target,
    workdir: Path,
    *,
    backlog: int = 100_000,
    rate: float = 100.0,
    slow_jobs: int = 1_000,
    warmup: int = 50,
    concurrency: int = 8,
    body: int = 1024,
) -> Result:
    """Build a backlog of ``backlog`` jobs of ``body`` bytes for a worker handling ``rate``/s;
    measure its memory; stop it; handle the rest at full speed."""
    run = JobRun("slow consumer", target, workdir)
    pad = "x" * body
    async with target.app() as producer:
        sender = run.sending(producer)
        slow_env = run.env(delay=concurrency / rate, concurrency=concurrency)
        async with running(SERVICE, slow_env) as slow:
            await sender.run(Job(n=n, pad=pad) for n in range(warmup))
            await settle(lambda: run.done.handled >= warmup, run.progress)
            baseline = slow.peak_rss or 0
            await sender.run(Job(n=n, pad=pad) for n in range(warmup, warmup + backlog))
            waiting = len(sender.confirmed) - run.done.handled
            started, goal = Stopwatch(), run.done.handled + slow_jobs
            await settle(lambda: run.done.handled >= goal, run.progress)
            slow_rate, peak = slow_jobs / started.seconds, slow.peak_rss or 0
            await run.stop(slow, "the slow worker")
        async with running(SERVICE, run.env(concurrency=64)) as fast:
            await run.all_handled()
            await run.stop(fast, "the restarted worker")
        letters = await producer.dead_letters(run.queue)
    notes = (
        f"{waiting:,} jobs ({waiting * (body + 30) / MIB:.0f} MiB) waiting for a worker handling "
        f"{slow_rate:.0f}/s; its peak RSS {baseline / MIB:.1f} MiB before the backlog, "
        f"{peak / MIB:.1f} MiB with it; stopped, restarted, the rest handled"
    )
    figures = {"baseline_rss": baseline, "waiting": waiting, "slow_rate": slow_rate}
    return run.result(letters, peak, notes, figures=figures)
