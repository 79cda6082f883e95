"""What ``pigeon status`` shows: the backlog of work queues (and durable subscriptions, as
``subject [durable]``) as a table, once or live (``--watch``), and the progress bar of ``pigeon
dlq replay``. The commands are registered in ``pigeon.cli``.

Every number comes from ``App.backlog`` (see ``docs/backlog.md``); one the broker cannot tell
shows as ``?``, never 0. ``ready/s`` is the change of ``ready`` per second between two readings:
jobs enqueued minus jobs taken, so a positive rate is a backlog building.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console
from rich.live import Live
from rich.progress import Progress
from rich.table import Table

from pigeon.app import App
from pigeon.errors import ConfigurationError, PigeonError
from pigeon.transports.base import Backlog

COLUMNS = ("queue", "ready", "unacked", "dead letters", "consumers", "oldest age", "ready/s")
QUEUE_MIN_WIDTH = 8
"""The least width of the queue column of a table; longer names fold onto more lines."""
UNKNOWN = "?"
"""How a number the broker cannot tell is shown."""

REPLAY_BATCH = 100
"""Dead letters moved per call while ``pigeon dlq replay`` shows its progress."""


def work_queues(app: App) -> list[str]:
    """The work queues ``app`` has workers for, in registration order, each once."""
    return list(dict.fromkeys(route.subject for route in app.routes if route.kind == "worker"))


def durable_label(subject: str, durable: str) -> str:
    """How the durable subscription ``durable`` of ``subject`` is named in tables and gauges."""
    return f"{subject} [{durable}]"


def watched(app: App) -> list[str]:
    """What ``pigeon status`` and the gauges read for ``app``: its work queues, then its durable
    subscriptions as ``subject [durable]``, each in registration order, each once."""
    durables = (
        durable_label(route.subject, route.options["durable"])
        for route in app.routes
        if route.kind == "subscribe" and route.options["durable"] is not None
    )
    return [*work_queues(app), *dict.fromkeys(durables)]


async def backlog_of(app: App, name: str) -> Backlog:
    """The backlog of the work queue ``name``, or of the durable subscription it names as
    ``subject [durable]`` (subjects have no spaces, so the two cannot be confused)."""
    subject, bracket, durable = name.partition(" [")
    if bracket and durable.endswith("]"):
        return await app.backlog(subject, durable=durable[:-1])
    return await app.backlog(name)


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
            readings.append(Reading(queue, at, await backlog_of(app, queue)))
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


def rows(readings: Sequence[Reading], before: dict[str, Reading]) -> list[list[str]]:
    """The cells of ``readings``, one row per queue in ``COLUMNS`` order; rates against the
    readings ``before`` (queue -> reading). A queue that could not be read shows ``error``."""
    cells = []
    for reading in readings:
        backlog = reading.backlog
        if backlog is None:
            cells.append([reading.queue, "error", *[""] * (len(COLUMNS) - 2)])
            continue
        rate = ready_rate(before.get(reading.queue), reading)
        cells.append(
            [
                reading.queue,
                *(_count(n) for n in (backlog.ready, backlog.unacked, backlog.dead_letters)),
                _count(backlog.consumers),
                _age(backlog.oldest_age),
                _rate(rate),
            ]
        )
    return cells


def errors(readings: Sequence[Reading]) -> list[str]:
    """``queue: error`` of each reading that failed."""
    return [f"{reading.queue}: {reading.error}" for reading in readings if reading.error]


def title() -> str:
    """The title of a table read now: when it was read, so a stale one shows."""
    return f"pigeon: backlog at {datetime.now(UTC):%H:%M:%S} UTC"


def table(readings: Sequence[Reading], before: dict[str, Reading]) -> Table:
    """The table of ``readings`` for a terminal; rates against ``before`` (queue -> reading).

    Numbers are never cut: each number column is as wide as its widest cell, and a long queue
    name folds onto more lines instead."""
    cells = rows(readings, before)
    view = Table(title=title(), title_justify="left")
    view.add_column(COLUMNS[0], overflow="fold", min_width=QUEUE_MIN_WIDTH)
    for column, widest in zip(COLUMNS[1:], _number_widths(cells), strict=True):
        view.add_column(column, justify="right", overflow="fold", min_width=widest)
    for row in cells:
        view.add_row(*row, style="red" if row[1] == "error" else None)
    if errors(readings):
        view.caption = "\n".join(errors(readings))
        view.caption_justify = "left"
    return view


def fits(readings: Sequence[Reading], before: dict[str, Reading], width: int) -> bool:
    """Whether the table of ``readings`` fits in ``width`` columns with every number whole."""
    borders = 3 * len(COLUMNS) + 1
    return QUEUE_MIN_WIDTH + sum(_number_widths(rows(readings, before))) + borders <= width


def _number_widths(cells: list[list[str]]) -> list[int]:
    """The least width of each number column: its widest cell, its header's longest word."""
    return [
        max([len(row[index]) for row in cells] + [*map(len, column.split())])
        for index, column in enumerate(COLUMNS[1:], start=1)
    ]


