"""Broker refusals reach users as clear ``pigeon.errors``, never as aio-pika exceptions."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from aio_pika.abc import AbstractConnection

from pigeon import App, BrokerError, ConfigurationError, DeclarationConflict, NoResponders
from pigeon.testing.conformance.models import Job
from tests.conftest import MakeApp


async def test_a_queue_declared_otherwise_is_a_conflict_naming_queue_and_argument(
    make_app: MakeApp, uid: str, raw: AbstractConnection
) -> None:
    channel = await raw.channel()
    await channel.declare_queue(f"{uid}.legacy", durable=True)  # a classic queue, no arguments
    app = make_app()
    async with app:
        await app.enqueue(f"{uid}.legacy", Job(1))  # a producer uses the queue as it is
        with pytest.raises(DeclarationConflict) as caught:
            await app.transport.jobs.consume(f"{uid}.legacy", _never, concurrency=1)
        message = str(caught.value)
        assert f"'{uid}.legacy'" in message
        assert "x-queue-type" in message or "x-dead-letter-exchange" in message, message
        # the channel the broker closed is no loss: the App goes on working
        await app.enqueue(f"{uid}.fresh", Job(2))
        assert await app.dead_letters(f"{uid}.fresh") == []


async def test_a_worker_of_a_conflicting_queue_fails_at_start(
    make_app: MakeApp, uid: str, raw: AbstractConnection
) -> None:
    channel = await raw.channel()
    await channel.declare_queue(f"{uid}.legacy", durable=True)
    app = make_app()

    @app.worker(f"{uid}.legacy")
    async def work(job: Job) -> None: ...

    with pytest.raises(DeclarationConflict, match="legacy"):
        await app.start()


async def test_wrong_password_is_a_login_error_with_the_password_masked(amqp_url: str) -> None:
    parts = urlsplit(amqp_url)
    url = amqp_url.replace(f":{parts.password}@", ":not-the-password@")
    with pytest.raises(BrokerError) as caught:
        await App(url).start()
    assert type(caught.value) is BrokerError
    assert "refused the login of user 'guest'" in str(caught.value)
    assert "not-the-password" not in str(caught.value)
    assert ":***@" in str(caught.value)


async def test_a_comma_in_a_password_of_a_multi_host_url_stays_in_the_password(
    amqp_url: str,
) -> None:
    parts = urlsplit(amqp_url)
    host = f"{parts.hostname}:{parts.port or 5672}"
    url = f"amqp://guest:s3c,r3t,pw@{host},{host}{parts.path}"
    with pytest.raises(BrokerError) as caught:
        await App(url).start()
    message = str(caught.value)
    assert "refused the login of user 'guest'" in message
    assert "s3c" not in message
    assert "r3t" not in message
    assert ":***@" in message


async def test_unknown_vhost_is_named(amqp_url: str, uid: str) -> None:
    parts = urlsplit(amqp_url)
    with pytest.raises(BrokerError, match=f"virtual host '{uid}-nowhere'") as caught:
        await App(parts._replace(path=f"/{uid}-nowhere").geturl()).start()
    assert type(caught.value) is BrokerError
    assert ":***@" in str(caught.value)


async def test_unreachable_host_is_named() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BrokerError, match=f"127.0.0.1:{port} is unreachable") as caught:
        await App(f"amqp://guest:secret@127.0.0.1:{port}/").start()
    assert type(caught.value) is BrokerError
    assert "secret" not in str(caught.value)


async def test_names_no_queue_can_have_are_refused_early(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    async with app:
        with pytest.raises(ConfigurationError, match="cannot name a RabbitMQ queue"):
            await app.enqueue(f"{uid}.caf\u00e9", Job(1))


async def test_wildcard_rpc_servers_answer_through_the_rpc_exchange(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.quote.*")
    async def quote(n: int) -> int:
        return n + 1

    async with server, client:
        assert await client.request(f"{uid}.quote.eu", 1, reply=int) == 2
        with pytest.raises(NoResponders):
            await client.request(f"{uid}.other.eu", 1)


async def test_a_closed_app_raises_broker_error(make_app: MakeApp, uid: str) -> None:
    app = make_app()
    async with app:
        pass
    assert not app.transport.connected
    with pytest.raises(BrokerError, match="not connected"):
        await app.enqueue(f"{uid}.late", Job(1))


async def _never(delivery: object) -> None:
    raise AssertionError("no job should reach this handler")
