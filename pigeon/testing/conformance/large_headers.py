"""Large headers, on every transport: headers well within pigeon's 64 KiB arrive whole, on
events (durable subscriptions too), jobs and their dead letters, and requests; headers at the
limit arrive whole or fail that call at once with ``MessageTooLarge`` naming the headers (NATS:
its largest header block, 65,535 bytes, must also hold pigeon's own headers and a dead
letter's failure), never a silent loss (a core NATS publish that no stream stores) nor an
error of another kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from pigeon import App, Message, MessageTooLarge
from pigeon.testing.conformance.fixtures import Backend, MakeApp, requires
from pigeon.testing.waiting import wait_dead_letters, wait_for
from pigeon.transports.limits import ENTRY_OVERHEAD, MAX_HEADER_BYTES

NAME = "x-large"

FITTING = 60 * 1024
"""Header bytes every transport carries, with room for its own headers and a dead letter's."""

AT_THE_LIMIT = MAX_HEADER_BYTES
"""Header bytes of pigeon's limit (``limits.header_bytes``): not over it, over what some
transport carries with its own headers."""

PATTERNS = ["event", "durable", "job", "request"]


def headers_of(size: int) -> dict[str, str]:
    """One header of ``size`` bytes as ``limits.header_bytes`` counts them."""
    return {NAME: "v" * (size - len(NAME) - ENTRY_OVERHEAD)}


def _serving(app: App, uid: str, received: list[dict[str, str]]) -> None:
    async def keep(body: int, msg: Message) -> None:
        received.append(dict(msg.headers))

    async def answer(body: int, msg: Message) -> int:
        received.append(dict(msg.headers))
        return body

    app.subscribe(f"{uid}.event")(keep)
    app.subscribe(f"{uid}.durable", durable=f"{uid}-durable")(keep)
    app.worker(f"{uid}.job")(keep)
    app.rpc(f"{uid}.request")(answer)


def _send(app: App, uid: str, pattern: str, headers: dict[str, str]) -> Awaitable[object]:
    if pattern == "job":
        return app.enqueue(f"{uid}.job", 1, headers=headers)
    if pattern == "request":
        return app.request(f"{uid}.request", 1, headers=headers, timeout=5)
    return app.publish(f"{uid}.{pattern}", 1, headers=headers)


def _arrived(received: list[dict[str, str]], headers: dict[str, str]) -> Callable[[], bool]:
    return lambda: any(got.get(NAME) == headers[NAME] for got in received)


@pytest.mark.parametrize("pattern", PATTERNS)
async def test_headers_well_within_the_limit_arrive_whole(
    backend: Backend, make_app: MakeApp, uid: str, pattern: str
) -> None:
    requires(backend, "durable")
    app, received = make_app(), list[dict[str, str]]()
    _serving(app, uid, received)
    headers = headers_of(FITTING)
    async with app:
        await _send(app, uid, pattern, headers)
        await wait_for(_arrived(received, headers), what=f"the {pattern} with its headers")


async def test_a_dead_letter_keeps_headers_well_within_the_limit_whole(
    make_app: MakeApp, uid: str
) -> None:
    app = make_app()

    @app.worker(f"{uid}.fails")
    async def fails(body: int) -> None:
        raise ValueError("no " * 400)

    headers = headers_of(FITTING)
    async with app:
        await app.enqueue(f"{uid}.fails", 1, headers=headers)
        letters = await wait_dead_letters(app, f"{uid}.fails", 1)
    assert letters[0].headers[NAME] == headers[NAME]
    assert letters[0].failure is not None


@pytest.mark.parametrize("pattern", PATTERNS)
async def test_headers_at_the_limit_arrive_whole_or_fail_that_call_at_once(
    backend: Backend, make_app: MakeApp, uid: str, pattern: str
) -> None:
    requires(backend, "durable")
    app, received = make_app(), list[dict[str, str]]()
    _serving(app, uid, received)
    headers = headers_of(AT_THE_LIMIT)
    async with app:
        refused: MessageTooLarge | None = None
        try:
            async with asyncio.timeout(10):
                await _send(app, uid, pattern, headers)
        except MessageTooLarge as exc:
            refused = exc
        if refused is None:
            await wait_for(_arrived(received, headers), what=f"the {pattern} with its headers")
        else:
            assert "header" in str(refused)
            assert app.transport.connected  # one bad call never breaks the connection
        small = {NAME: "small"}
        await _send(app, uid, pattern, small)  # the App still serves
        await wait_for(_arrived(received, small), what=f"a {pattern} after it")