def plain(readings: Sequence[Reading], before: dict[str, Reading]) -> str:
    """The table of ``readings`` as plain text (for a pipe or a file): a title, a header, one
    full line per queue in aligned columns, never cut, then the errors."""
    cells = [list(COLUMNS), *rows(readings, before)]
    widths = [max(len(row[index]) for row in cells) for index in range(len(COLUMNS))]
    lines = [title()]
    for row in cells:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True))
        lines.append("  ".join([first, *rest]).rstrip())
    return "\n".join([*lines, *errors(readings)])


async def run(app: App, queues: Sequence[str], *, watch: bool, every: float, window: float) -> int:
    """``pigeon status``: connect ``app`` (its handlers not started), then ``watch`` or ``show``
    ``queues`` on the terminal (plain text when stdout is not one). SIGINT and SIGTERM end a
    watch with status 0. Returns the exit status."""
    console = Console()
    async with inspecting(app):
        if watch:
            with stopping() as stop:
                await watch_live(app, queues, every, console, stop)
            return 0
        return await show(app, queues, window, console)


@contextmanager
def stopping() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while inside (where the loop can take signals)."""
    stop, loop = asyncio.Event(), asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    try:
        for number in signals:
            loop.add_signal_handler(number, stop.set)
    except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
        pass
    try:
        yield stop
    finally:
        for number in signals:
            with suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(number)


async def show(app: App, queues: Sequence[str], window: float, console: Console) -> int:
    """Print the table once, the rates measured over ``window`` seconds (0: no rates).

    Returns 1 if some queue could not be read (its error is under the table), else 0."""
    before: dict[str, Reading] = {}
    if window > 0:
        before = {reading.queue: reading for reading in await read(app, queues)}
        await asyncio.sleep(window)
    readings = await read(app, queues)
    print_readings(console, readings, before)
    return 1 if any(reading.error for reading in readings) else 0


async def watch_live(
    app: App,
    queues: Sequence[str],
    every: float,
    console: Console,
    stop: asyncio.Event | None = None,
) -> None:
    """Redraw the table in place every ``every`` seconds, rates since the last redraw, until
    ``stop`` is set or cancelled. Not on a terminal (or one too narrow for the table), each
    reading is printed below the last as plain lines."""
    stop = stop or asyncio.Event()
    before: dict[str, Reading] = {}
    live = Live(console=console, auto_refresh=False) if console.is_terminal else None
    with live or nullcontext():
        while not stop.is_set():
            readings = await read(app, queues)
            if live is not None and fits(readings, before, console.width):
                live.update(table(readings, before), refresh=True)
            else:
                print_readings(console, readings, before, gap=bool(before))
            before = {reading.queue: reading for reading in readings}
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


def print_readings(
    console: Console, readings: Sequence[Reading], before: dict[str, Reading], gap: bool = False
) -> None:
    """Print ``readings``: a table on a terminal wide enough, else plain lines (after a blank
    one if ``gap``), flushed at once for whoever reads the pipe."""
    if console.is_terminal and fits(readings, before, console.width):
        console.print(table(readings, before))
        return
    console.file.write(("\n" if gap else "") + plain(readings, before) + "\n")
    console.file.flush()


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
