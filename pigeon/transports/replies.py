"""Correlation id -> Future: many requests in flight on one reply subscription."""

from __future__ import annotations

import asyncio
import json

from pigeon import headers as h
from pigeon.errors import NoResponders, RequestTimeout
from pigeon.message import Envelope

NOT_SERVED = "503"
"""The error code of a reply from a receiver that is no rpc server (a worker, a subscriber) to a
request that reached it: the caller raises ``NoResponders`` (NATS's own no-responders status is
503 too)."""


NOT_A_SERVER = "it is a work queue or an event subject"
SERVER_LEFT = "its server closed before starting the request, and no other server of it runs"
"""Why a request was not served (``not_served``'s ``why``): it reached a worker or a subscriber;
its server closed holding it unstarted."""


def not_served(request: Envelope, subject: str, why: str = NOT_A_SERVER) -> Envelope:
    """The reply a worker or a subscriber sends to a request that reached it, or a closing server
    to one it never started: nobody serves ``subject`` (``why``). Its correlation id is the
    request's; it is an error reply any client reads."""
    message = f"nobody serves requests on {subject!r} ({why})"
    body = json.dumps({"error": {"type": "NoResponders", "message": message}}).encode()
    headers = {h.ERROR_TYPE: "NoResponders", h.ERROR_MESSAGE: message, h.ERROR_CODE: NOT_SERVED}
    return Envelope(body, headers, "application/json", correlation_id=request.correlation)


def is_not_served(reply: Envelope) -> bool:
    """Whether ``reply`` says the request reached no rpc server (see ``not_served``)."""
    headers = reply.headers
    return headers.get(h.ERROR_CODE) == NOT_SERVED and headers.get(h.ERROR_TYPE) == "NoResponders"


def served(reply: Envelope, subject: str, url: str) -> Envelope:
    """``reply`` itself, or ``NoResponders`` (naming ``subject`` and the masked ``url``) if it
    says the request reached no rpc server: a worker or subscriber answered it, or a closing
    server that started it nowhere (``not_served``)."""
    if is_not_served(reply):
        raise NoResponders.for_subject(subject, url)
    return reply


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
        future = self._pending.get(correlation_id)
        if future is None:  # forgotten: not expected, or already waited for
            raise KeyError(f"no request {correlation_id!r} is expected")
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
        future = self._pending.pop(correlation_id, None)
        if future is not None and future.done() and not future.cancelled():
            future.exception()  # failed by ``fail_all`` meanwhile: its caller has its own error

    def resolve(self, envelope: Envelope) -> bool:
        """Hand a reply to its waiting request; ``False`` if nobody waits for it (late reply)."""
        future = self._pending.get(envelope.correlation_id or "")
        if future is None or future.done():
            return False
        future.set_result(envelope)
        return True

    def fail_all(self, error: BaseException) -> None:
        """Fail every pending request with ``error`` (the connection is gone). Each stays
        registered until its caller waits (``wait`` raises ``error`` at once) or ``forget``s it:
        a request still being sent when this runs waits next."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
