"""The sends (publishes, enqueues) under way on a transport (RabbitMQ, NATS), so that closing it
ends each one.

``close`` lets the sends already started get their confirms, for up to the transport's patience
while the connection is up, then cuts the rest: each raises ``BrokerError`` saying the App closed
(it may or may not have been stored). A send begun once the close began raises at once. A
``CancelledError`` that no one asked of the caller's task (aiormq cancels what waits on a
channel that closes) is a ``BrokerError`` too; the caller's own cancellation propagates.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from pigeon.errors import BrokerError

CUT_PATIENCE = 2.0
"""Seconds ``settle`` waits for the sends it cut to end (a cut send ends at its next await)."""


class Sends:
    """Sends under way on one connection (``with sends(action): ...`` around each)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._under_way: dict[asyncio.Task[object], int] = {}
        self._cut: set[asyncio.Task[object]] = set()
        self._none_left = asyncio.Event()
        self._none_left.set()
        self.closing = False

    def __call__(self, action: str) -> Send:
        return Send(self, action)

    async def settle(self, patience: float) -> None:
        """Stop new sends, wait up to ``patience`` seconds for those under way, cut the rest
        and wait (up to ``CUT_PATIENCE``) for them to end. Never raises."""
        self.closing = True
        if not await self._wait_none_left(patience):
            for task in self._under_way:
                if task not in self._cut:
                    self._cut.add(task)
                    task.cancel()
            await self._wait_none_left(CUT_PATIENCE)

    async def _wait_none_left(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(max(seconds, 0)):
                await self._none_left.wait()
        except TimeoutError:
            return False
        return True

    def _enter(self, action: str) -> asyncio.Task[object]:
        if self.closing:
            raise BrokerError.not_connected(self._url)
        task = asyncio.current_task()
        assert task is not None
        self._under_way[task] = self._under_way.get(task, 0) + 1
        self._none_left.clear()
        return task

    def _leave(self, task: asyncio.Task[object], cancelled: bool, action: str) -> None:
        """``task``'s send ended (``cancelled``: by a ``CancelledError``); raise
        ``BrokerError`` for a cancellation its caller did not ask for (see the module)."""
        left = self._under_way.pop(task) - 1
        if left:
            self._under_way[task] = left
        elif not self._under_way:
            self._none_left.set()
        ours = task in self._cut
        if ours:
            self._cut.discard(task)
            if task.uncancel() == 0 and cancelled:
                raise BrokerError(
                    f"{self._url}: {action}: the App closed before the broker confirmed it; it "
                    "may or may not be stored: send it again once an App is running"
                ) from None
        if cancelled and not ours and not task.cancelling():
            raise BrokerError(
                f"{self._url}: {action}: the connection closed under it; it may or may not be "
                "stored: send it again"
            ) from None


class Send:
    """One send under way; see ``Sends``."""

    __slots__ = ("_action", "_sends", "_task")

    def __init__(self, sends: Sends, action: str) -> None:
        self._sends = sends
        self._action = action

    def __enter__(self) -> None:
        self._task = self._sends._enter(self._action)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cancelled = exc_type is not None and issubclass(exc_type, asyncio.CancelledError)
        self._sends._leave(self._task, cancelled, self._action)
