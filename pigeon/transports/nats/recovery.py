"""A pull consumer's stream and consumer, made again when the server no longer has them.

A server restarted without its JetStream store (a container without its volume, a replaced
machine), or an operator's ``nats consumer rm``, leaves a pull consumer asking for messages of a
consumer that is not there: the server answers 503, or (before 2.10) nothing at all, and the
subscription would receive nothing, for good, while its App looked ready. Each pull consumer of
pigeon's checks every ``CHECK_EVERY`` seconds, and at once on a 503, that its consumer exists,
and declares both again (as its subscription did at start) if not. What the server lost is lost;
what is published from then on is kept again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pigeon.transports.nats.errors import CONSUMER_NOT_FOUND, STREAM_NOT_FOUND, JetStreamError
from pigeon.transports.nats.jetstream import JetStreamApi

CHECK_EVERY = 5.0
"""Seconds between two checks of a consumer that the server may have lost."""


@dataclass(frozen=True)
class Recovery:
    """How a pull consumer finds its consumer gone and declares it again.

    ``redeclare()`` declares the stream and the consumer as the subscription did at its start
    and returns the stream's name (the same one, unless the stream the consumer was made on was
    someone else's and is gone: pigeon then makes its own).
    """

    api: JetStreamApi
    redeclare: Callable[[], Awaitable[str]]

    async def missing(self, stream: str, consumer: str) -> bool:
        """Whether ``consumer`` of ``stream``, or the stream, is gone; raises ``JetStreamError``
        for any other answer (``BrokerError`` if none comes)."""
        try:
            await self.api.call(f"CONSUMER.INFO.{stream}.{consumer}")
        except JetStreamError as exc:
            if exc.err_code in (CONSUMER_NOT_FOUND, STREAM_NOT_FOUND):
                return True
            raise
        return False
