"""Hostile input every transport must survive: one bad call fails alone, at once, with a clear
error, and never takes the connection (and every other handler of the App) down with it.

Each test checks a kind of fault, not one input: what one call sends is checked against the
broker's limits before it is sent; every credential of every server is masked wherever a URL is
shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from pigeon import App, BrokerError, ConfigurationError, MessageTooLarge, PigeonError
from pigeon.asyncapi import asyncapi_document
from pigeon.testing.conformance.fixtures import Backend, MakeApp
from pigeon.testing.conformance.models import Job, Order
from pigeon.testing.waiting import wait_for

AT_ONCE = 10.0
"""Seconds within which a bad call must fail: far less than any reconnect patience (30 s)."""

LONG_SUBJECT_BYTES = 5000
"""Over NATS's 4096-byte control line (and AMQP's 255-byte routing keys)."""

BIG_HEADER_BYTES = 256 * 1024
"""Over RabbitMQ's default ``frame_max`` (128 KiB), which must hold the whole header table."""


async def _fails_at_once(
    call: Callable[[], Awaitable[Any]], error: type[PigeonError]
) -> PigeonError:
    """Make ``call``; it must raise ``error`` within ``AT_ONCE`` seconds (not hang, not wait for
    a reconnect)."""
    try:
        async with asyncio.timeout(AT_ONCE):
            await call()
    except error as exc:
        return exc
    except TimeoutError:
        pytest.fail(f"the bad call did not fail within {AT_ONCE}s")
    pytest.fail(f"the bad call did not raise {error.__name__}")


def serving_app(make_app: MakeApp, uid: str, **options: Any) -> tuple[App, list[int], list[int]]:
    """An App with a subscriber and a worker: the handlers a bad call must not disturb."""
    app = make_app(**options)
    events: list[int] = []
    jobs: list[int] = []

    @app.subscribe(f"{uid}.events")
    async def on_event(order: Order) -> None:
        events.append(order.id)

    @app.worker(f"{uid}.jobs")
    async def on_job(job: Job) -> None:
        jobs.append(job.n)

    @app.rpc(f"{uid}.echo")
    async def echo(order: Order) -> Order:
        return order

    return app, events, jobs


async def still_serves(app: App, uid: str, events: list[int], jobs: list[int], n: int) -> None:
    """The App's other handlers keep working on the same App after the bad calls."""
    await app.publish(f"{uid}.events", Order(id=n))
    await app.enqueue(f"{uid}.jobs", Job(n))
    assert await app.request(f"{uid}.echo", Order(id=n), reply=Order, timeout=5) == Order(id=n)
    await wait_for(lambda: n in events and n in jobs, what="the App still serving")
    assert app.transport.connected


async def test_an_oversized_subject_fails_that_call_at_once(make_app: MakeApp, uid: str) -> None:
    app, events, jobs = serving_app(make_app, uid)
    subject = f"{uid}." + "x" * LONG_SUBJECT_BYTES
    async with app:
        for round_ in range(2):  # a second round: nothing was left broken by the first
            for call in (
                lambda: app.publish(subject, Order(id=1)),
                lambda: app.request(subject, Order(id=1), timeout=5),
                lambda: app.enqueue(subject, Job(1)),
            ):
                error = await _fails_at_once(call, ConfigurationError)
                assert "bytes" in str(error)
            await still_serves(app, uid, events, jobs, round_)


async def test_oversized_headers_fail_that_call_at_once(make_app: MakeApp, uid: str) -> None:
    app, events, jobs = serving_app(make_app, uid)
    big = {"x-big": "x" * BIG_HEADER_BYTES}
    async with app:
        for round_ in range(2):
            for call in (
                lambda: app.publish(f"{uid}.events", Order(id=-1), headers=big),
                lambda: app.request(f"{uid}.echo", Order(id=-1), headers=big, timeout=5),
                lambda: app.enqueue(f"{uid}.jobs", Job(-1), headers=big),
            ):
                error = await _fails_at_once(call, MessageTooLarge)
                assert "header" in str(error)
            await still_serves(app, uid, events, jobs, round_)
        assert -1 not in events
        assert -1 not in jobs


ONE_MIB_LIMITS: dict[str, dict[str, object]] = {
    "memory": {"max_message_size": 1024 * 1024},
    "rabbitmq": {"max_message_size": 1024 * 1024},
    "redis": {"max_message_size": 1024 * 1024},
}
"""App options that set a 1 MiB limit on a message, NATS' default ``max_payload``."""


async def test_an_oversized_body_fails_that_call_at_once(
    make_app: MakeApp, backend: Backend, uid: str
) -> None:
    """Memory too refuses what is over its limit, so tests on it catch what a broker refuses."""
    app, events, jobs = serving_app(
        make_app, uid, **ONE_MIB_LIMITS.get(backend.name.split("-")[0], {})
    )
    big = {"blob": "x" * (2 * 1024 * 1024)}
    async with app:
        for call in (
            lambda: app.publish(f"{uid}.events", big),
            lambda: app.request(f"{uid}.echo", big, timeout=5),
            lambda: app.enqueue(f"{uid}.jobs", big),
        ):
            await _fails_at_once(call, MessageTooLarge)
        await still_serves(app, uid, events, jobs, 1)


