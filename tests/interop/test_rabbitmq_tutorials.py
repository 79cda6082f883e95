"""pigeon and the RabbitMQ tutorials' pika programs (``tutorials.py``), both directions:
work queues (2), topics (5) and RPC (6), errors included, and ``App(passive=True)`` adopting the
queue and the non-durable exchange those programs declare."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from pigeon import App, ConfigurationError, DeclarationConflict, Message, Reject, RemoteError
from pigeon.testing.waiting import wait_dead_letters, wait_for
from tests.interop import tutorials

T = TypeVar("T")


async def in_thread(program: Callable[..., T], *args: Any) -> asyncio.Task[T]:
    """Start a consuming tutorial program in a thread; return once it consumes."""
    ready = threading.Event()
    task = asyncio.create_task(asyncio.to_thread(program, *args, ready))
    await wait_for(lambda: ready.is_set() or task.done(), what="the pika program to consume")
    return task


async def call(url: str, queue: str, *numbers: int | str) -> list[tuple[bytes, Any]]:
    """The tutorial's RPC client calling ``queue`` with each of ``numbers``."""

    def run() -> list[tuple[bytes, Any]]:
        client = tutorials.FibonacciRpcClient(url, queue)
        try:
            return [client.call(n) for n in numbers]
        finally:
            client.close()

    return await asyncio.to_thread(run)


# -- tutorial 2: work queues ----------------------------------------------------------------


async def test_new_task_reaches_a_passive_pigeon_worker(amqp_url: str, uid: str) -> None:
    queue = f"task_queue.{uid}"
    await asyncio.to_thread(tutorials.new_task, amqp_url, queue, "Hello World...")
    await asyncio.to_thread(tutorials.declare_task_queue, amqp_url, f"{queue}.dlq")
    app = App(amqp_url, passive=True)
    received: list[str] = []

    @app.worker(queue)
    async def work(task: str) -> None:
        received.append(task)

    async with app:
        await wait_for(lambda: received == ["Hello World..."])


async def test_passive_worker_dead_letters_into_the_queue_it_adopted(
    amqp_url: str, uid: str
) -> None:
    queue = f"task_queue.{uid}"
    await asyncio.to_thread(tutorials.declare_task_queue, amqp_url, queue)
    await asyncio.to_thread(tutorials.declare_task_queue, amqp_url, f"{queue}.dlq")
    app = App(amqp_url, passive=True)

    @app.worker(queue)
    async def work(task: str) -> None:
        raise Reject(f"cannot do {task!r}")

    async with app:
        await asyncio.to_thread(tutorials.new_task, amqp_url, queue, "Hello World!")
        [letter] = await wait_dead_letters(app, queue, 1)
    assert letter.body == b"Hello World!"
    assert letter.failure is not None
    assert letter.failure.message == "cannot do 'Hello World!'"


async def test_passive_worker_says_at_start_why_it_cannot_dead_letter(
    amqp_url: str, uid: str
) -> None:
    queue = f"task_queue.{uid}"
    await asyncio.to_thread(tutorials.declare_task_queue, amqp_url, queue)
    app = App(amqp_url, passive=True)

    @app.worker(queue)
    async def work(task: str) -> None: ...

    with pytest.raises(ConfigurationError, match=rf"queue '{queue}\.dlq' does not exist"):
        await app.start()


async def test_passive_app_names_the_queue_that_is_missing(amqp_url: str, uid: str) -> None:
    async with App(amqp_url, passive=True) as app:
        with pytest.raises(ConfigurationError, match=rf"queue 'nothing\.{uid}' does not exist"):
            await app.enqueue(f"nothing.{uid}", "x")


async def test_pigeon_job_reaches_the_tutorial_worker(amqp_url: str, uid: str) -> None:
    queue = f"task_queue.{uid}"
    consuming = await in_thread(tutorials.worker, amqp_url, queue, 2)
    async with App(amqp_url, passive=True) as app:
        await app.enqueue(queue, "First message.")
        await app.enqueue(queue, {"task": "Second message.."})
    assert await consuming == [b"First message.", b'{"task":"Second message.."}']


async def test_a_worker_that_declares_conflicts_with_the_tutorial_queue(
    amqp_url: str, uid: str
) -> None:
    queue = f"task_queue.{uid}"
    await asyncio.to_thread(tutorials.declare_task_queue, amqp_url, queue)
    async with App(amqp_url) as producer:  # a producer uses the queue as it is
        await producer.enqueue(queue, "x")
    app = App(amqp_url)

    @app.worker(queue)
    async def work(task: str) -> None: ...

    with pytest.raises(DeclarationConflict, match="queue_type"):
        await app.start()
    await app.close()


# -- tutorial 5: topics --------------------------------------------------------------------


async def test_emit_log_topic_reaches_a_pigeon_subscriber(amqp_url: str, uid: str) -> None:
    exchange = f"topic_logs.{uid}"
    await asyncio.to_thread(
        tutorials.emit_log_topic, amqp_url, exchange, "kern.boot", "nobody hears this"
    )
    app = App(amqp_url, exchange=exchange, passive=True)
    received: list[tuple[str, str]] = []

    @app.subscribe("kern.*")
    async def on_log(line: str, msg: Message) -> None:
        received.append((line, msg.subject))

    async with app:
        await asyncio.to_thread(
            tutorials.emit_log_topic, amqp_url, exchange, "kern.critical", "A critical error"
        )
        await wait_for(lambda: received == [("A critical error", "kern.critical")])


