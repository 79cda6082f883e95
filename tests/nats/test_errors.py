"""What a user sees when NATS says no: every failure is one of pigeon's errors, and says why."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from pigeon import (
    App,
    BrokerError,
    ConfigurationError,
    DeclarationConflict,
    MessageTooLarge,
    RemoteError,
)
from pigeon.testing.conformance.models import Job, Order
from pigeon.testing.waiting import wait_for
from tests.brokers.nats import NatsServer, free_port


@pytest.fixture
def auth_server() -> Iterator[NatsServer]:
    """A server of this test that wants user ``pigeon``, password ``s3cret``."""
    server = NatsServer(name="auth", jetstream=False, args=("--user", "pigeon", "--pass", "s3cret"))
    server.start()
    yield server
    server.remove()


async def test_unreachable_server_is_one_error_naming_the_url_without_the_password() -> None:
    url = f"nats://pigeon:s3cret@127.0.0.1:{free_port()}"
    app = App(url, connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BrokerError) as caught:
        await app.start()
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert url.replace("s3cret", "***") in message
    assert "s3cret" not in message
    assert 0.4 < elapsed < 3, "gave up after the connect timeout, not at once nor much later"
    assert caught.value.__cause__ is None, "no nats-py exception reaches the user"


async def test_several_unreachable_servers_are_all_named_with_the_password_masked() -> None:
    ports = [free_port(), free_port()]
    app = App(f"nats://ann:pw@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}", connect_timeout=0.3)
    with pytest.raises(BrokerError) as caught:
        await app.start()
    assert all(f"nats://ann:***@127.0.0.1:{port}" in str(caught.value) for port in ports)
    assert ":pw@" not in str(caught.value)


async def test_a_comma_in_a_password_of_a_multi_server_url_stays_in_the_password() -> None:
    ports = [free_port(), free_port()]
    url = f"nats://ann:pw,se,cret@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
    app = App(url, connect_timeout=0.3)
    assert "se" not in repr(app).replace("server", "")
    with pytest.raises(BrokerError) as caught:
        await app.start()
    message = str(caught.value)
    assert all(f"nats://ann:***@127.0.0.1:{port}" in message for port in ports), message
    assert "cret" not in message
    assert ",se" not in message


@pytest.mark.parametrize("url", ["nats://", "nats://:4222", "nats://host:99999"])
def test_a_malformed_url_is_a_configuration_error_at_once(url: str) -> None:
    with pytest.raises(ConfigurationError, match="bad NATS URL"):
        App(url)


async def test_wrong_password_is_refused_with_the_password_masked(
    auth_server: NatsServer,
) -> None:
    url = f"nats://pigeon:wrong@127.0.0.1:{auth_server.port}"
    with pytest.raises(BrokerError) as caught:
        await App(url, connect_timeout=0.5).start()
    assert "Authorization" in str(caught.value)
    assert "wrong" not in str(caught.value)
    async with App(f"nats://pigeon:s3cret@127.0.0.1:{auth_server.port}"):
        pass


async def test_without_jetstream_work_queues_say_how_to_enable_it() -> None:
    server = NatsServer(name="nojs", jetstream=False)
    server.start()
    try:
        async with App(server.url) as app:
            await app.publish("core.still.works", Order(id=1))
            with pytest.raises(BrokerError, match="-js"):
                await app.enqueue("jobs", Job(1))
    finally:
        server.remove()


async def test_messages_over_max_payload_name_the_limit(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    app = App(nats_url)
    received: list[int] = []

    @app.subscribe(f"{uid}.small")
    async def on_small(order: Order) -> None:
        received.append(order.id)

    big = b"x" * raw.max_payload
    async with app:
        for send in (
            app.publish(f"{uid}.big", big),
            app.request(f"{uid}.big", big, timeout=1),
            app.enqueue(f"{uid}.big", big),
        ):
            with pytest.raises(MessageTooLarge, match=f"max_payload of {raw.max_payload} bytes"):
                await send
        await app.publish(f"{uid}.small", Order(id=1))
        await wait_for(lambda: received == [1], what="the connection still works")


SMALL_PAYLOAD = 8192


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A server of this test with a small ``max_payload`` (8 KiB)."""
    config = tmp_path / "small.conf"
    config.write_text(f"max_payload: {SMALL_PAYLOAD}\n")
    server = NatsServer(name="small", args=("-c", str(config)))
    server.start()
    yield server
    server.remove()


async def test_headers_count_against_max_payload_before_sending(
    small_server: NatsServer, uid: str
) -> None:
    """A body a little under ``max_payload`` with a few KiB of headers is over it: the call
    fails with ``MessageTooLarge`` and the connection (every handler of the App) lives on. The
    server closed it when only a body within 1 KiB of the limit was counted with its headers."""
    app = App(small_server.url)
    received: list[int] = []

    @app.subscribe(f"{uid}.small")
    async def on_small(order: Order) -> None:
        received.append(order.id)

    @app.rpc(f"{uid}.fail")
    async def fail(n: int) -> None:
        raise ValueError("\u00e9" * n)  # its error reply: the text in the body and twice in headers

    body = b"x" * (SMALL_PAYLOAD - 2000)
    headers = {"x-note": "v" * 3000}
    async with app:
        for send in (
            app.publish(f"{uid}.big", body, headers=headers),
            app.request(f"{uid}.big", body, headers=headers, timeout=1),
            app.enqueue(f"{uid}.big", body, headers=headers),
        ):
            with pytest.raises(MessageTooLarge, match=f"max_payload of {SMALL_PAYLOAD} bytes"):
                await send
        with pytest.raises(RemoteError) as caught:  # the reply is too large: that is the error
            await app.request(f"{uid}.fail", 1000, timeout=5)
        assert caught.value.type == "MessageTooLarge"
        await app.publish(f"{uid}.small", Order(id=1))
        await wait_for(lambda: received == [1], what="the connection still works")
        assert app.transport.client.stats["reconnects"] == 0


