"""What ``pigeon status`` shows: the backlog of work queues as a table, once or live (``--watch``),
and the progress bar of ``pigeon dlq replay``. The commands are registered in ``pigeon.cli``.

Every number comes from ``App.backlog`` (see ``docs/backlog.md``); one the broker cannot tell
shows as ``?``, never 0. ``ready/s`` is the change of ``ready`` per second between two readings:
jobs enqueued minus jobs taken, so a positive rate is a backlog building.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.progress import Progress
from rich.table import Table

from pigeon.app import App
from pigeon.errors import ConfigurationError, PigeonError
from pigeon.transports.base import Backlog

COLUMNS = ("queue", "ready", "unacked", "dead letters", "consumers", "oldest age", "ready/s")
UNKNOWN = "?"
"""How a number the broker cannot tell is shown."""

REPLAY_BATCH = 100
"""Dead letters moved per call while ``pigeon dlq replay`` shows its progress."""


def work_queues(app: App) -> list[str]:
    """The work queues ``app`` has workers for, in registration order, each once."""
    return list(dict.fromkeys(route.subject for route in app.routes if route.kind == "worker"))


@asynccontextmanager
async def inspecting(app: App) -> AsyncIterator[App]:
    """``app`` connected to its broker with none of its handlers started, for reading backlogs;
    disconnected on leaving. Raises ``BrokerError`` when the broker cannot be reached."""
    await app.transport.connect()
    try:
        yield app
    finally:
        await app.transport.close()


@dataclass(frozen=True, slots=True)
class Reading:
    """The backlog of ``queue`` read at ``at`` (monotonic seconds), or the ``error`` that
    reading it raised."""

    queue: str
    at: float
    backlog: Backlog | None
    error: str | None = None


async def read(app: App, queues: Sequence[str]) -> list[Reading]:
    """Read each queue's backlog, one after another; a queue that fails gets its error."""
    readings = []
    for queue in queues:
        at = time.monotonic()
        try:
            readings.append(Reading(queue, at, await app.backlog(queue)))
        except PigeonError as exc:
            readings.append(Reading(queue, at, None, str(exc)))
    return readings


def ready_rate(before: Reading | None, now: Reading) -> float | None:
    """Change of ``ready`` per second from ``before`` to ``now``; ``None`` when unknown."""
    if before is None or before.backlog is None or now.backlog is None:
        return None
    first, last = before.backlog.ready, now.backlog.ready
    elapsed = now.at - before.at
    if first is None or last is None or elapsed <= 0:
        return None
    return (last - first) / elapsed


def table(readings: Sequence[Reading], before: dict[str, Reading]) -> Table:
    """The table of ``readings``; rates against the readings ``before`` (queue -> reading)."""
    view = Table(title="pigeon: work queues", title_justify="left")
    view.add_column(COLUMNS[0], no_wrap=True)
    for column in COLUMNS[1:]:
        view.add_column(column, justify="right")
    errors = []
    for reading in readings:
        backlog = reading.backlog
        if backlog is None:
            view.add_row(reading.queue, *(["[red]error"] + [""] * (len(COLUMNS) - 2)))
            errors.append(f"{reading.queue}: {reading.error}")
            continue
        view.add_row(
            reading.queue,
            _count(backlog.ready),
            _count(backlog.unacked),
            _count(backlog.dead_letters),
            _count(backlog.consumers),
            _age(backlog.oldest_age),
            _rate(ready_rate(before.get(reading.queue), reading)),
        )
    if errors:
        view.caption = "\n".join(errors)
        view.caption_justify = "left"
    return view


async def run(app: App, queues: Sequence[str], *, watch: bool, every: float, window: float) -> int:
    """``pigeon status``: connect ``app`` (its handlers not started), then ``watch`` or ``show``
    ``queues`` on the terminal. Returns the exit status."""
    console = Console()
    async with inspecting(app):
        if watch:
            await watch_live(app, queues, every, console)
        return await show(app, queues, window, console)


async def show(app: App, queues: Sequence[str], window: float, console: Console) -> int:
    """Print the table once, the rates measured over ``window`` seconds (0: no rates).

    Returns 1 if some queue could not be read (its error is under the table), else 0."""
    before: dict[str, Reading] = {}
    if window > 0:
        before = {reading.queue: reading for reading in await read(app, queues)}
        await asyncio.sleep(window)
    readings = await read(app, queues)
    console.print(table(readings, before))
    return 1 if any(reading.error for reading in readings) else 0


async def watch_live(app: App, queues: Sequence[str], every: float, console: Console) -> None:
    """Redraw the table in place every ``every`` seconds, rates since the last redraw, until
    cancelled (Ctrl-C)."""
    before: dict[str, Reading] = {}
    with Live(console=console, auto_refresh=False) as live:
        while True:
            readings = await read(app, queues)
            live.update(table(readings, before), refresh=True)
            before = {reading.queue: reading for reading in readings}
            await asyncio.sleep(every)


async def replay(app: App, queue: str, limit: int | None, console: Console | None = None) -> int:
    """Move up to ``limit`` dead letters of ``queue`` back onto it; returns how many moved.

    More than ``REPLAY_BATCH`` go ``REPLAY_BATCH`` at a time with a progress bar on ``console``
    (default: stderr, if a terminal). Letters dead-lettered again meanwhile are not replayed
    twice: it moves at most as many as there were when it began."""
    try:
        total = (await app.backlog(queue)).dead_letters
    except ConfigurationError:  # an unknown queue has no dead letters
        total = None
    if limit is not None and total is not None:
        total = min(total, limit)
    if total is None or total <= REPLAY_BATCH:
        return await app.replay_dead_letters(queue, limit)
    moved, console = 0, console or Console(stderr=True)
    with Progress(console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(f"replaying {queue}", total=total)
        while moved < total:
            step = await app.replay_dead_letters(queue, min(REPLAY_BATCH, total - moved))
            moved += step
            progress.advance(task, step)
            if step == 0:
                break
    return moved


def _count(value: int | None) -> str:
    return UNKNOWN if value is None else f"{value:,}"


def _age(seconds: float | None) -> str:
    """``seconds`` for a person: ``0s``, ``4.2s``, ``3m05s``, ``2h07m``, ``3d04h``."""
    if seconds is None:
        return UNKNOWN
    if seconds < 60:
        return "0s" if seconds < 0.05 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _rate(rate: float | None) -> str:
    return "" if rate is None else f"{rate:+.1f}"
