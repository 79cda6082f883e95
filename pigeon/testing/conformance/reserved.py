"""Names pigeon or a broker reads as its own are refused at the call, alike on every transport:
header names (``x-pigeon-*``, NATS's ``Nats-*``, RabbitMQ's ``x-death``, ``CC`` ...), subjects
under ``pigeon.delay.`` or with a ``#`` token, and work queue names ending like pigeon's
dead-letter and delivery-limit queues. Sent anyway, such a name did something else on each
broker: JetStream dropped a message whose ``Nats-Msg-Id`` it had seen, RabbitMQ copied one to the
queues its ``CC`` names and hid ``x-death`` from the handler, a worker on ``<queue>.dlq`` took
another queue's dead letters. The one header a caller may give is ``x-pigeon-protobuf-type``,
with a pre-encoded protobuf body (``protobuf.py``)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pigeon import App, ConfigurationError, Message
from pigeon.codecs import PROTOBUF
from pigeon.middleware import CallNext
from pigeon.testing.conformance import shop_pb2
from pigeon.testing.conformance.fixtures import Backend, MakeApp, requires
from pigeon.testing.waiting import wait_for

RESERVED_HEADERS = (
    "x-pigeon-deadline",
    "x-pigeon-error-type",
    "x-pigeon-delivery",
    "X-Pigeon-Returns",
    "x-pigeon-anything",
    "X-PIGEON-PROTOBUF-TYPE",  # only the exact spelling pigeon reads may be given
    "Nats-Msg-Id",
    "nats-expected-stream",
    "Nats-TTL",
    "NATS-Rollup",
    "x-death",
    "X-Death",
    "x-first-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
    "CC",
    "BCC",
    "cc",
    "pigeon-delay-queue",
)
"""Header names refused: pigeon's, NATS's (JetStream reads them) and RabbitMQ's."""

PATTERNS = ["event", "durable event", "job", "request"]


def _serving(make_app: MakeApp, uid: str, **options: Any) -> tuple[App, list[dict[str, str]]]:
    app = make_app(**options)
    received: list[dict[str, str]] = []

    @app.subscribe(f"{uid}.event")
    async def on_event(body: int, msg: Message) -> None:
        received.append(dict(msg.headers))

    @app.subscribe(f"{uid}.durable", durable=f"{uid}-audit")
    async def on_durable(body: int, msg: Message) -> None:
        received.append(dict(msg.headers))

    @app.worker(f"{uid}.job")
    async def on_job(body: int, msg: Message) -> None:
        received.append(dict(msg.headers))

    @app.rpc(f"{uid}.request")
    async def on_request(body: int, msg: Message) -> int:
        received.append(dict(msg.headers))
        return body

    return app, received


def _send(app: App, uid: str, pattern: str, headers: dict[str, str]) -> Awaitable[object]:
    sends: dict[str, Callable[[], Awaitable[object]]] = {
        "event": lambda: app.publish(f"{uid}.event", 1, headers=headers),
        "durable event": lambda: app.publish(f"{uid}.durable", 1, headers=headers),
        "job": lambda: app.enqueue(f"{uid}.job", 1, headers=headers),
        "request": lambda: app.request(f"{uid}.request", 1, headers=headers, timeout=5),
    }
    return sends[pattern]()


def _says_which_and_what_to_do(error: ConfigurationError, name: str) -> None:
    text = str(error)
    assert repr(name) in text, text
    assert "reserved" in text, text
    assert "rename" in text or "write it" in text, text  # what to do


@pytest.mark.parametrize("pattern", PATTERNS)
async def test_reserved_header_names_are_refused_at_the_call(
    make_app: MakeApp, uid: str, pattern: str, backend: Backend
) -> None:
    if pattern == "durable event":
        requires(backend, "durable")
    app, received = _serving(make_app, uid)
    async with app:
        for name in RESERVED_HEADERS:
            with pytest.raises(ConfigurationError) as caught:
                await _send(app, uid, pattern, {"x-fine": "1", name: "5"})
            _says_which_and_what_to_do(caught.value, name)
        await _send(app, uid, pattern, {"x-after": "ok"})  # the App still sends
        await wait_for(lambda: bool(received), what="the message after the refusals")
    assert len(received) == 1, received
    assert received[0]["x-after"] == "ok"


