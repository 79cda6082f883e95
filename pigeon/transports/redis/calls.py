"""The calls (sends, reads, admin calls) under way on a Redis transport, so that closing it ends
each one before its connections close.

A call begun once the close began raises ``BrokerError`` ("not connected") at once. ``close``
lets the calls already started get Redis's answer, for up to the transport's patience while it
is connected (none when it is not: no answer will come), then cuts the rest: each raises
``BrokerError`` saying the App closed, and what that means for it (a send may or may not be
stored). Only then does the transport close its connections: a command that was still waiting
for one from the pool would otherwise open a new one, which nothing ever closes. The caller's
own cancellation propagates as ever.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from pigeon.errors import BrokerError

CUT_PATIENCE = 2.0
"""Seconds ``settle`` waits for the calls it cut to end (a cut call ends at its next await)."""

CUT_EVERY = 0.25
"""Seconds between two cuts of a call that goes on: on Python 3.11, ``asyncio.wait_for`` (which
redis-py uses around socket writes) can swallow a cancel."""

SEND = "it may or may not be stored: send it again once an App is running"
"""What a cut send means for its caller (``Calls.__call__``'s ``unsure``)."""

READ = "call it again once an App is running"
"""What a cut read means for its caller (nothing was changed)."""


class Calls:
    """Calls under way on one transport (``with calls(action): ...`` around each)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._under_way: dict[asyncio.Task[object], int] = {}
        self._cut: dict[asyncio.Task[object], int] = {}  # cut calls' tasks: cancels sent
        self._none_left = asyncio.Event()
        self._none_left.set()
        self.closing = False

    def __call__(self, action: str, unsure: str = READ) -> Call:
        """The call ``action`` (what a cut one says: "publishing on 'a.b'"), whose cut leaves
        its caller ``unsure`` of its effect (``SEND``; default ``READ``)."""
        return Call(self, action, unsure)

    def check(self) -> None:
        """``BrokerError`` ("not connected") once the close has begun."""
        if self.closing:
            raise BrokerError.not_connected(self._url)

    async def settle(self, patience: float) -> None:
        """Stop new calls, wait up to ``patience`` seconds for those under way, cut the rest
        and wait (up to ``CUT_PATIENCE``) for them to end. Never raises."""
        self.closing = True
        if await self._wait_none_left(patience):
            return
        deadline = asyncio.get_running_loop().time() + CUT_PATIENCE
        while self._under_way and asyncio.get_running_loop().time() < deadline:
            for task in self._under_way:
                self._cut[task] = self._cut.get(task, 0) + 1
                task.cancel()
            await self._wait_none_left(CUT_EVERY)

    async def _wait_none_left(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(max(seconds, 0)):
                await self._none_left.wait()
        except TimeoutError:
            return False
        return True

    def _enter(self) -> asyncio.Task[object]:
        self.check()
        task = asyncio.current_task()
        assert task is not None, "pigeon's calls run in a task"
        self._under_way[task] = self._under_way.get(task, 0) + 1
        self._none_left.clear()
        return task

    def _leave(self, task: asyncio.Task[object], cancelled: bool, call: Call) -> None:
        """``task``'s call ended (``cancelled``: by a ``CancelledError``); raise
        ``BrokerError`` if the close cut it and its caller did not cancel it too."""
        left = self._under_way.pop(task) - 1
        if left:
            self._under_way[task] = left
            return  # an outer call of the same task ends it (and says so)
        if not self._under_way:
            self._none_left.set()
        cuts = self._cut.pop(task, 0)
        if cuts:
            for _ in range(cuts - 1):
                task.uncancel()
            if task.uncancel() == 0 and cancelled:
                raise BrokerError(
                    f"{self._url}: {call.action}: the App closed before Redis answered; "
                    f"{call.unsure}"
                ) from None


class Call:
    """One call under way; see ``Calls``."""

    __slots__ = ("_calls", "_task", "action", "unsure")

    def __init__(self, calls: Calls, action: str, unsure: str) -> None:
        self._calls = calls
        self.action = action
        self.unsure = unsure

    def __enter__(self) -> None:
        self._task = self._calls._enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cancelled = exc_type is not None and issubclass(exc_type, asyncio.CancelledError)
        self._calls._leave(self._task, cancelled, self)