async def test_apps_with_other_queue_settings_get_a_conflict_saying_how_to_resolve_it(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    first = App(nats_url, delivery_limit=3, ack_wait=10)
    second = App(nats_url, delivery_limit=4, ack_wait=20)

    @first.worker(f"{uid}.jobs")
    async def one(job: Job) -> None: ...

    @second.worker(f"{uid}.jobs")
    async def two(job: Job) -> None: ...

    async with first:
        with pytest.raises(DeclarationConflict) as caught:
            await second.start()
        await second.close()
    message = str(caught.value)
    assert "delivery_limit=3" in message
    assert "delivery_limit=4" in message
    assert "ack_wait=10s" in message
    assert "ack_wait=20s" in message
    assert "nats consumer rm" in message


async def test_a_worker_without_ack_wait_uses_the_queue_with_the_ack_wait_it_has(
    nats_url: str, uid: str
) -> None:
    older = App(nats_url, ack_wait=30)  # a queue declared under the old default, say
    default, other = App(nats_url), App(nats_url, ack_wait=20)
    done: list[int] = []
    for app in (older, default, other):

        @app.worker(f"{uid}.jobs")
        async def work(job: Job) -> None:
            done.append(job.n)

    async with older:
        pass
    async with default:
        await default.enqueue(f"{uid}.jobs", Job(1))
        await wait_for(lambda: done == [1], what="the job, on the queue as it exists")
    with pytest.raises(DeclarationConflict, match="ack_wait=30s on the server, ack_wait=20s"):
        await other.start()
    await other.close()


async def test_queues_whose_names_meet_in_one_stream_name_conflict(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    async with App(nats_url) as app:
        await app.enqueue(f"{uid}.a.b", Job(1))
        with pytest.raises(DeclarationConflict, match="subjects"):
            await app.enqueue(f"{uid}.a_b", Job(2))


async def test_more_replicas_than_servers_is_a_configuration_error(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    async with App(nats_url, replicas=3) as app:
        with pytest.raises(ConfigurationError, match="replicas"):
            await app.enqueue(f"{uid}.jobs", Job(1))


async def test_durable_subscriptions_on_overlapping_subjects(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    wide, narrow = App(nats_url), App(nats_url)
    received: list[str] = []

    @wide.subscribe(f"{uid}.orders.>", durable="wide")
    async def on_any(order: Order) -> None:
        received.append("wide")

    @narrow.subscribe(f"{uid}.orders.created", durable="narrow")
    async def on_created(order: Order) -> None:
        received.append("narrow")

    async with wide, narrow:  # the narrow one uses the stream of the wide one
        await wide.publish(f"{uid}.orders.created", Order(id=1))
        await wait_for(lambda: sorted(received) == ["narrow", "wide"])

    other = App(nats_url)

    @other.subscribe(f"{uid}.*.created", durable="other")
    async def on_other(order: Order) -> None:
        pass

    with pytest.raises(DeclarationConflict, match="overlap"):
        await other.start()


async def test_one_durable_name_for_two_subjects_conflicts(
    nats_url: str, uid: str, raw: nats.NATS
) -> None:
    await raw.jetstream().add_stream(name=f"ORDERS_{uid}", subjects=[f"{uid}.orders.>"])
    first, second = App(nats_url), App(nats_url)

    @first.subscribe(f"{uid}.orders.created", durable="audit")
    async def on_created(order: Order) -> None:
        pass

    @second.subscribe(f"{uid}.orders.deleted", durable="audit")
    async def on_deleted(order: Order) -> None:
        pass

    async with first:
        with pytest.raises(DeclarationConflict, match="durable subscription a name of its own"):
            await second.start()


async def test_reconnecting_to_a_server_that_never_answers_logs_what_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A frozen server (or a half-open load balancer) takes the connection and says nothing:
    each failed attempt is logged with its reason, never as a bare ``pigeon: NATS:``."""
    caplog.set_level(logging.DEBUG, logger="pigeon")
    server = NatsServer(name="silent", jetstream=False)
    server.start()
    app = App(server.url, connect_timeout=0.3, reconnect_time_wait=0.1)
    try:
        async with app:
            server.stop()
            silent = await asyncio.start_server(_never_answer, "127.0.0.1", server.port)
            async with silent:
                failed = lambda: [  # noqa: E731
                    r.getMessage()
                    for r in caplog.records
                    if r.getMessage().startswith("pigeon: NATS:")
                ]
                await wait_for(lambda: len(failed()) >= 2, 10, "two failed reconnects logged")
            assert all(line.removeprefix("pigeon: NATS:").strip() for line in failed()), failed()
    finally:
        server.remove()


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up and closes
    writer.close()
