"""The RabbitMQ tutorials' pika programs (2: work queues, 5: topics, 6: RPC), as the tutorials
write them, with three changes only: the URL and the queue or exchange name are parameters (the
tests share a broker), and the endless consumers stop after the messages a test waits for (and
after ``timeout`` seconds at worst), so that a test can join them.

They are blocking pika code: the tests run them in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import pika

TIMEOUT = 20.0


def new_task(url: str, queue: str, message: str) -> None:
    """Tutorial 2, ``new_task.py``: a persistent message on a durable queue."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=True)
    channel.basic_publish(
        exchange="",
        routing_key=queue,
        body=message,
        properties=pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent),
    )
    connection.close()


def declare_task_queue(url: str, queue: str) -> None:
    """What ``worker.py`` and ``new_task.py`` both do first: declare the durable queue."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    connection.channel().queue_declare(queue=queue, durable=True)
    connection.close()


def worker(url: str, queue: str, count: int, ready: threading.Event) -> list[bytes]:
    """Tutorial 2, ``worker.py``: fair dispatch, manual acks; returns the bodies received."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=True)
    received: list[bytes] = []

    def callback(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        received.append(body)
        ch.basic_ack(delivery_tag=method.delivery_tag)
        if len(received) == count:
            ch.stop_consuming()

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=queue, on_message_callback=callback)
    _consume(connection, channel, ready)
    return received


def emit_log_topic(url: str, exchange: str, routing_key: str, message: str) -> None:
    """Tutorial 5, ``emit_log_topic.py``: a (non-durable) topic exchange and one message."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare(exchange=exchange, exchange_type="topic")
    channel.basic_publish(exchange=exchange, routing_key=routing_key, body=message)
    connection.close()


def receive_logs_topic(
    url: str, exchange: str, binding_keys: list[str], count: int, ready: threading.Event
) -> list[tuple[str, bytes]]:
    """Tutorial 5, ``receive_logs_topic.py``: an exclusive queue bound with ``binding_keys``."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.exchange_declare(exchange=exchange, exchange_type="topic")
    result = channel.queue_declare("", exclusive=True)
    queue_name = result.method.queue
    for binding_key in binding_keys:
        channel.queue_bind(exchange=exchange, queue=queue_name, routing_key=binding_key)
    received: list[tuple[str, bytes]] = []

    def callback(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        received.append((method.routing_key, body))
        if len(received) == count:
            ch.stop_consuming()

    channel.basic_consume(queue=queue_name, on_message_callback=callback, auto_ack=True)
    _consume(connection, channel, ready)
    return received


def fib(n: int) -> int:
    if n == 0:
        return 0
    if n == 1:
        return 1
    return fib(n - 1) + fib(n - 2)


def rpc_server(url: str, queue: str, count: int, ready: threading.Event) -> None:
    """Tutorial 6, ``rpc_server.py``, answering ``count`` requests. A body that is not a number
    gets the error reply ``docs/wire.md`` describes (the tutorial's server would crash)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue=queue)
    answered = 0

    def on_request(ch: Any, method: Any, props: Any, body: bytes) -> None:
        nonlocal answered
        try:
            response, properties = str(fib(int(body))), pika.BasicProperties()
        except ValueError as exc:
            error = {"type": "ValueError", "message": str(exc)}
            response = json.dumps({"error": error})
            headers = {"x-pigeon-error-type": "ValueError", "x-pigeon-error-message": str(exc)}
            properties = pika.BasicProperties(content_type="application/json", headers=headers)
        properties.correlation_id = props.correlation_id
        ch.basic_publish(
            exchange="", routing_key=props.reply_to, properties=properties, body=response
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)
        answered += 1
        if answered == count:
            ch.stop_consuming()

    channel.basic_qos(prefetch_count=1)
    channel.basic_consume(queue=queue, on_message_callback=on_request)
    _consume(connection, channel, ready)


class FibonacciRpcClient:
    """Tutorial 6, ``rpc_client.py``; ``call`` returns the reply's body and properties (the
    tutorial's returns ``int(self.response)``, which the tests do themselves)."""

    def __init__(self, url: str, queue: str) -> None:
        self.queue = queue
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.channel = self.connection.channel()
        result = self.channel.queue_declare(queue="", exclusive=True)
        self.callback_queue = result.method.queue
        self.channel.basic_consume(
            queue=self.callback_queue, on_message_callback=self.on_response, auto_ack=True
        )
        self.response: bytes | None = None
        self.properties: Any = None
        self.corr_id: str | None = None

    def on_response(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        if self.corr_id == props.correlation_id:
            self.response = body
            self.properties = props

    def call(self, n: int | str) -> tuple[bytes, Any]:
        self.send(n)
        deadline = time.monotonic() + TIMEOUT
        while self.response is None and time.monotonic() < deadline:
            self.connection.process_data_events(time_limit=1)
        if self.response is None:
            raise TimeoutError(f"no reply from {self.queue!r} within {TIMEOUT}s")
        return self.response, self.properties

    def send(self, n: int | str) -> None:
        """The request ``call`` sends, without waiting for its reply."""
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            exchange="",
            routing_key=self.queue,
            properties=pika.BasicProperties(
                reply_to=self.callback_queue,
                correlation_id=self.corr_id,
            ),
            body=str(n),
        )

    def close(self) -> None:
        self.connection.close()


def _consume(connection: Any, channel: Any, ready: threading.Event) -> None:
    """``channel.start_consuming()``, bounded by ``TIMEOUT``; ``ready`` is set once consuming."""
    stop = connection.call_later(TIMEOUT, channel.stop_consuming)
    ready.set()
    try:
        channel.start_consuming()
    finally:
        connection.remove_timeout(stop)
        connection.close()
