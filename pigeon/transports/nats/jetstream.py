"""The JetStream API as pigeon uses it: JSON requests, durable publishes, and the retries that a
server restart or a cluster fail-over make necessary."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nats import errors as nats_errors
from nats.aio.client import Client

from pigeon.errors import BrokerError
from pigeon.failures import describe
from pigeon.transports.nats import wire
from pigeon.transports.nats.errors import JetStreamError, translate

log = logging.getLogger("pigeon")

API_TIMEOUT = 5.0
"""Seconds to wait for one answer of the JetStream API or one PubAck."""

RETRY_BUDGET = 20.0
"""Seconds a request keeps being retried through a restart, a reconnect or a leader election."""

_UNAVAILABLE = 503


MISSING_AFTER = 8.0
"""Seconds no stream answers a store before pigeon declares it again: then it was deleted, not
moving to a new leader (an election after a node died takes a few seconds)."""


class Unavailable(Exception):
    """Internal: JetStream did not answer, or answered that it cannot right now; worth a retry.

    ``missing``: no stream listens on the subject (deleted, or its leader is being elected).
    """

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.missing = missing


class JetStreamApi:
    """Requests to the JetStream API over one connection.

    ``call`` returns the JSON answer of an API request, ``store`` publishes to a stream and waits
    for its PubAck. Both retry for up to ``patience`` seconds (default ``RETRY_BUDGET``) while
    JetStream is unavailable (a restart, a reconnect, a leader election), then raise
    ``BrokerError``; an error answer raises ``JetStreamError``.
    """

    def __init__(self, client: Client, url: str, patience: float = RETRY_BUDGET) -> None:
        self._client = client
        self._url = url
        self._patience = patience
        self._in_flight: set[asyncio.Task[Any]] = set()
        """Tasks waiting for an answer (no task of its own per request: enqueue runs here)."""
        self._lost: set[asyncio.Task[Any]] = set()
        """Those cancelled because the connection dropped."""

    @property
    def max_payload(self) -> int:
        """The server's ``max_payload``: the most bytes of body and headers a message takes."""
        return int(self._client.max_payload)

    def connection_lost(self) -> None:
        """The connection dropped: no answer will come to requests in flight, retry them now."""
        for task in self._in_flight - self._lost:
            self._lost.add(task)
            task.cancel()

    async def call(self, endpoint: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request to ``$JS.API.<endpoint>`` and return its JSON answer."""
        payload = json.dumps(body).encode() if body is not None else b""
        subject = f"$JS.API.{endpoint}"
        return await self._retrying(lambda: self._request(subject, payload, None), endpoint)

    async def store(
        self,
        subject: str,
        body: bytes,
        headers: dict[str, str],
        *,
        redeclare: Callable[[], Awaitable[None]],
        reserve: int = 0,
    ) -> None:
        """Publish to the stream of ``subject`` and return once it is stored (PubAck).

        When no stream answers, ``redeclare`` is called in case it was deleted. The message's
        ``Nats-Msg-Id`` makes a retry of a publish that was in fact stored a no-op. Raises
        ``MessageTooLarge``, before sending, over the server's ``max_payload`` or the largest
        header block with ``reserve`` bytes more of headers (see ``wire.check_size``).
        """
        wire.check_size(body, headers, self._client.max_payload, reserve)
        await self._retrying(
            lambda: self._request(subject, body, headers), f"storing on {subject!r}", redeclare
        )

    async def _retrying(
        self,
        attempt: Callable[[], Awaitable[dict[str, Any]]],
        doing: str,
        redeclare: Callable[[], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        missing_since: float | None = None
        for number in itertools.count():
            try:
                return await attempt()
            except Unavailable as exc:
                now = loop.time()
                if now > started + self._patience:
                    raise BrokerError(
                        f"{doing}: JetStream at {self._url} is unavailable ({exc}) for more "
                        f"than {self._patience:g}s (reconnect_patience)"
                    ) from None
                log.debug("pigeon: %s: %s; retrying", doing, describe(exc))
                missing_since = (missing_since or now) if exc.missing else None
                if redeclare and missing_since and now > missing_since + MISSING_AFTER:
                    await _quietly(redeclare)
                    missing_since = None
                await asyncio.sleep(min(0.5, 0.02 * 2**number))
        raise AssertionError("unreachable")

    async def _request(
        self, subject: str, payload: bytes, headers: dict[str, str] | None
    ) -> dict[str, Any]:
        wire.check_control_line(subject, wire.INBOX_BYTES)
        task = asyncio.current_task()
        assert task is not None
        self._in_flight.add(task)
        try:
            msg = await self._client.request(subject, payload, timeout=API_TIMEOUT, headers=headers)
        except asyncio.CancelledError:
            if task not in self._lost or task.uncancel() > 0:
                raise  # cancelled by its caller (too)
            raise Unavailable("the connection dropped") from None
        except nats_errors.NoRespondersError:
            if subject.startswith("$JS.API."):
                raise BrokerError(
                    f"{self._url} has no JetStream: start nats-server with -js (JetStream keeps "
                    "work queues and durable subscriptions)"
                ) from None
            raise Unavailable("no stream stores this subject", missing=True) from None
        except nats_errors.TimeoutError:
            raise Unavailable("no answer in time") from None
        except (nats_errors.Error, OSError) as exc:
            raise translate(exc, self._url, f"JetStream request {subject!r}") from exc
        finally:
            self._in_flight.discard(task)
            self._lost.discard(task)
        answer: dict[str, Any] = json.loads(msg.data)
        error = answer.get("error")
        if error and error.get("code") == _UNAVAILABLE:
            raise Unavailable(error.get("description", "unavailable"))
        if error:
            raise JetStreamError(error.get("description", "?"), error["code"], error["err_code"])
        return answer


async def _quietly(action: Callable[[], Awaitable[None]]) -> None:
    try:
        async with asyncio.timeout(API_TIMEOUT):
            await action()
    except (BrokerError, TimeoutError) as exc:
        log.debug("pigeon: redeclaring failed, will retry: %s", exc or "timed out")
