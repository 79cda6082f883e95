"""Counting what a scenario sent and what its services handled, and waiting for the two to meet.

Every wait here stops by itself: ``settle`` gives up once nothing has moved for ``stall`` seconds,
and the scenario then reports what is missing instead of hanging.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from pigeon import App, Message, PigeonError

SEND_TIMEOUT = 60.0
"""A send that has neither returned nor raised after this long counts as hung: well past the
20 s a NATS enqueue retries through a restart, and RabbitMQ's ``reconnect_patience``
(``RABBITMQ_OPTIONS``)."""


def unique_name(scenario: str) -> str:
    """A queue or subject prefix of one run: ``rel<hex>.<scenario>``."""
    return f"rel{uuid.uuid4().hex[:10]}.{scenario}"


class DoneFile:
    """The done file the services append to, read incrementally: ``counts`` of each line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: Counter[str] = Counter()
        self._offset = 0
        self._partial = b""

    def poll(self) -> Counter[str]:
        """Read what was appended since the last call; return every line's count so far."""
        try:
            with self.path.open("rb") as file:
                file.seek(self._offset)
                chunk = file.read()
        except FileNotFoundError:
            return self.counts
        self._offset += len(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        self.counts.update(line.decode() for line in lines)
        return self.counts

    def numbers(self) -> Counter[int]:
        """The counts of lines that are job numbers (the jobs service's lines)."""
        return Counter({int(line): count for line, count in self.poll().items()})

    @property
    def handled(self) -> int:
        """Distinct lines so far."""
        return len(self.poll())

    @property
    def duplicates(self) -> int:
        """Lines written more than once, counted once per extra time."""
        return sum(count - 1 for count in self.poll().values())


class Sender:
    """Sends with up to ``parallel`` calls in flight; records which returned and which raised.

    A call that returned is *confirmed* (the broker stored or accepted it); one that raised a
    ``PigeonError`` is counted by error type; anything else, or a call that hangs, is a problem.
    """

    def __init__(
        self,
        send: Callable[[Any], Awaitable[None]],
        parallel: int = 64,
        timeout: float = SEND_TIMEOUT,
    ) -> None:
        self._send = send
        self._parallel = parallel
        self.timeout = timeout
        self.confirmed: set[int] = set()
        self.raised: Counter[str] = Counter()
        self.problems: list[str] = []

    @classmethod
    def enqueuing(cls, app: App, queue: str, parallel: int = 64) -> Sender:
        """A sender of jobs (anything with ``.n``) to the work queue ``queue``."""

        async def send(job: Any) -> None:
            await app.enqueue(queue, job)

        return cls(send, parallel)

    async def run(self, items: Iterable[Any], rate: float | None = None) -> None:
        """Send every item (each with an ``n``), ``parallel`` at a time, and with ``rate`` no
        more than that many a second (steady traffic rather than one burst)."""
        pending = enumerate(items)
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def lane() -> None:
            for index, item in pending:
                if rate is not None:
                    await asyncio.sleep(started + index / rate - loop.time())
                await self._one(item)

        await asyncio.gather(*(lane() for _ in range(self._parallel)))

    async def _one(self, item: Any) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self._send(item)
        except PigeonError as exc:
            self.raised[type(exc).__name__] += 1
        except TimeoutError:
            self.problems.append(f"sending {item.n} neither returned nor raised in {self.timeout}s")
        except Exception as exc:
            self.problems.append(f"sending {item.n} raised {type(exc).__name__}: {exc}")
        else:
            self.confirmed.add(item.n)

    def describe_raised(self) -> str:
        if not self.raised:
            return "no send raised"
        kinds = ", ".join(f"{count} {name}" for name, count in self.raised.most_common())
        return f"sends that raised: {kinds}"


async def settle(
    done: Callable[[], bool | Awaitable[bool]],
    progress: Callable[[], object],
    *,
    stall: float = 20.0,
    poll: float = 0.05,
) -> bool:
    """Wait until ``done()`` (a function or a coroutine function); give up once ``progress()``
    has not changed for ``stall`` seconds. Returns whether ``done()`` held."""
    last, since = progress(), time.monotonic()
    while not await _holds(done):
        await asyncio.sleep(poll)
        now = progress()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > stall:
            return await _holds(done)
    return True


async def _holds(condition: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = condition()
    return result if isinstance(result, bool) else await result


async def settled_dead_letters(app: App, queue: str, expected: int) -> list[Message]:
    """The dead letters of ``queue`` once there are ``expected`` of them, or they stop coming."""
    letters: list[Message] = []

    async def enough() -> bool:
        nonlocal letters
        letters = await app.dead_letters(queue)
        return len(letters) >= expected

    await settle(enough, lambda: len(letters), poll=0.3)
    return letters


class Stopwatch:
    """Seconds since it was made."""

    def __init__(self) -> None:
        self._started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._started
