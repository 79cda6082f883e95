"""Request-reply on core NATS: servers share a subject in a queue group; requests go through
nats-py's multiplexed inbox, so NATS itself answers "no responders" at once.

Events and requests share NATS's subjects, so pigeon keeps them apart: a pigeon server listens on
``_PIGEON.RPC.<subject>``, where only servers listen and pigeon's requests go, and on
``<subject>`` for requests of other clients (a message there without a reply subject is a
publish, not a request: dropped). A pigeon request nobody serves under the prefix goes once to
``<subject>`` itself, for responders written without pigeon; a pigeon subscriber it reaches there
answers ``not_served``, and the caller raises ``NoResponders``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from nats import errors as nats_errors
from nats.aio.msg import Msg

from pigeon.errors import BrokerError, NoResponders, RequestTimeout
from pigeon.message import Envelope
from pigeon.transports.base import Handler, Subscription
from pigeon.transports.nats import wire
from pigeon.transports.nats.client import PigeonClient
from pigeon.transports.nats.core import CoreSubscription
from pigeon.transports.nats.errors import translate, translated
from pigeon.transports.nats.handover import RPC_PREFIX
from pigeon.transports.nats.services import count_reply
from pigeon.transports.replies import served

if TYPE_CHECKING:
    from pigeon.transports.nats.transport import NatsTransport

RPC_GROUP = "pigeon-rpc"
"""The queue group every server of a subject joins, so that replicas share its requests."""


class NatsRequests:
    """``Requests`` of a ``NatsTransport``."""

    def __init__(self, transport: NatsTransport) -> None:
        self._transport = transport
        self._waiting: set[asyncio.Task[Any]] = set()
        self._aborted: set[asyncio.Task[Any]] = set()

    def fail_all(self) -> None:
        """The connection is closing: every request still waiting fails now with
        ``BrokerError`` (nats-py would leave it waiting for its whole timeout)."""
        for task in self._waiting:
            self._aborted.add(task)
            task.cancel()

    async def serve(self, subject: str, handler: Handler, *, concurrency: int) -> Subscription:
        transport = self._transport
        transport.check()
        if transport.services is not None:
            with translated(transport.url, "starting the NATS service"):
                services = transport.services
                handler = await services.add(transport.client, subject, RPC_GROUP, handler)
        strip = len(RPC_PREFIX)
        ours = await transport.start_core(
            RPC_PREFIX + subject, RPC_GROUP, handler, concurrency, requests=True, strip=strip
        )
        try:
            theirs = await transport.start_core(
                subject, RPC_GROUP, handler, concurrency, requests=True
            )
        except BaseException:
            await ours.close(0)
            raise
        return CoreSubscriptions(ours, theirs)

    async def request(self, subject: str, envelope: Envelope, timeout: float) -> Envelope:
        transport = self._transport
        prefixed = RPC_PREFIX + subject
        transport.check(envelope, prefixed, wire.INBOX_BYTES)
        client = transport.client
        headers: dict[str, str] | None = None
        block = wire.plain_block(envelope) if isinstance(client, PigeonClient) else None
        if block is not None:  # the usual request: its header block built directly
            wire.check_block(envelope.body, block, client._max_payload)
        else:
            headers = wire.outgoing(envelope)
            wire.check_size(envelope.body, headers, client.max_payload)
        task = asyncio.current_task()
        assert task is not None
        self._waiting.add(task)
        deadline = time.monotonic() + timeout
        try:
            try:
                msg = await _request(client, prefixed, envelope.body, timeout, headers, block)
            except nats_errors.NoRespondersError:  # no pigeon server: maybe someone else's
                left = max(deadline - time.monotonic(), 0.001)
                msg = await _request(client, subject, envelope.body, left, headers, block)
        except (nats_errors.Error, OSError, TimeoutError) as exc:
            raise _request_error(exc, subject, transport.url, timeout) from exc
        except asyncio.CancelledError:
            if task not in self._aborted:
                raise
            task.uncancel()
            raise BrokerError(f"{transport.url}: connection closed") from None
        finally:
            self._waiting.discard(task)
            self._aborted.discard(task)
        reply = wire.incoming(msg.data, msg.headers, msg.reply, time.time())
        served(reply, subject, transport.url)  # it may have reached only subscribers
        reply.correlation_id = reply.correlation_id or envelope.correlation_id
        return reply

    async def reply(self, reply_to: str, envelope: Envelope) -> None:
        transport = self._transport
        transport.check(envelope, reply_to)
        client = transport.client
        body = envelope.body
        if transport.services is not None:
            count_reply(envelope)
        try:
            if isinstance(client, PigeonClient):
                block = wire.plain_block(envelope, reply=True)
                if block is not None:  # the usual reply: its header block is the same each time
                    client.check_subject(reply_to)
                    wire.check_block(body, block, client._max_payload)
                    if client.queue_block(reply_to, body, block):
                        await client.flush_queued()
                    return
            headers = wire.outgoing(envelope, reply=True)
            wire.check_size(body, headers, client.max_payload)
            await client.publish(reply_to, body, headers=headers or None)
        except (nats_errors.Error, OSError) as exc:
            raise translate(exc, transport.url, "replying") from exc


class CoreSubscriptions:
    """Several core subscriptions closed as one (an rpc server's two subjects)."""

    def __init__(self, *subscriptions: CoreSubscription) -> None:
        self._subscriptions = subscriptions

    async def close(self, timeout: float) -> None:
        await asyncio.gather(*(each.close(timeout) for each in self._subscriptions))


def _request(
    client: Any,
    subject: str,
    body: bytes,
    timeout: float,
    headers: dict[str, str] | None,
    block: bytes | None,
) -> Coroutine[Any, Any, Msg]:
    """``client``'s request, with ``headers`` or (on a ``PigeonClient``) header ``block``."""
    if block is not None:
        return client.request(subject, body, timeout, block=block)  # type: ignore[no-any-return]
    return client.request(subject, body, timeout, headers=headers)  # type: ignore[no-any-return]


def _request_error(exc: Exception, subject: str, url: str, timeout: float) -> Exception:
    if isinstance(exc, nats_errors.NoRespondersError):
        return NoResponders.for_subject(subject, url)
    if isinstance(exc, TimeoutError):
        return RequestTimeout.for_subject(subject, timeout)
    return translate(exc, url, f"requesting {subject!r}")