async def test_pigeon_event_reaches_receive_logs_topic(amqp_url: str, uid: str) -> None:
    exchange = f"topic_logs.{uid}"
    receiving = await in_thread(tutorials.receive_logs_topic, amqp_url, exchange, ["*.critical"], 1)
    async with App(amqp_url, exchange=exchange, passive=True) as app:
        await app.publish("kern.info", "not for them")
        await app.publish("kern.critical", "A critical kernel error")
    assert await receiving == [("kern.critical", b"A critical kernel error")]


async def test_declaring_the_tutorial_exchange_names_exchange_settings(
    amqp_url: str, uid: str
) -> None:
    exchange = f"topic_logs.{uid}"
    await asyncio.to_thread(tutorials.emit_log_topic, amqp_url, exchange, "a.b", "x")
    async with App(amqp_url, exchange=exchange) as app:
        with pytest.raises(DeclarationConflict) as caught:
            await app.publish("kern.info", "x")
    text = str(caught.value)
    assert f"exchange '{exchange}'" in text
    assert "durable" in text
    assert "passive=True" in text
    assert "delivery_limit" not in text
    assert "queue_type" not in text


async def test_passive_app_names_the_exchange_that_is_missing(amqp_url: str, uid: str) -> None:
    async with App(amqp_url, exchange=f"gone.{uid}", passive=True) as app:
        with pytest.raises(ConfigurationError, match=rf"exchange 'gone\.{uid}' does not exist"):
            await app.publish("kern.info", "x")


# -- tutorial 6: RPC -----------------------------------------------------------------------


async def test_tutorial_rpc_client_calls_a_pigeon_server(amqp_url: str, uid: str) -> None:
    app = App(amqp_url)

    @app.rpc(f"rpc_queue.{uid}")
    async def fibonacci(n: int) -> int:
        return tutorials.fib(n)

    async with app:
        [(body, _)] = await call(amqp_url, f"rpc_queue.{uid}", 30)
    assert int(body) == 832040


async def test_tutorial_rpc_client_reads_a_pigeon_error(amqp_url: str, uid: str) -> None:
    app = App(amqp_url)

    @app.rpc(f"rpc_queue.{uid}")
    async def fibonacci(n: int) -> int:
        if n > 40:
            raise ValueError(f"fib({n}) would take too long")
        return tutorials.fib(n)

    async with app:
        replies = await call(amqp_url, f"rpc_queue.{uid}", 50, "fifty")
    [(body, properties), (bad_body, bad_properties)] = replies
    assert json.loads(body) == {
        "error": {"type": "ValueError", "message": "fib(50) would take too long"}
    }
    assert properties.content_type == "application/json"
    assert properties.headers["x-pigeon-error-code"] == "500"
    assert json.loads(bad_body)["error"]["type"] == "DecodeError"
    assert bad_properties.headers["x-pigeon-error-code"] == "400"


async def test_a_tutorial_request_to_a_work_queue_is_handled_as_a_job(
    amqp_url: str, uid: str
) -> None:
    """A request with its own callback queue as ``reply_to`` cannot be told from a job that
    carries one: it is run as a job, not dropped (docs/wire.md)."""
    queue = f"rpc_queue.{uid}"
    app = App(amqp_url)
    got: list[tuple[int, str | None]] = []

    @app.worker(queue)
    async def work(n: int, msg: Message) -> None:
        got.append((n, msg.reply_to))

    def send() -> str:
        client = tutorials.FibonacciRpcClient(amqp_url, queue)
        try:
            client.send(30)
            return client.callback_queue
        finally:
            client.close()

    async with app:
        callback_queue = await asyncio.to_thread(send)
        await wait_for(lambda: got == [(30, callback_queue)], what="the request run as a job")


async def test_pigeon_request_is_answered_by_the_tutorial_server(amqp_url: str, uid: str) -> None:
    serving = await in_thread(tutorials.rpc_server, amqp_url, f"rpc_queue.{uid}", 2)
    async with App(amqp_url) as app:
        assert await app.request(f"rpc_queue.{uid}", 10, reply=int) == 55
        with pytest.raises(RemoteError) as caught:
            await app.request(f"rpc_queue.{uid}", "ten", reply=int)
    await serving
    assert caught.value.type == "ValueError"
    assert "invalid literal" in caught.value.message


async def test_passive_server_serves_the_queue_the_tutorial_declared(
    amqp_url: str, uid: str
) -> None:
    queue = f"rpc_queue.{uid}"
    serving = await in_thread(tutorials.rpc_server, amqp_url, queue, 1)
    await call(amqp_url, queue, 1)
    await serving  # the tutorial server answered once and left; its queue stays
    app = App(amqp_url, passive=True)

    @app.rpc(queue)
    async def fibonacci(n: int) -> int:
        return tutorials.fib(n)

    async with app:
        [(body, _)] = await call(amqp_url, queue, 20)
    assert int(body) == 6765
