"""Confirmed publishing on one channel that rides out a dropped connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq
import aiormq.exceptions as amqp
from aio_pika.abc import AbstractRobustChannel
from pamqp.commands import Basic

from pigeon.errors import BrokerError

RENEW_AFTER_NACKS = 3
"""Nacks in a row after which the publishing channel is replaced. A publish the broker nacked (a
quorum queue electing a leader) is retried until ``patience`` runs out; but a channel opened on a
node while the queue's leader was dying can stay nacked for good (seen on RabbitMQ 3.10), while
a new channel on the same node publishes at once."""

Renew = Callable[[], Awaitable[AbstractRobustChannel]]

RECONNECTING: tuple[type[BaseException], ...] = (
    amqp.ChannelInvalidStateError,
    amqp.AMQPConnectionError,
    ConnectionError,
)
"""Errors that mean the connection went away under a call: wait for it to come back, try again."""

log = logging.getLogger("pigeon")


async def underlay_of(channel: AbstractRobustChannel) -> aiormq.Channel:
    """The live aiormq channel under ``channel``, waiting (without limit: callers bound it) while
    aio-pika reconnects and reopens it."""
    while True:
        await channel.ready()
        underlay = await channel.get_underlay_channel()
        assert isinstance(underlay, aiormq.Channel)
        if not underlay.is_closed:
            return underlay
        await asyncio.sleep(0.02)  # closed, and aio-pika has not noticed yet


def is_connection_loss(exc: BaseException) -> bool:
    """Whether ``exc`` says the connection (not the operation) failed."""
    if isinstance(exc, RECONNECTING):
        return True
    # a channel closed because its connection was closed (CONNECTION_FORCED, 320), or closed
    # with no reply code at all: aiormq's own close of the channels of a connection that died
    # (a broker's channel.close always carries one)
    return type(exc) is amqp.ChannelClosed and exc.args[:1] in ((320,), (None,), ())


class Publisher:
    """Publishes on one robust channel; returns once the broker confirmed (if it confirms).

    When the connection drops under a publish, waits up to ``patience`` seconds for aio-pika to
    reconnect and publishes again. A publish caught by a dropped connection can wait forever in
    aiormq (on a full write queue whose writer is gone), and closing the channel does not wake it:
    one observer per channel cancels the publishes in flight on it when it closes, and they are
    tried again; a publish the broker nacks is tried again a few times, with
    backoff: at least once, a duplicate at worst. A message the broker returns (``mandatory``, no
    queue) raises ``aiormq.exceptions.PublishError`` to the caller.
    """

    def __init__(
        self, channel: AbstractRobustChannel, url: str, patience: float, renew: Renew | None = None
    ) -> None:
        self.channel = channel
        self._underlay: aiormq.Channel | None = None
        self._url = url
        self._patience = patience
        self._renew = renew
        self._sending: dict[asyncio.Task[Any], aiormq.Channel] = {}
        """Tasks inside a publish, and the channel each publishes on."""
        self._cut: set[asyncio.Task[Any]] = set()
        """Those cancelled because their channel closed."""

    async def publish(
        self,
        body: bytes,
        *,
        exchange: str,
        routing_key: str,
        properties: Basic.Properties,
        mandatory: bool = False,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._patience
        nacks = 0
        while True:
            try:
                underlay = self._underlay
                if underlay is None or underlay.is_closed:
                    underlay = await self._wait_reopened(deadline - loop.time())
                async with asyncio.timeout(self._patience):
                    await self._send(underlay, body, exchange, routing_key, properties, mandatory)
                return
            except TimeoutError:
                raise BrokerError(
                    f"{self._url}: the broker did not confirm the message on {routing_key!r} "
                    f"within {self._patience:g}s (reconnect_patience): is the queue available? (a "
                    "quorum queue without a majority of its nodes takes messages and confirms "
                    "none; a large body on a slow link needs a longer reconnect_patience) It may "
                    "or may not be stored: send it again"
                ) from None
            except amqp.PublishError:
                raise  # returned: no queue took it
            except amqp.DeliveryError as exc:  # nacked: a queue could not store it just now
                nacks += 1
                if loop.time() >= deadline:
                    raise BrokerError(
                        f"{self._url}: the broker refused to store the message on "
                        f"{routing_key!r} {nacks} times (nack) in {self._patience:g}s; is the "
                        "queue available? It may or may not be stored: send it again"
                    ) from exc
                if nacks % RENEW_AFTER_NACKS == 0:
                    await self._renew_channel()
                await asyncio.sleep(min(0.5, 0.05 * 2**nacks))
            except Exception as exc:
                if not is_connection_loss(exc) or loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.05)  # let aio-pika notice the loss, then wait for it

    async def _send(
        self,
        underlay: aiormq.Channel,
        body: bytes,
        exchange: str,
        routing_key: str,
        properties: Basic.Properties,
        mandatory: bool,
    ) -> None:
        """Publish on ``underlay`` and wait for the confirm; ``ConnectionError`` if the channel
        closes first."""
        task = asyncio.current_task()
        assert task is not None
        self._sending[task] = underlay
        try:
            await underlay.basic_publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                properties=properties,
                mandatory=mandatory,
                wait=False,  # the confirm says more than the socket's drain
            )
        except asyncio.CancelledError:
            if task not in self._cut or task.uncancel() > 0:
                raise  # cancelled by its caller (too)
            raise ConnectionError("the channel closed under a publish") from None
        finally:
            del self._sending[task]
            self._cut.discard(task)

    def _watch(self, underlay: aiormq.Channel) -> None:
        """Observe ``underlay``: when it closes, cancel the publishes in flight on it."""

        def closed(_: object) -> None:
            for task, channel in self._sending.items():
                if channel is underlay and task not in self._cut:
                    self._cut.add(task)
                    task.cancel()

        underlay.closing.add_done_callback(closed)

    async def _renew_channel(self) -> None:
        """Publish on a new channel from now on (see ``RENEW_AFTER_NACKS``)."""
        if self._renew is None:
            return
        try:
            channel = await asyncio.wait_for(self._renew(), 5)
        except Exception as exc:
            log.debug("pigeon: could not open a new publishing channel: %r", exc)
            return
        old, self.channel, self._underlay = self.channel, channel, None
        log.info("pigeon: %s: publishing on a new channel after repeated nacks", self._url)
        await close_quietly(old)

    async def _wait_reopened(self, patience: float) -> aiormq.Channel:
        """The live channel under ``self.channel``, observed (see ``_watch``) from now on."""
        try:
            underlay = await asyncio.wait_for(underlay_of(self.channel), max(patience, 0.01))
        except TimeoutError:
            raise BrokerError(
                f"{self._url}: connection lost and not back within {self._patience:g}s"
            ) from None
        if underlay is not self._underlay:
            self._watch(underlay)
            self._underlay = underlay
        return underlay


async def close_quietly(channel: AbstractRobustChannel) -> None:
    """Close ``channel`` if it is open; a failure is logged at DEBUG, never raised."""
    try:
        if channel.is_initialized and not channel.is_closed:
            await asyncio.wait_for(channel.close(), 5)
    except Exception:
        log.debug("pigeon: closing a channel failed", exc_info=True)
