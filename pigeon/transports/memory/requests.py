"""Request-reply on the memory broker: a queue per served subject, one inbox per transport."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from pigeon.errors import NoResponders
from pigeon.message import Envelope
from pigeon.transports.base import Handler
from pigeon.transports.memory.consumer import MemorySubscription
from pigeon.transports.memory.topology import Item
from pigeon.transports.replies import SERVER_LEFT, not_served, served

if TYPE_CHECKING:
    from pigeon.transports.memory.transport import MemoryTransport

INBOX_PREFIX = "_INBOX."


class MemoryRequests:
    """``Requests`` of a ``MemoryTransport``; replies reach the requester's ``ReplyMap``."""

    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport

    async def serve(
        self, subject: str, handler: Handler, *, concurrency: int
    ) -> MemorySubscription:
        transport = self._transport
        transport.check()
        queue = transport.broker.rpc_queue(subject)
        return transport.start(queue, handler, concurrency, hand_on=self._hand_on)

    async def request(self, subject: str, envelope: Envelope, timeout: float) -> Envelope:
        transport = self._transport
        transport.check(envelope)
        servers = transport.broker.servers(subject)
        if not servers:
            raise NoResponders.for_subject(subject, transport.url)
        envelope = replace(envelope, reply_to=transport.inbox)
        transport.replies.expect(envelope.correlation)
        servers[0].put(Item(envelope, subject))
        reply = await transport.replies.wait(envelope.correlation, subject, timeout)
        return served(reply, subject, transport.url)

    async def reply(self, reply_to: str, envelope: Envelope) -> None:
        self._transport.check(envelope)
        replies = self._transport.broker.inboxes.get(reply_to)
        if replies is not None:
            replies.resolve(envelope)

    def _hand_on(self, item: Item) -> None:
        """A request a closing server never started: to another server of its subject, else
        answered "not served" (its caller raises ``NoResponders``)."""
        broker, request = self._transport.broker, item.envelope
        servers = broker.servers(item.subject)
        if servers:
            servers[0].put(Item(request, item.subject))
            return
        replies = broker.inboxes.get(request.reply_to or "")
        if replies is not None:
            replies.resolve(not_served(request, item.subject, SERVER_LEFT))