class AddHeader:
    """A send middleware that adds ``name: value`` to every message it sends."""

    def __init__(self) -> None:
        self.name: str | None = None

    async def send(self, message: Message, call_next: CallNext) -> Any:
        if self.name is not None:
            message.headers[self.name] = "5"
        return await call_next(message)


@pytest.mark.parametrize("pattern", PATTERNS)
async def test_reserved_headers_added_by_send_middleware_are_refused(
    make_app: MakeApp, uid: str, pattern: str, backend: Backend
) -> None:
    if pattern == "durable event":
        requires(backend, "durable")
    adding = AddHeader()
    app, received = _serving(make_app, uid, middleware=[adding])
    async with app:
        names = ["x-pigeon-delivery", "Nats-Msg-Id", "x-death", "CC"]
        if pattern != "request":  # pigeon's own on a request only
            names.append("x-pigeon-deadline")
        for name in names:
            adding.name = name
            with pytest.raises(ConfigurationError) as caught:
                await _send(app, uid, pattern, {})
            _says_which_and_what_to_do(caught.value, name)
        adding.name = "x-tenant"
        await _send(app, uid, pattern, {})
        await wait_for(lambda: bool(received), what="the message after the refusals")
    assert len(received) == 1, received
    assert received[0]["x-tenant"] == "5"


async def test_a_pre_encoded_protobuf_body_may_name_its_type(make_app: MakeApp, uid: str) -> None:
    """``x-pigeon-protobuf-type`` is the one ``x-pigeon-`` header a caller may give: with bytes
    already encoded as protobuf, for handlers that take several types or ``dict``."""
    app = make_app()
    got: list[Any] = []

    @app.subscribe(f"{uid}.orders")
    async def on_order(order: dict[str, Any]) -> None:
        got.append(order)

    body = shop_pb2.Order(id=3, sku="kettle").SerializeToString()
    async with app:
        headers = {"x-pigeon-protobuf-type": "pigeon.test.Order"}
        await app.publish(f"{uid}.orders", body, headers=headers, codec=PROTOBUF)
        await wait_for(lambda: bool(got), what="the protobuf event")
    assert got[0]["sku"] == "kettle"


RESERVED_SUBJECTS = (
    "pigeon.delay.{uid}",
    "pigeon.delay.quorum.05",
    "pigeon.durable.{uid}:{uid}.orders",
    "{uid}.#",
    "#.{uid}",
    "#",
)
"""Subjects refused everywhere: pigeon's RabbitMQ delay ladder and durable subscriptions' queues,
and ``#`` (RabbitMQ's multi-word wildcard; pigeon's is ``>``)."""


@pytest.mark.parametrize("template", RESERVED_SUBJECTS)
async def test_reserved_subjects_are_refused_at_the_call(
    make_app: MakeApp, uid: str, template: str
) -> None:
    app = make_app()
    subject = template.format(uid=uid)
    for decorator in (app.subscribe, app.rpc, app.worker):
        with pytest.raises(ConfigurationError, match=r"pigeon\.delay\.|pigeon\.durable\.|'#'"):
            decorator(subject)
    async with app:
        sends = (
            lambda: app.publish(subject, 1),
            lambda: app.request(subject, 1, timeout=5),
            lambda: app.enqueue(subject, 1),
        )
        for send in sends:
            with pytest.raises(ConfigurationError, match=r"pigeon\.delay\.|pigeon\.durable\.|'#'"):
                await send()