async def test_a_header_name_over_255_bytes_fails_that_call_at_once(
    make_app: MakeApp, uid: str
) -> None:
    app, events, jobs = serving_app(make_app, uid)
    long_name = {"x-" + "n" * 300: "value"}
    async with app:
        for call in (
            lambda: app.publish(f"{uid}.events", Order(id=-1), headers=long_name),
            lambda: app.enqueue(f"{uid}.jobs", Job(-1), headers=long_name),
        ):
            await _fails_at_once(call, MessageTooLarge)
        await still_serves(app, uid, events, jobs, 1)


# -- secrets -------------------------------------------------------------------------------------


def _credentialed_urls(scheme: str, secret: str) -> list[str]:
    """URLs of the scheme with credentials (every form a user writes) pointing at closed ports."""
    forms = {
        "nats": [
            f"nats://{secret}@127.0.0.1:1",  # a token
            f"nats://user:{secret}@127.0.0.1:1,nats://other:{secret}x@127.0.0.1:2",
            f"nats://user:p@127.0.0.1:1,127.0.0.1:2,nats://{secret}@127.0.0.1:3",
        ],
        "amqp": [
            f"amqp://user:{secret}@127.0.0.1:1/",
            f"amqp://user:{secret}@127.0.0.1:1,127.0.0.1:2,127.0.0.1:3/vhost",
        ],
        "redis": [f"redis://user:{secret}@127.0.0.1:1/0", f"redis://:{secret}@127.0.0.1:1"],
        "memory": [f"memory://user:{secret}@shown-name"],
    }
    return forms.get(scheme, [])


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


async def test_credentials_are_never_shown(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    secret = f"s3cr3t{uuid.uuid4().hex[:8]}"
    scheme = scheme_of(backend)
    urls = _credentialed_urls(scheme, secret)
    if not urls:
        pytest.skip(f"no credentialed URL form known for {scheme}://")
    caplog.set_level(logging.DEBUG)
    for url in urls:
        options: dict[str, Any] = dict(backend.options)
        if scheme == "nats":  # each closed port is tried this long: 2 s by default
            options["connect_timeout"] = 0.25
        app = App(url, **options)
        shown: list[str] = [repr(app), str(app.transport.url)]
        shown.append(json.dumps(asyncapi_document(app)))
        try:
            async with asyncio.timeout(30):
                await app.start()
        except (BrokerError, TimeoutError) as exc:
            shown += [f"{e!s} {e!r}" for e in _chain(exc)]
        finally:
            await app.close()
        shown.append(caplog.text)
        leaked = [text for text in shown if secret in text]
        assert leaked == [], f"{url.replace(secret, '<secret>')} shown unmasked: {leaked[:1]}"


# -- a server that never answers -----------------------------------------------------------------

SILENT_PATIENCE = 1.0
"""Seconds the App is told to wait for an answer from a silent server."""

PATIENCE_OPTION = {"nats": "connect_timeout", "amqp": "connect_timeout", "redis": "socket_timeout"}
"""The option that bounds the wait for a server's first answer, by URL scheme."""


Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
"""What a fake server does with each connection."""


@contextlib.asynccontextmanager
async def serving(peer: Peer) -> AsyncIterator[int]:
    """A loopback server running ``peer`` on each connection; yields its port."""
    writers: list[asyncio.StreamWriter] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            await peer(reader, writer)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in writers:
            writer.close()
        server.close()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Takes the connection and never sends a byte (a wrong service, or a node out of file
    handles, as RabbitMQ 3.10 is at ~300 quorum queues under 1,024 descriptors)."""
    while await reader.read(4096):
        pass


def scheme_of(backend: Backend) -> str:
    """The URL scheme of ``backend`` (``nats``, ``amqp``, ``redis``, ``memory``)."""
    return backend.url().split("://")[0].split("+")[0]


async def test_a_server_that_never_answers_fails_start_in_time(backend: Backend) -> None:
    """``start`` against a port that takes the connection and stays silent raises
    ``BrokerError`` within its timeout option (not a hang), naming the address, the option and
    its seconds, and what to check; the App then closes cleanly."""
    scheme = scheme_of(backend)
    option = PATIENCE_OPTION.get(scheme)
    if option is None:
        pytest.skip(f"{scheme}:// has no server to be silent")
    async with serving(silent) as port:
        credentials = "guest:guest@" if scheme == "amqp" else ""
        where = f"127.0.0.1:{port}"
        options: dict[str, Any] = {**backend.options, option: SILENT_PATIENCE}
        app = App(f"{scheme}://{credentials}{where}", **options)
        try:
            error = await _fails_at_once(app.start, BrokerError)
        finally:
            await app.close()
    message = str(error)
    assert where in message, message  # which server
    assert option in message, message  # what bounds the wait
    assert f"{SILENT_PATIENCE:g}s" in message, message  # and how long it was
    assert "?" in message, message  # what to check


async def test_a_misspelled_option_is_refused_naming_the_option_meant(backend: Backend) -> None:
    """A typo in an ``App()`` option (its own, or the transport's) fails at ``App()``, on every
    transport, with the closest valid name."""
    for typo in ("shutdown_timout", "delivery_limt"):
        options: dict[str, Any] = {**backend.options, typo: 5}
        with pytest.raises(ConfigurationError, match=rf"'{typo}' \(did you mean App\(\)'s"):
            App(backend.url(), **options)
