"""``App.publish`` hands back the transport's coroutine (issue 18) and still behaves as an
``async def`` to everything that calls, awaits, schedules or mocks it."""

from __future__ import annotations

import asyncio
import functools
import inspect
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from pigeon import App, ConfigurationError, EncodeError, Message
from pigeon.middleware import CallNext
from pigeon.patterns import pubsub
from pigeon.testing.waiting import wait_for

ROOT = Path(__file__).parent.parent.parent


def _app(**options: Any) -> App:
    return App(f"memory://publish-call-{uuid.uuid4().hex}", **options)


async def test_a_bad_subject_or_body_raises_at_the_await_not_at_the_call() -> None:
    async with _app() as app:
        bad_subject = app.publish("bad subject", 1)
        unencodable = app.publish("orders.created", object())
        with pytest.raises(ConfigurationError, match="whitespace"):
            await bad_subject
        with pytest.raises(EncodeError):
            await unencodable


async def test_gather_collects_the_errors_and_a_task_raises_its_own() -> None:
    async with _app() as app:
        results = await asyncio.gather(
            app.publish("bad subject", 1),
            app.publish("orders.created", object()),
            app.publish("orders.created", 1),
            return_exceptions=True,
        )
        assert [type(result) for result in results] == [ConfigurationError, EncodeError, type(None)]
        task = asyncio.create_task(app.publish("", 1))
        with pytest.raises(ConfigurationError, match="empty"):
            await task


async def test_a_publish_that_is_never_awaited_sends_nothing() -> None:
    got: list[int] = []
    app = _app()

    @app.subscribe("orders.created")
    async def on_order(n: int) -> None:
        got.append(n)

    async with app:
        with pytest.warns(RuntimeWarning, match="never awaited"):
            app.publish("orders.created", 1)  # type: ignore[unused-coroutine]  # dropped: warned
        await app.publish("orders.created", 2)
        await wait_for(lambda: got == [2])


class Counting:
    """A send middleware: runs where the publish is awaited, and may refuse it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.refuse = False

    async def send(self, message: Message, call_next: CallNext) -> Any:
        self.seen.append(message.subject)
        if self.refuse:
            raise PermissionError("refused")
        return await call_next(message)


async def test_send_middleware_runs_at_the_await_and_its_errors_raise_there() -> None:
    counting = Counting()
    got: list[int] = []
    app = _app(middleware=[counting])

    @app.subscribe("orders.created")
    async def on_order(n: int) -> None:
        got.append(n)

    async with app:
        publishing = app.publish("orders.created", 1)
        assert counting.seen == []
        await publishing
        assert counting.seen == ["orders.created"]
        counting.refuse = True
        refused = app.publish("orders.created", 2)
        with pytest.raises(PermissionError):
            await refused
        await wait_for(lambda: got == [1])


def test_publish_is_a_coroutine_function_to_asyncio_and_mock() -> None:
    assert asyncio.iscoroutinefunction(App.publish)
    assert asyncio.iscoroutinefunction(_app().publish)
    if sys.version_info >= (3, 12):  # 3.11's inspect reads the code's flags alone
        assert inspect.iscoroutinefunction(App.publish)
    for double in (
        mock.create_autospec(App, instance=True),
        mock.create_autospec(App),
        mock.AsyncMock(spec=App),
        mock.MagicMock(spec=App),
    ):
        assert isinstance(double.publish, mock.AsyncMock), double


async def test_an_autospec_publish_is_awaited_and_checks_its_arguments() -> None:
    app = mock.create_autospec(App, instance=True)
    await app.publish("orders.created", 1, headers={"a": "b"})
    app.publish.assert_awaited_once_with("orders.created", 1, headers={"a": "b"})
    with pytest.raises(TypeError):
        await app.publish("orders.created", 1, 2)
    with mock.patch.object(App, "publish") as patched:
        await _app().publish("orders.created", 1)
    patched.assert_awaited_once()


@pytest.mark.timeout(180)
def test_user_code_that_awaits_or_schedules_publish_type_checks(tmp_path: Path) -> None:
    user = tmp_path / "user.py"
    user.write_text(
        "import asyncio\n"
        "from pigeon import App\n"
        "async def f(app: App) -> None:\n"
        "    await app.publish('orders.created', 1)\n"
        "    task: asyncio.Task[None] = asyncio.create_task(app.publish('orders.created', 1))\n"
        "    await task\n"
        "    await asyncio.gather(app.publish('a.b', 1), app.publish('a.c', 2))\n"
        "    await asyncio.wait_for(app.publish('a.b', 1), 1)\n"
        "    reveal_type(app.publish)\n"
        "    app.publish('a.b', 1)\n"  # line 10: a forgotten await is caught
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", str(user)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    errors = [line for line in result.stdout.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stdout
    assert ":10: error:" in errors[0], result.stdout
    assert "[unused-coroutine]" in errors[0], result.stdout
    assert '-> typing.Coroutine[Any, Any, None]"' in result.stdout  # as of an async def


async def test_a_handler_that_is_a_partial_of_publish_relays() -> None:
    # 3.11's inspect cannot see the mark; pigeon reads it too (handlers._marked_async), so the
    # call runs on the loop, not in a worker thread
    app, got = _app(), []
    app.subscribe("legacy.orders")(functools.partial(app.publish, "orders.created"))

    @app.subscribe("orders.created")
    async def on_order(n: int) -> None:
        got.append(n)

    async with app:
        await app.publish("legacy.orders", 5)
        await wait_for(lambda: got == [5])


async def test_subjects_found_well_formed_are_remembered_and_bad_ones_never() -> None:
    async with _app() as app:
        for _ in range(2):
            with pytest.raises(ConfigurationError):
                await app.publish("bad..subject", 1)
            with pytest.raises(TypeError):
                await app.publish(["not", "hashable"], 1)  # type: ignore[arg-type]
        assert "bad..subject" not in pubsub.checked
        await app.publish("orders.remembered", 1)
        assert "orders.remembered" in pubsub.checked
        for n in range(5000):
            await app.publish(f"orders.n{n}", n)
        assert len(pubsub.checked) <= 4096
