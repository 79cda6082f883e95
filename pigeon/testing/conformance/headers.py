"""User headers whose names a transport also uses for its own fields (``body``,
``content-type``, ``message-id``, ...) either arrive byte-identical or are refused at send with an
error naming them; never dropped or changed on the way, in any pattern."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from pigeon import Message, PigeonError
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.waiting import wait_for

LOOKALIKES = {
    "body": "user-body",
    "content-type": "text/x-user",
    "message-id": "user-id",
    "correlation-id": "user-cid",
    "reply-to": "user-reply",
    "timestamp": "user-ts",
    "correlation_id": "user-cid-2",
}
"""Header names an envelope field goes by on some broker, with values that are not its. Those
a broker or pigeon reads as its own (``Nats-Msg-Id``, ``x-pigeon-*``) are refused at the call
on every transport: ``reserved.py``."""


async def _arrives_or_is_refused(
    send: Callable[[], Awaitable[object]], received: list[dict[str, str]]
) -> None:
    refusal: PigeonError | None = None
    try:
        await send()
    except PigeonError as exc:  # refused at send: fine, if it says which header
        refusal = exc
    if refusal is not None:
        assert any(name in str(refusal) for name in LOOKALIKES), refusal
        return
    await wait_for(lambda: bool(received), what="the message")
    got = {name: received[0].get(name) for name in LOOKALIKES}
    assert got == LOOKALIKES, got


@pytest.mark.parametrize("pattern", ["event", "job", "request"])
async def test_user_headers_named_like_envelope_fields_arrive_intact(
    make_app: MakeApp, uid: str, pattern: str
) -> None:
    app = make_app()
    received: list[dict[str, str]] = []

    @app.subscribe(f"{uid}.event")
    async def on_event(body: dict[str, int], msg: Message) -> None:
        received.append(dict(msg.headers))

    @app.worker(f"{uid}.job")
    async def on_job(body: dict[str, int], msg: Message) -> None:
        received.append(dict(msg.headers))

    @app.rpc(f"{uid}.request")
    async def on_request(body: dict[str, int], msg: Message) -> dict[str, int]:
        received.append(dict(msg.headers))
        return body

    sends = {
        "event": lambda: app.publish(f"{uid}.event", {"n": 1}, headers=LOOKALIKES),
        "job": lambda: app.enqueue(f"{uid}.job", {"n": 1}, headers=LOOKALIKES),
        "request": lambda: app.request(f"{uid}.request", {"n": 1}, headers=LOOKALIKES),
    }
    async with app:
        await _arrives_or_is_refused(sends[pattern], received)
