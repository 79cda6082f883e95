"""The calls under way on a transport (RabbitMQ, NATS): sends (publishes, enqueues) and, on
RabbitMQ, reads and admin calls (backlog, dead letters, replay, purge, exists), so that closing
it ends each one.

``close`` lets the calls already started get the broker's answer (a send its confirm), for up to
the transport's patience while the connection is up, then cuts the rest: each raises
``BrokerError`` saying the App closed, and what that means for it (``SEND``: it may or may not
have been stored; ``READ``: nothing was changed). A call begun once the close began raises
``BrokerError`` ("not connected") at once. A ``CancelledError`` that no one asked of the caller's
task (aiormq cancels what waits on a channel that closes) is a ``BrokerError`` too; the caller's
own cancellation propagates.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from pigeon.errors import BrokerError

CUT_PATIENCE = 2.0
"""Seconds ``settle`` waits for the calls it cut to end (a cut call ends at its next await)."""

CUT_EVERY = 0.25
"""Seconds between two cuts of a call that goes on: on Python 3.11, ``asyncio.wait_for`` (which
aiormq and pigeon use around a channel's close) can swallow a cancel."""

SEND = "it may or may not be stored: send it again"
"""What a send cut or broken by the close means for its caller (``Sends.__call__``'s
``unsure``)."""

READ = "call it again"
"""What a read cut or broken by the close means for its caller (nothing was changed)."""


class Sends:
    """Calls under way on one connection (``with sends(action): ...`` around each)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._under_way: dict[asyncio.Task[object], int] = {}
        self._cut: dict[asyncio.Task[object], int] = {}  # cut calls' tasks: cancels sent
        self._none_left = asyncio.Event()
        self._none_left.set()
        self.closing = False

    def __call__(self, action: str, unsure: str = SEND) -> Send:
        """The call ``action`` ("publishing on 'a.b'"), whose end by the close or a closing
        channel leaves its caller ``unsure`` of its effect (``SEND``, the default; ``READ``)."""
        return Send(self, action, unsure)

    async def settle(self, patience: float) -> None:
        """Stop new calls, wait up to ``patience`` seconds for those under way, cut the rest
        (again every ``CUT_EVERY`` seconds while one goes on) and wait up to ``CUT_PATIENCE``
        seconds for them to end. Never raises."""
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
        if self.closing:
            raise BrokerError.not_connected(self._url)
        task = asyncio.current_task()
        assert task is not None, "pigeon's calls run in a task"
        self._under_way[task] = self._under_way.get(task, 0) + 1
        self._none_left.clear()
        return task

    def _leave(self, task: asyncio.Task[object], cancelled: bool, call: Send) -> None:
        """``task``'s call ended (``cancelled``: by a ``CancelledError``); raise
        ``BrokerError`` for a cancellation its caller did not ask for (see the module)."""
        left = self._under_way.pop(task) - 1
        if left:
            self._under_way[task] = left
            return  # an outer call of the same task ends it (and says so)
        if not self._under_way:
            self._none_left.set()
        cuts = self._cut.pop(task, 0)
        for _ in range(cuts):
            task.uncancel()
        if not cancelled or task.cancelling():
            return  # done, or failed on its own, or its caller cancelled it too
        if cuts:
            why = f"the App closed before the broker answered; {call.unsure} once an App is running"
        else:
            why = f"the connection closed under it; {call.unsure}"
        raise BrokerError(f"{self._url}: {call.action}: {why}") from None


class Send:
    """One call under way; see ``Sends``."""

    __slots__ = ("_sends", "_task", "action", "unsure")

    def __init__(self, sends: Sends, action: str, unsure: str) -> None:
        self._sends = sends
        self.action = action
        self.unsure = unsure

    def __enter__(self) -> None:
        self._task = self._sends._enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cancelled = exc_type is not None and issubclass(exc_type, asyncio.CancelledError)
        self._sends._leave(self._task, cancelled, self)
