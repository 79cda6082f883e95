"""Plain clients (nats-py, aio-pika) sending fuzzed messages to a pigeon service, as any other
client of the broker could: an event, a job and a request per ``BadInput``.

Each message carries ``x-fuzz-case: <i>`` so that its dead letter can be found. ``job`` returns
whether the broker stored the job (JetStream may drop one whose ``Nats-Msg-Id`` it saw already);
``request`` says how the request was answered: ``"error"`` (a pigeon error reply, which a pigeon
caller raises as ``RemoteError``), ``"reply"`` (a normal reply), ``"no reply"`` (none in time) or
``"no responders"``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Protocol

import aio_pika
import nats
from aio_pika.abc import AbstractIncomingMessage
from nats.aio.client import Client

from pigeon import headers as h
from reliability.fuzz_cases import BadInput

CASE = "x-fuzz-case"


class RawClient(Protocol):
    async def event(self, case: BadInput, number: int) -> None: ...

    async def job(self, case: BadInput, number: int) -> bool: ...

    async def request(self, case: BadInput, number: int) -> str: ...


class RawNats:
    """nats-py: core publish for events and requests, JetStream publish for jobs."""

    def __init__(self, client: Client, subject: str, queue: str, timeout: float) -> None:
        self._client = client
        self._js = client.jetstream()
        self._subject = subject
        self._queue_subject = f"pigeon.queue.{queue}"  # docs/transports/nats.md: raw enqueue
        self._timeout = timeout

    async def event(self, case: BadInput, number: int) -> None:
        await self._client.publish(
            f"{self._subject}.events", case.body, headers=_nats(case, number)
        )

    async def job(self, case: BadInput, number: int) -> bool:
        try:
            ack = await self._js.publish(
                self._queue_subject, case.body, headers=_nats(case, number)
            )
        except nats.js.errors.APIError:  # a header JetStream acts on refused it
            return False
        return not ack.duplicate

    async def request(self, case: BadInput, number: int) -> str:
        subject = f"{self._subject}.rpc"
        try:
            reply = await self._client.request(
                subject, case.body, timeout=self._timeout, headers=_nats(case, number)
            )
        except nats.errors.NoRespondersError:
            return "no responders"
        except nats.errors.TimeoutError:
            return "no reply"
        return "error" if h.ERROR_TYPE in (reply.headers or {}) else "reply"


def _nats(case: BadInput, number: int) -> dict[str, str]:
    headers = {**case.headers, CASE: str(number)}
    if case.content_type is not None:
        headers["content-type"] = case.content_type
    return headers


class RawRabbit:
    """aio-pika, confirmed: events to pigeon's topic exchange, jobs to the work queue, requests
    the tutorial way (an exclusive callback queue, ``reply_to`` and ``correlation_id``)."""

    def __init__(
        self, channel: aio_pika.abc.AbstractChannel, subject: str, queue: str, timeout: float
    ) -> None:
        self._channel = channel
        self._subject = subject
        self._queue = queue
        self._timeout = timeout
        self._replies: dict[str, asyncio.Future[AbstractIncomingMessage]] = {}
        self._callback = ""

    async def start(self) -> None:
        queue = await self._channel.declare_queue(exclusive=True)
        await queue.consume(self._on_reply, no_ack=True)
        self._callback = queue.name
        self._events = await self._channel.get_exchange("pigeon.events", ensure=False)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        future = self._replies.pop(message.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(message)

    async def event(self, case: BadInput, number: int) -> None:
        await self._events.publish(_amqp(case, number), routing_key=f"{self._subject}.events")

    async def job(self, case: BadInput, number: int) -> bool:
        message = _amqp(case, number)
        await self._channel.default_exchange.publish(message, self._queue, mandatory=True)
        return True

    async def request(self, case: BadInput, number: int) -> str:
        correlation_id = f"fuzz-{number}"
        future = asyncio.get_running_loop().create_future()
        self._replies[correlation_id] = future
        message = _amqp(case, number, correlation_id=correlation_id, reply_to=self._callback)
        await self._channel.default_exchange.publish(message, f"{self._subject}.rpc")
        try:
            async with asyncio.timeout(self._timeout):
                reply = await future
        except TimeoutError:
            self._replies.pop(correlation_id, None)
            return "no reply"
        return "error" if h.ERROR_TYPE in (reply.headers or {}) else "reply"


def _amqp(case: BadInput, number: int, **properties: Any) -> aio_pika.Message:
    options: dict[str, Any] = {
        "message_id": case.message_id,
        "correlation_id": case.correlation_id,
        **properties,
    }
    return aio_pika.Message(
        case.body,
        headers={**case.headers, CASE: str(number)},
        content_type=case.content_type,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        **options,
    )


@contextlib.asynccontextmanager
async def raw_client(
    broker: str, url: str, subject: str, queue: str, timeout: float
) -> AsyncIterator[RawClient]:
    """A plain client of ``broker`` (``nats``/``rabbitmq``) for the service of ``subject``."""
    if broker.startswith("nats"):
        client = await nats.connect(url.split(","), connect_timeout=2)
        try:
            yield RawNats(client, subject, queue, timeout)
        finally:
            await client.close()
        return
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        rabbit = RawRabbit(channel, subject, queue, timeout)
        await rabbit.start()
        yield rabbit
    finally:
        await connection.close()
