"""Worker crash: SIGKILL worker processes of a work pool mid-run; every job is still handled.

``pigeon run reliability.services.jobs:app --workers 3`` takes the jobs; twice, at a random point
of the run, one worker at random is killed with SIGKILL (its supervisor starts another). Jobs the
killed worker held unacked come back (RabbitMQ: at once, the connection died; NATS: after
``ack_wait``), so every job is handled at least once; the ones it had finished but not yet acked
are handled twice, and counted.
"""

from __future__ import annotations

import random
from pathlib import Path

from reliability.models import Job
from reliability.processes import Service, running
from reliability.result import Result
from reliability.scenarios.workpool import SERVICE, JobRun
from reliability.tally import settle
from reliability.targets import Target


async def worker_crash(
    target: Target,
    workdir: Path,
    *,
    jobs: int = 10_000,
    workers: int = 3,
    kills: int = 2,
    delay: float = 0.002,
    seed: int | None = None,
) -> Result:
    """Enqueue ``jobs``, serve them with ``workers`` processes, SIGKILL one ``kills`` times."""
    rng = random.Random(seed)
    run = JobRun("worker crash", target, workdir)
    points = sorted(rng.uniform(0.1, 0.7) for _ in range(kills))
    async with target.app() as producer:
        sender = run.sending(producer)
        await sender.run(Job(n=n) for n in range(jobs))
        if sender.raised:
            run.problems.append(f"enqueue failed with the broker up: {sender.describe_raised()}")
        async with running(SERVICE, run.env(delay=delay), workers=workers) as service:
            for point in points:
                await _kill_one(run, service, point * jobs, rng)
            await run.all_handled()
            await run.stop(service, "the supervisor")
            rss = service.peak_rss
        letters = await producer.dead_letters(run.queue)
    at = ", ".join(f"{point:.0%}" for point in points)
    notes = f"{workers} workers; SIGKILLed {len(service.killed)} (at {at} of the run)"
    return run.result(letters, rss, notes)


async def _kill_one(run: JobRun, service: Service, handled: float, rng: random.Random) -> None:
    """Once ``handled`` jobs are done, SIGKILL a worker; wait for its replacement."""
    await settle(lambda: run.done.handled >= handled, run.progress)
    if not service.live:
        run.problems.append(f"no worker left to kill:\n{service.log_tail()}")
        return
    service.kill(rng.choice(service.live))
    await service.wait_serving(len(service.pids) + 1)
