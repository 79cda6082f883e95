"""Header blocks of other NATS clients reach a pigeon handler as text: a status line
(``NATS/1.0 503 ...``) as ``Status`` and ``Description`` headers, plain ``str`` names and values,
and the content type whatever the case of its name."""

from __future__ import annotations

import nats
import pytest

from pigeon import App, Message
from pigeon.testing.conformance.models import Order
from pigeon.testing.waiting import wait_for

BODY = b'{"id": 7, "item": "nut"}'


async def _send_block(raw: nats.NATS, subject: str, block: bytes) -> None:
    """Publish ``BODY`` with the header block ``block`` as it is (nats-py's ``publish`` cannot
    write a status line)."""
    size = len(block)
    command = f"HPUB {subject} {size} {size + len(BODY)}\r\n".encode() + block + BODY + b"\r\n"
    await raw._send_command(command)
    await raw.flush()


async def _received(nats_url: str, raw: nats.NATS, subject: str, block: bytes) -> Message:
    app = App(nats_url)
    received: list[Message] = []

    @app.subscribe(subject)
    async def on_order(order: Order, msg: Message) -> None:
        received.append(msg)

    async with app:
        await _send_block(raw, subject, block)
        await wait_for(lambda: len(received) == 1, what="the message")
    return received[0]


@pytest.mark.parametrize(
    ("block", "headers"),
    [
        (b"NATS/1.0 503\r\n\r\n", {"Status": "503"}),
        (
            b"NATS/1.0 503 No Responders\r\n\r\n",
            {"Status": "503", "Description": "No Responders"},
        ),
        (
            b"NATS/1.0 100 Idle Heartbeat\r\nfoo: bar\r\n\r\n",
            {"Status": "100", "Description": "Idle Heartbeat", "foo": "bar"},
        ),
        (b"NATS/1.0 404\r\nfoo: bar\r\n\r\n", {"Status": "404", "foo": "bar"}),
    ],
    ids=["status", "status-description", "status-description-headers", "status-headers"],
)
async def test_a_status_line_arrives_as_text_headers(
    nats_url: str, uid: str, raw: nats.NATS, block: bytes, headers: dict[str, str]
) -> None:
    msg = await _received(nats_url, raw, f"{uid}.orders", block)
    assert msg.headers == headers
    assert all(type(name) is str and type(value) is str for name, value in msg.headers.items())


@pytest.mark.parametrize("name", ["content-type", "Content-Type", "CONTENT-TYPE"])
async def test_the_content_type_is_read_whatever_the_case_of_its_name(
    nats_url: str, uid: str, raw: nats.NATS, name: str
) -> None:
    app = App(nats_url)
    received: list[tuple[Order, Message]] = []

    @app.subscribe(f"{uid}.orders")
    async def on_order(order: Order, msg: Message) -> None:
        received.append((order, msg))

    async with app:
        await raw.publish(f"{uid}.orders", BODY, headers={name: "application/json", "a": "b"})
        await wait_for(lambda: len(received) == 1, what="the order")
    order, msg = received[0]
    assert order == Order(id=7, item="nut")
    assert (msg.content_type, msg.headers) == ("application/json", {"a": "b"})
