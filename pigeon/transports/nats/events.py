"""Publish-subscribe on NATS: core subjects (a queue group of the subject and ``group=``, see
``names.queue_group``), JetStream for ``durable=``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nats import errors as nats_errors

from pigeon.errors import BrokerError
from pigeon.message import Envelope
from pigeon.transports.base import Backlog, Handler, Subscription
from pigeon.transports.nats import backlog, wire
from pigeon.transports.nats.client import PigeonClient
from pigeon.transports.nats.consumer import PullConsumer
from pigeon.transports.nats.errors import translate
from pigeon.transports.nats.names import queue_group
from pigeon.transports.nats.recovery import Recovery

if TYPE_CHECKING:
    from pigeon.transports.nats.transport import NatsTransport


class NatsEvents:
    """``Events`` of a ``NatsTransport``."""

    def __init__(self, transport: NatsTransport) -> None:
        self._transport = transport

    async def publish(self, subject: str, envelope: Envelope) -> None:
        transport = self._transport
        client = transport.client
        body = envelope.body
        try:  # no context manager on the hot path: it costs a generator per message
            if envelope.headers or subject not in transport.sendable:
                transport.check_sendable(envelope, subject)
            if isinstance(client, PigeonClient):
                block = wire.plain_block(envelope)
                if block is not None:  # the usual event: its header block built directly
                    wire.check_block(body, block, client._max_payload)
                    if client.queue_block(subject, body, block):
                        await client.flush_queued()
                    return
            headers = wire.outgoing(envelope)
            wire.check_size(body, headers, client.max_payload)
            await client.publish(subject, body, headers=headers)
        except (nats_errors.Error, OSError) as exc:
            raise translate(exc, transport.url, f"publishing on {subject!r}") from exc

    async def subscribe(
        self,
        subject: str,
        handler: Handler,
        *,
        group: str | None,
        durable: str | None,
        concurrency: int,
        max_pending: int | None = None,
    ) -> Subscription:
        transport = self._transport
        transport.check()
        if durable is None:
            queue = queue_group(subject, group) if group else ""
            return await transport.start_core(
                subject, queue, handler, concurrency, max_pending=max_pending
            )
        # a pull consumer takes no more than its free slots: max_pending (>= concurrency) holds
        stream, consumer = await transport.declarer.events(subject, durable)

        async def redeclare() -> str:
            stream, _ = await transport.declarer.events(subject, durable)
            return stream

        return await transport.start_pull(
            PullConsumer(
                transport.client,
                transport.url,
                stream,
                consumer,
                handler,
                concurrency=concurrency,
                ack_wait=transport.ack_wait,
                recovery=Recovery(transport.api, redeclare),
            )
        )

    async def backlog(self, subject: str, durable: str) -> Backlog:
        transport = self._transport
        transport.check()
        if not transport.connected:  # fail now: retrying would show old numbers as live
            raise BrokerError(
                f"reading the backlog of durable subscription {durable!r}: disconnected from "
                f"{transport.url}, reconnecting"
            )
        return await backlog.read_durable(transport.api, transport.url, subject, durable)
