"""Correlation id -> Future: many requests in flight on one reply subscription."""

from __future__ import annotations

import asyncio

from pigeon.errors import RequestTimeout
from pigeon.message import Envelope


class ReplyMap:
    """Pending requests of one transport, keyed by correlation id."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Future[Envelope]] = {}

    async def wait(
        self, correlation_id: str, subject: str, timeout: float, deadline: float | None = None
    ) -> Envelope:
        """Wait up to ``timeout`` seconds for the reply registered with ``expect``.

        Raises ``RequestTimeout`` naming the subject and the request's whole ``deadline`` in
        seconds (default ``timeout``: what the caller asked for, not what was left).
        """
        future = self._pending[correlation_id]
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            shown = timeout if deadline is None else deadline
            raise RequestTimeout.for_subject(subject, shown) from None
        finally:
            self._pending.pop(correlation_id, None)

    def expect(self, correlation_id: str) -> None:
        """Register a request before it is sent, so a fast reply cannot be missed."""
        self._pending[correlation_id] = asyncio.get_running_loop().create_future()

    def forget(self, correlation_id: str) -> None:
        """Drop a request that could not be sent."""
        self._pending.pop(correlation_id, None)

    def resolve(self, envelope: Envelope) -> bool:
        """Hand a reply to its waiting request; ``False`` if nobody waits for it (late reply)."""
        future = self._pending.get(envelope.correlation_id or "")
        if future is None or future.done():
            return False
        future.set_result(envelope)
        return True

    def fail_all(self, error: BaseException) -> None:
        """Fail every pending request with ``error`` (the connection is gone)."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()