@pytest.mark.parametrize("suffix", [".dlq", ".delivery-limit"])
async def test_queue_names_of_pigeons_own_queues_are_refused(
    make_app: MakeApp, uid: str, suffix: str
) -> None:
    """``<queue>.dlq`` holds the dead letters of ``<queue>`` on RabbitMQ, and
    ``<queue>.delivery-limit`` records its delivery limit: no work queue, rpc subject (an rpc
    server's queue on RabbitMQ: a request to ``<queue>.dlq`` waited among the dead letters) or
    durable subscription (a queue of that name) may have those names. Events may."""
    app = make_app()
    queue = f"{uid}.jobs{suffix}"
    refused = re.escape(f"'{suffix}'")
    with pytest.raises(ConfigurationError, match=refused):
        app.worker(queue)
    with pytest.raises(ConfigurationError, match=refused):
        app.rpc(queue)
    with pytest.raises(ConfigurationError, match=refused):
        app.subscribe(f"{uid}.events", durable=f"{uid}-audit{suffix}")
    async with app:
        for call in (
            lambda: app.enqueue(queue, 1),
            lambda: app.request(queue, 1, timeout=5),
            lambda: app.dead_letters(queue),
            lambda: app.replay_dead_letters(queue),
            lambda: app.purge_dead_letters(queue),
            lambda: app.backlog(queue),
            lambda: app.backlog(f"{uid}.events", durable=f"{uid}-audit{suffix}"),
        ):
            with pytest.raises(ConfigurationError, match=refused):
                await call()
        await app.publish(f"{uid}.events{suffix}", 1)  # a subject, no queue: fine


@pytest.mark.parametrize("durable", ["pigeon.delay.quorum.05", "pigeon.durable.audit:{uid}.events"])
def test_a_durable_name_of_pigeons_own_queues_is_refused(
    make_app: MakeApp, uid: str, durable: str
) -> None:
    """``pigeon.delay.quorum.05`` is a queue of RabbitMQ's delay ladder: a durable subscription of
    that name would take the delayed jobs of every queue. ``pigeon.durable.<name>:<subject>`` is
    a durable subscription's queue there: a subscription of that name took its stored events and
    unbound it, taking it for a queue of the old naming to move from."""
    app = make_app()
    with pytest.raises(ConfigurationError, match=r"pigeon\.delay\.|pigeon\.durable\."):
        app.subscribe(f"{uid}.events", durable=durable.format(uid=uid))


async def test_queue_names_under_amq_are_refused(make_app: MakeApp, uid: str) -> None:
    """RabbitMQ refuses to declare a queue named ``amq.*`` (``ACCESS_REFUSED``, at start or at
    the first send, a ``BrokerError``): refused at the call on every transport. Events may."""
    app = make_app()
    queue = f"amq.{uid}"
    with pytest.raises(ConfigurationError, match=r"'amq\.'"):
        app.worker(queue)
    with pytest.raises(ConfigurationError, match=r"'amq\.'"):
        app.rpc(queue)
    with pytest.raises(ConfigurationError, match=r"'amq\.'"):
        app.subscribe(f"{uid}.events", durable=queue)
    async with app:
        for call in (lambda: app.enqueue(queue, 1), lambda: app.request(queue, 1, timeout=5)):
            with pytest.raises(ConfigurationError, match=r"'amq\.'"):
                await call()
        await app.publish(f"amq.{uid}.events", 1)  # a routing key, no queue: fine


class Reroute:
    """A send middleware that passes every message on under ``subject``."""

    def __init__(self, subject: str) -> None:
        self.subject = subject

    async def send(self, message: Message, call_next: CallNext) -> Any:
        return await call_next(dataclasses.replace(message, subject=self.subject))


@pytest.mark.parametrize("pattern", ["event", "job", "request"])
async def test_a_subject_send_middleware_sets_is_checked_too(
    make_app: MakeApp, uid: str, pattern: str
) -> None:
    target = f"{uid}.jobs.dlq" if pattern == "job" else f"{uid}.#"
    app = make_app(middleware=[Reroute(target)])
    async with app:
        with pytest.raises(ConfigurationError, match=r"'#'|'\.dlq'"):
            await _send(app, uid, pattern, {})


async def test_a_protobuf_type_on_a_body_that_is_no_encoded_protobuf_is_refused(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()
    headers = {"x-pigeon-protobuf-type": "pigeon.test.Order"}
    async with app:
        for body, codec in ((7, None), (b"\x08\x03", None), ({"id": 3}, PROTOBUF)):
            with pytest.raises(ConfigurationError, match="bytes with codec=PROTOBUF"):
                await app.publish(f"{uid}.orders", body, headers=headers, codec=codec)
