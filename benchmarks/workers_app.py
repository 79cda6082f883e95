"""The App ``benchmarks.scaling_workers`` serves with ``pigeon run --workers N``: a work pool
whose jobs each take ``PIGEON_BENCH_JOB_CPU_US`` microseconds of CPU (default 300), then say
so on ``scaling.done``. Its URL comes from ``--url``."""

from __future__ import annotations

import os
import time

from pydantic import BaseModel

from pigeon import App

QUEUE = "scaling.jobs"
DONE = "scaling.done"
CPU_SECONDS = int(os.environ.get("PIGEON_BENCH_JOB_CPU_US", "300")) / 1e6


class Tick(BaseModel):
    symbol: str
    price: float
    volume: int


app = App()


@app.worker(QUEUE, concurrency=16)
async def work(tick: Tick) -> None:
    end = time.process_time() + CPU_SECONDS
    while time.process_time() < end:  # CPU-bound work: what more processes are for
        pass
    await app.publish(DONE, tick.volume)
