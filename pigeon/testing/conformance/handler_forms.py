"""Every form a handler comes in is called correctly, or refused when it is decorated.

A handler whose call returns something awaitable has it awaited, in the event loop, whatever
form the callable takes (a ``functools.wraps`` decorator around an ``async def`` or around a
``functools.partial`` of an object with ``async __call__``, a ``functools.partial``, such an
object, a plain ``def`` returning a coroutine):
otherwise its body never runs and the job is acked all the same (data loss). A callable that can
never be called correctly (a generator function, an async generator function, something not
callable) is refused with ``ConfigurationError`` at decoration.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from pigeon import ConfigurationError, Message
from pigeon.testing.conformance.fixtures import MakeApp
from pigeon.testing.conformance.models import Job
from pigeon.testing.waiting import wait_for

Ran = list[tuple[str, int, bool]]
"""What the handlers saw: (form, job number, whether it ran on the event loop's thread)."""


def _traced(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A typical tracing decorator: a sync wrapper that returns whatever ``fn`` returns."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def _forms(ran: Ran, loop_thread: int) -> dict[str, Callable[..., Any]]:
    """One handler of each form, each recording the job it ran for."""

    def record(form: str, job: Job) -> None:
        ran.append((form, job.n, threading.get_ident() == loop_thread))

    @_traced
    async def wrapped(job: Job) -> None:
        record("wrapped", job)

    class Handler:
        async def __call__(self, job: Job, msg: Message) -> None:
            record("callable object", job)

    async def tagged(form: str, job: Job) -> None:
        record(form, job)

    class Tagged:
        async def __call__(self, form: str, job: Job, msg: Message) -> None:
            record(form, job)

    async def coroutine_of(job: Job) -> None:
        record("sync returning a coroutine", job)

    def sync_returning_awaitable(job: Job) -> Awaitable[None]:
        return coroutine_of(job)

    return {
        "wrapped": wrapped,
        "callable object": Handler(),
        "partial": functools.partial(tagged, "partial"),
        "wrapped partial of a callable object": _traced(
            functools.partial(Tagged(), "wrapped partial of a callable object")
        ),
        "sync returning a coroutine": sync_returning_awaitable,
    }


@pytest.mark.parametrize("pattern", ["worker", "rpc", "subscribe"])
async def test_every_awaitable_a_handler_returns_is_awaited_on_the_loop(
    make_app: MakeApp, uid: str, pattern: str
) -> None:
    app = make_app()
    ran: Ran = []
    forms = _forms(ran, threading.get_ident())
    decorate: Callable[[str], Callable[[Any], Any]] = getattr(app, pattern)
    for n, fn in enumerate(forms.values()):
        decorate(f"{uid}.{n}")(fn)
    async with app:
        for n in range(len(forms)):
            if pattern == "worker":
                await app.enqueue(f"{uid}.{n}", Job(n))
            elif pattern == "rpc":
                await app.request(f"{uid}.{n}", Job(n), timeout=5)
            else:
                await app.publish(f"{uid}.{n}", Job(n))
        await wait_for(lambda: len(ran) >= len(forms), what="every form's handler")
    assert sorted(ran) == sorted((form, n, True) for n, form in enumerate(forms)), ran


async def _agen(job: Job) -> AsyncIterator[None]:
    yield None


def _gen(job: Job) -> Iterator[None]:
    yield None


@pytest.mark.parametrize("pattern", ["worker", "rpc", "subscribe"])
@pytest.mark.parametrize(
    ("form", "fn"),
    [
        ("async generator", _agen),
        ("wrapped async generator", _traced(_agen)),
        ("generator", _gen),
        ("not callable", Job(1)),
    ],
)
async def test_a_handler_that_cannot_be_called_is_refused_at_decoration(
    make_app: MakeApp, uid: str, pattern: str, form: str, fn: Any
) -> None:
    app = make_app()
    decorate: Callable[[str], Callable[[Any], Any]] = getattr(app, pattern)
    with pytest.raises(ConfigurationError) as caught:
        decorate(f"{uid}.refused")(fn)
    text = str(caught.value)
    assert "async def" in text or "callable" in text, text
