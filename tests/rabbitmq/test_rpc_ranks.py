"""RabbitMQ rpc servers of overlapping wildcard subjects (``transports/rabbitmq/ranks.py``):
beyond the conformance suite's ``test_of_servers_whose_subjects_overlap_the_most_specific_answers``,
a closing server passes what it holds on to the next most specific one, and servers of an older
pigeon (their queue bound to ``pigeon.rpc`` itself) still work beside new ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest

from pigeon import App, Message, NoResponders, RemoteError
from pigeon.testing.conformance.rpc_closing import SOON, Blocking, hold_two, serve_blocking
from pigeon.testing.waiting import wait_for
from pigeon.transports.rabbitmq import wire
from pigeon.transports.rabbitmq.topology import queue_name_for
from pigeon.transports.rabbitmq.transport import RabbitMQTransport
from tests.conftest import MakeApp

REQUESTS = 10


def _count(app: App, subject: str) -> list[str]:
    """Serve ``subject`` on ``app``; the subjects of the requests it got."""
    got: list[str] = []

    @app.rpc(subject)
    async def answer(n: int, message: Message) -> int:
        got.append(message.subject)
        return n

    return got


async def _old_server(
    channel: aio_pika.abc.AbstractChannel, app: App, pattern: str
) -> AsyncIterator[list[str]]:
    """A server of ``pattern`` as pigeon before ranks: its queue bound to the rpc exchange
    itself; it echoes each request's body, and yields the subjects of those it got."""
    transport = app.transport
    assert isinstance(transport, RabbitMQTransport)
    exchange = transport.topology.rpc_exchange
    await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(queue_name_for(pattern), auto_delete=True)
    await queue.bind(exchange, wire.binding_key(pattern))
    got: list[str] = []

    async def on_request(request: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with request.process():
            got.append(request.routing_key or "")
            reply = aio_pika.Message(
                request.body,
                content_type="application/json",
                correlation_id=request.correlation_id,
            )
            await channel.default_exchange.publish(reply, request.reply_to or "")

    tag = await queue.consume(on_request)
    try:
        yield got
    finally:
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)


async def test_a_closing_wildcard_server_passes_what_it_holds_to_the_next_most_specific(
    make_app: MakeApp, uid: str, raw: aio_pika.abc.AbstractConnection
) -> None:
    """Held requests of ``X.*`` go on to ``X.>`` (before: answered ``NoResponders``)."""
    channel = await raw.channel()
    closing, staying, client = make_app(shutdown_timeout=0.2), make_app(), make_app()
    handler = Blocking()
    serve_blocking(closing, f"{uid}.*", handler)
    got = _count(staying, f"{uid}.>")
    async with client, staying:
        await closing.start()
        first, held = await hold_two(client, f"{uid}.ask", handler)

        async def both_waiting() -> bool:
            ok = await channel.declare_queue(queue_name_for(f"{uid}.*"), passive=True)
            return ok.declaration_result.message_count == 2

        await wait_for(both_waiting, SOON, "the requests in the queue")
        await closing.close()
        async with asyncio.timeout(SOON):
            outcomes = await asyncio.gather(first, *held, return_exceptions=True)
    assert isinstance(outcomes[0], RemoteError)
    assert outcomes[0].type == "ServerStopped"
    assert outcomes[1:] == [2, 3]
    assert got == [f"{uid}.ask"] * 2


async def test_a_new_server_takes_the_old_binding_off_the_queue_it_shares(
    make_app: MakeApp, uid: str, raw: aio_pika.abc.AbstractConnection
) -> None:
    """An old and a new server of ``X.>`` share a queue; its old binding would give it a copy
    of each request a more specific server (``X.*``) takes. The new server removes it."""
    channel = await raw.channel()
    general, specific, client = make_app(), make_app(), make_app()
    on_general = _count(general, f"{uid}.>")
    on_specific = _count(specific, f"{uid}.*")
    old = _old_server(channel, general, f"{uid}.>")
    on_old = await anext(old)
    try:
        async with general, specific, client:
            for n in range(REQUESTS):
                assert await client.request(f"{uid}.a", n) == n
    finally:
        await old.aclose()
    assert on_specific == [f"{uid}.a"] * REQUESTS
    assert on_general == on_old == []


async def test_a_new_caller_reaches_an_old_server(
    make_app: MakeApp, uid: str, raw: aio_pika.abc.AbstractConnection
) -> None:
    """During a rolling upgrade an old server of ``X.>`` (its queue bound to the rpc exchange)
    still answers the requests only it matches, beside a new server of ``X.*``."""
    channel = await raw.channel()
    new, client = make_app(), make_app()
    on_new = _count(new, f"{uid}.*")
    old = _old_server(channel, new, f"{uid}.>")
    on_old = await anext(old)
    try:
        async with new, client:
            for n in range(REQUESTS):
                assert await client.request(f"{uid}.a.b", n) == n
    finally:
        await old.aclose()
    assert on_old == [f"{uid}.a.b"] * REQUESTS
    assert on_new == []


async def test_a_request_to_the_name_of_a_servers_hashed_queue_is_not_served(
    make_app: MakeApp, uid: str
) -> None:
    """The queue of ``<uid>.c++`` is ``<uid>.c++.<hash>``, itself a subject nobody serves; a
    request to it reached the server of ``<uid>.c++`` (and one to ``_t_.<hash>`` that of
    ``été``)."""
    server, client = make_app(), make_app()
    got = {subject: _count(server, subject) for subject in (f"{uid}.c++", f"{uid}.été")}
    async with server, client:
        for subject in got:
            await client.request(subject, 1, reply=int)
            with pytest.raises(NoResponders):
                await client.request(queue_name_for(subject), 1, timeout=5)
    assert got == {subject: [subject] for subject in got}


async def test_a_server_of_the_rest_answers_its_prefix_as_amqp_binds_it(
    make_app: MakeApp, uid: str
) -> None:
    """``<uid>.>`` is bound as ``<uid>.#``, which AMQP also matches with ``<uid>`` itself (as
    for events, ``docs/transports/rabbitmq.md``): the server answers it, not "not served"."""
    server, client = make_app(), make_app()
    got = _count(server, f"{uid}.>")
    async with server, client:
        assert await client.request(uid, 7, reply=int) == 7
        assert await client.request(f"{uid}.a.b", 8, reply=int) == 8
    assert got == [uid, f"{uid}.a.b"]
