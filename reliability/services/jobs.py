"""The work-pool service: ``pigeon run reliability.services.jobs:app``.

Takes ``Job``s from ``RELIABILITY_QUEUE`` with ``RELIABILITY_CONCURRENCY`` handlers at once, each
taking ``RELIABILITY_DELAY`` seconds, and writes the job's number to the done file once its work
is done (it is acked after that, so a worker killed in between runs it twice, never zero times).
A job with ``fails`` set fails that many calls first (``ALWAYS``: every call): two calls in process
(``Retry``), then two redeliveries through the broker (``Redeliver``), then the dead letters.
"""

from __future__ import annotations

import asyncio

from pigeon import Message
from reliability.models import ALWAYS, REDELIVER, RETRY, Job
from reliability.services import DoneLog, service_app, setting

app = service_app()
done = DoneLog(setting("DONE", "/dev/null"))
delay = float(setting("DELAY", "0"))


class PoisonError(Exception):
    """What a failing job raises."""


@app.worker(
    setting("QUEUE", "reliability.jobs"),
    concurrency=int(setting("CONCURRENCY", "8")),
    retry=RETRY,
    redeliver=REDELIVER,
)
async def work(job: Job, msg: Message) -> None:
    if job.fails == ALWAYS:
        raise PoisonError(f"job {job.n} always fails")
    if msg.attempt <= job.fails:
        raise PoisonError(f"job {job.n} fails on call {msg.attempt}")
    if delay:
        await asyncio.sleep(delay)
    done.write(job.n)
