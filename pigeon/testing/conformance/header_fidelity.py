"""A user header arrives byte-identical on every transport, or is refused at the call on every
transport (memory included: it is the test harness) with an error naming it and saying what to
do; and error text (``RemoteError.message``, ``Failure.message``) arrives whole, whatever the
transport does to header values.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from pigeon import App, ConfigurationError, Message, RemoteError
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.waiting import wait_dead_letters, wait_for

ARRIVE: dict[str, str] = {
    "x-plain": "value",
    "x-empty": "",
    "x-inner-space": "two  words",
    "x-tab-inside": "a\tb",
    "x-unicode": "naïve ✓ 日本",
    "x-colon": "a: b",
    "x-percent": "100%25 %zz",
    "Mixed-Case": "Kept",
    "x-user-looks-like-pigeon": "x-pigeon-user-content-type",
    "Content-Type": "a user's, not the body's",
}
"""Headers every transport carries as they are."""

REFUSED: dict[str, tuple[str, str]] = {
    "padded value": ("x-padded", "  padded  "),
    "line break": ("x-lines", "line one\nline two"),
    "carriage return": ("x-cr", "a\rb"),
    "trailing tab": ("x-tab", "value\t"),
    "control character": ("x-nul", "a\x00b"),
    "space in name": ("with space", "v"),
    "colon in name": ("with:colon", "v"),
    "non-ASCII name": ("naïve", "v"),
    "empty name": ("", "v"),
    "lone surrogate": ("x-surrogate", "a\udc80"),
    "int value": ("x-int", 1),  # type: ignore[dict-item]
    "None value": ("x-none", None),  # type: ignore[dict-item]
    "bytes value": ("x-bytes", b"v"),  # type: ignore[dict-item]
}
"""Headers some transport would change or cannot carry: refused everywhere."""

ERROR_TEXT = "  line one\nline two\r\n\tindented 100% done  "


def _serving(make_app: MakeApp, uid: str) -> tuple[App, list[dict[str, str]]]:
    app = make_app()
    received: list[dict[str, str]] = []

    @app.subscribe(f"{uid}.event")
    async def on_event(body: int, msg: Message) -> None:
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
        "job": lambda: app.enqueue(f"{uid}.job", 1, headers=headers),
        "request": lambda: app.request(f"{uid}.request", 1, headers=headers, timeout=5),
    }
    return sends[pattern]()


@pytest.mark.parametrize("pattern", ["event", "job", "request"])
async def test_user_headers_arrive_byte_identical(
    make_app: MakeApp, uid: str, pattern: str
) -> None:
    app, received = _serving(make_app, uid)
    async with app:
        await _send(app, uid, pattern, ARRIVE)
        await wait_for(lambda: bool(received), what="the message")
    got = {name: received[0].get(name) for name in ARRIVE}
    assert got == ARRIVE


@pytest.mark.parametrize("pattern", ["event", "job", "request"])
async def test_headers_a_transport_would_change_are_refused_at_the_call(
    make_app: MakeApp, uid: str, pattern: str
) -> None:
    app, received = _serving(make_app, uid)
    async with app:
        for case, (name, value) in REFUSED.items():
            with pytest.raises(ConfigurationError) as caught:
                await _send(app, uid, pattern, {name: value})
            text = str(caught.value)
            assert repr(name) in text, (case, text)
            assert any(w in text for w in ("body", "use", "str()")), (case, text)  # what to do
        await _send(app, uid, pattern, {"x-after": "ok"})  # the App still sends
        await wait_for(lambda: bool(received), what="the message after the refusals")
    assert len(received) == 1
    assert received[0]["x-after"] == "ok"


SUGGESTED = {
    "Ünï-Code": "Uni-Code",
    "a b": "a-b",
    "x:y": "x-y",
    "\uff34\uff45\uff53\uff54": "Test",  # fullwidth letters
}
"""Header names no transport carries as they are, and the name the error suggests instead."""


async def test_a_refused_header_name_comes_with_a_name_that_travels(
    make_app: MakeApp, uid: str
) -> None:
    app, received = _serving(make_app, uid)
    async with app:
        for name, suggested in SUGGESTED.items():
            with pytest.raises(ConfigurationError) as caught:
                await _send(app, uid, "event", {name: "v"})
            assert str(caught.value).endswith(f"e.g. {suggested!r}"), str(caught.value)
            await _send(app, uid, "event", {suggested: "v"})  # the advice works
        await wait_for(lambda: len(received) == len(SUGGESTED), what="the renamed headers")
    assert [next(iter(set(r) & set(SUGGESTED.values()))) for r in received] == [*SUGGESTED.values()]


async def test_remote_error_text_arrives_whole(make_app: MakeApp, uid: str) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.fails")
    async def fails(body: int) -> int:
        raise ValueError(ERROR_TEXT)

    async with server, client:
        with pytest.raises(RemoteError) as caught:
            await client.request(f"{uid}.fails", 1, timeout=5)
    assert caught.value.type == "ValueError"
    assert caught.value.message == ERROR_TEXT


async def test_remote_error_text_that_is_not_valid_unicode_arrives_escaped(
    make_app: MakeApp, uid: str
) -> None:
    server, client = make_app(), make_app()

    @server.rpc(f"{uid}.fails")
    async def fails(body: int) -> int:
        raise ValueError("bad \udc80 byte")

    async with server, client:
        with pytest.raises(RemoteError) as caught:
            await client.request(f"{uid}.fails", 1, timeout=5)
    assert (caught.value.type, caught.value.message) == ("ValueError", "bad \\udc80 byte")


async def test_dead_letter_failure_text_arrives_whole(make_app: MakeApp, uid: str) -> None:
    app = make_app()

    @app.worker(f"{uid}.fails")
    async def fails(body: int) -> None:
        raise ValueError(ERROR_TEXT)

    async with app:
        await app.enqueue(f"{uid}.fails", 1)
        letters = await wait_dead_letters(app, f"{uid}.fails", 1)
    failure = letters[0].failure
    assert failure is not None
    assert failure.message == ERROR_TEXT
