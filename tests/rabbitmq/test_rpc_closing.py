"""A closing rpc server on RabbitMQ, beyond the conformance suite's cases: a free handler slot
starts no request once it closes; with other servers, what reaches it goes to them; a wildcard
server's queue and an owner-declared queue (``passive=True``, not auto-delete) are swept too; an
exact server's requests go on to a wildcard server; a server starting as the last one leaves
declares its queue again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aio_pika
import pytest

from pigeon import App, NoResponders, RemoteError
from pigeon.testing.conformance.rpc_closing import (
    SOON,
    TIMEOUT,
    Blocking,
    hold_two,
    serve_blocking,
)
from pigeon.testing.waiting import wait_for
from pigeon.transports.rabbitmq.consumer import RabbitSubscription
from pigeon.transports.rabbitmq.topology import queue_name_for
from pigeon.transports.rabbitmq.transport import RabbitMQTransport
from tests.conftest import MakeApp


def _waiting(
    channel: aio_pika.abc.AbstractChannel, queue: str, count: int
) -> Callable[[], Awaitable[bool]]:
    """Whether ``count`` messages are ready in ``queue`` (a passive declaration's count)."""

    async def ready() -> bool:
        ok = await channel.declare_queue(queue, passive=True)
        return ok.declaration_result.message_count == count

    return ready


async def _started_closing(server: App) -> asyncio.Task[None]:
    """Start closing ``server``; return once its subscriptions are closing."""
    closing = asyncio.create_task(server.close())
    await wait_for(lambda: not server.ready, SOON, "the server to start closing")
    return closing


async def _one_request_during_the_drain_fails_at_once(
    server: App,
    client: App,
    uid: str,
    handler: Blocking,
    before_asking: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Request 1 starts on ``server``, which then starts closing; request 2 (sent after
    ``before_asking``) raises ``NoResponders`` at once; request 1, released, is answered and
    the close ends."""
    first = asyncio.create_task(client.request(f"{uid}.ask", 1, timeout=TIMEOUT))
    await wait_for(lambda: handler.started == [1], SOON, "the first handler to start")
    closing = await _started_closing(server)
    if before_asking is not None:
        await before_asking()
    with pytest.raises(NoResponders):
        async with asyncio.timeout(SOON):
            await client.request(f"{uid}.ask", 2, timeout=TIMEOUT)
    handler.release.set()
    async with asyncio.timeout(SOON):
        assert await first == 1
        await closing


async def test_a_closing_server_starts_no_request_in_a_free_slot(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(shutdown_timeout=60), make_app()
    handler = Blocking()
    serve_blocking(server, f"{uid}.ask", handler, concurrency=2)
    async with client:
        await server.start()
        await _one_request_during_the_drain_fails_at_once(server, client, uid, handler)
    assert handler.started == [1]


async def test_requests_reaching_a_closing_server_go_to_the_other_one(
    make_app: MakeApp, uid: str
) -> None:
    closing_server, other, client = make_app(shutdown_timeout=60), make_app(), make_app()
    blocked, answering = Blocking(), Blocking()
    answering.release.set()
    serve_blocking(closing_server, f"{uid}.ask", blocked, concurrency=4)
    serve_blocking(other, f"{uid}.ask", answering, concurrency=4)
    async with client, other:
        await closing_server.start()
        first = asyncio.create_task(client.request(f"{uid}.ask", 0, timeout=TIMEOUT))
        await wait_for(lambda: bool(blocked.started) or bool(answering.started), SOON)
        closing = await _started_closing(closing_server)
        async with asyncio.timeout(SOON):
            answers = await asyncio.gather(
                *(client.request(f"{uid}.ask", n, timeout=TIMEOUT) for n in range(1, 9))
            )
        blocked.release.set()
        async with asyncio.timeout(SOON):
            assert await first == 0
            await closing
    assert answers == list(range(1, 9))
    assert set(blocked.started) <= {0}
    assert sorted(answering.started) == sorted(set(range(9)) - set(blocked.started))


async def test_a_closing_wildcard_server_answers_what_it_holds_no_responders(
    make_app: MakeApp, uid: str, raw: aio_pika.abc.AbstractConnection
) -> None:
    channel = await raw.channel()
    server, client = make_app(shutdown_timeout=0.2), make_app()
    handler = Blocking()
    serve_blocking(server, f"{uid}.*", handler)
    async with client:
        await server.start()
        first, held = await hold_two(client, f"{uid}.ask", handler)
        await wait_for(_waiting(channel, queue_name_for(f"{uid}.*"), 2), SOON, "the requests")
        await server.close()
        async with asyncio.timeout(SOON):
            outcomes = await asyncio.gather(first, *held, return_exceptions=True)
    assert handler.started == [1]
    assert isinstance(outcomes[0], RemoteError)
    assert outcomes[0].type == "ServerStopped"
    assert [type(each) for each in outcomes[1:]] == [NoResponders, NoResponders]


async def test_a_closing_server_of_an_owner_declared_queue_answers_what_waits_in_it(
    make_app: MakeApp, uid: str, raw: aio_pika.abc.AbstractConnection
) -> None:
    channel = await raw.channel()
    queue = await channel.declare_queue(f"{uid}.ask")  # as the RPC tutorial's server does
    server, client = make_app(shutdown_timeout=0.2, passive=True), make_app()
    handler = Blocking()
    serve_blocking(server, f"{uid}.ask", handler)
    try:
        async with client:
            await server.start()
            first, held = await hold_two(client, f"{uid}.ask", handler)
            await wait_for(_waiting(channel, f"{uid}.ask", 2), SOON, "the requests in the queue")
            await server.close()
            async with asyncio.timeout(SOON):
                outcomes = await asyncio.gather(first, *held, return_exceptions=True)
    finally:
        await queue.delete(if_unused=False, if_empty=False)
    assert handler.started == [1]
    assert isinstance(outcomes[0], RemoteError)
    assert outcomes[0].type == "ServerStopped"
    assert [type(each) for each in outcomes[1:]] == [NoResponders, NoResponders]


async def test_a_closing_exact_server_hands_its_requests_to_a_wildcard_server(
    make_app: MakeApp, uid: str, raw: aio_pika.abc.AbstractConnection
) -> None:
    channel = await raw.channel()
    exact, wildcard, client = make_app(shutdown_timeout=60), make_app(), make_app()
    blocked, answering = Blocking(), Blocking()
    answering.release.set()
    serve_blocking(exact, f"{uid}.ask", blocked)
    serve_blocking(wildcard, f"{uid}.*", answering)
    async with client, wildcard:
        await exact.start()
        first = asyncio.create_task(client.request(f"{uid}.ask", 1, timeout=TIMEOUT))
        await wait_for(lambda: blocked.started == [1], SOON, "the first handler to start")
        held = [
            asyncio.create_task(client.request(f"{uid}.ask", n, timeout=TIMEOUT)) for n in (2, 3)
        ]
        await wait_for(_waiting(channel, f"{uid}.ask", 2), SOON, "the requests in the queue")
        closing = await _started_closing(exact)
        async with asyncio.timeout(SOON):
            assert await asyncio.gather(*held) == [2, 3]
            assert await client.request(f"{uid}.ask", 4, timeout=TIMEOUT) == 4
        blocked.release.set()
        async with asyncio.timeout(SOON):
            assert await first == 1
            await closing
    assert blocked.started == [1]
    assert sorted(answering.started) == [2, 3, 4]


def _subscription(app: App) -> RabbitSubscription:
    transport = app.transport
    assert isinstance(transport, RabbitMQTransport)
    (subscription,) = transport._subscriptions
    return subscription


async def test_a_request_reaching_an_owner_declared_queue_during_the_drain_is_answered(
    make_app: MakeApp, uid: str, raw: aio_pika.abc.AbstractConnection
) -> None:
    channel = await raw.channel()
    queue = await channel.declare_queue(f"{uid}.ask", durable=True)  # not auto-delete: it stays
    server, client = make_app(shutdown_timeout=60, passive=True), make_app()
    handler = Blocking()
    serve_blocking(server, f"{uid}.ask", handler)
    try:
        async with client:
            await server.start()

            async def consumer_cancelled() -> None:
                subscription = _subscription(server)
                await wait_for(lambda: not subscription._consuming, SOON, "its consumer's cancel")

            await _one_request_during_the_drain_fails_at_once(
                server, client, uid, handler, consumer_cancelled
            )
    finally:
        await queue.delete(if_unused=False, if_empty=False)
    assert handler.started == [1]


async def test_a_server_starting_as_the_last_one_leaves_declares_its_queue_again(
    make_app: MakeApp,
    uid: str,
    raw: aio_pika.abc.AbstractConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    channel = await raw.channel()
    leaving = await channel.declare_queue(f"{uid}.ask", auto_delete=True)  # as a server's

    async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        await message.nack()

    tag = await leaving.consume(ignore)
    consume = RabbitSubscription._consume

    went = asyncio.Event()

    async def consume_once_it_went(subscription: RabbitSubscription) -> None:
        if not went.is_set():  # between the server's declare and its consume
            went.set()
            await leaving.cancel(tag)  # the last consumer: the queue goes with it
        await consume(subscription)

    monkeypatch.setattr(RabbitSubscription, "_consume", consume_once_it_went)
    server, client = make_app(), make_app()
    handler = Blocking()
    handler.release.set()
    serve_blocking(server, f"{uid}.ask", handler)
    async with client, server:
        async with asyncio.timeout(SOON):
            assert await client.request(f"{uid}.ask", 5, timeout=TIMEOUT) == 5
