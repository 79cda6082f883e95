"""What waits on a JetStream work queue, from the JetStream API: two or three reads, no writes.

``CONSUMER.INFO`` of the queue's shared consumer ``workers`` gives ``num_pending`` (stored, not
delivered yet: ready) and ``num_ack_pending`` (delivered, not acked yet: unacked);
``STREAM.MSG.GET`` of the first undelivered message gives its stored time (only when something
is ready); ``STREAM.INFO`` of the dead-letter stream gives its message count. Every worker of every
App shares the one durable pull consumer, so JetStream cannot count workers: ``consumers`` is
``None``.

A durable subscription is the JetStream durable consumer of its name (made fit for a name) on
the stream that stores its subject (``PIGEON_EV_<subject>`` or a user's stream covering it): its
``num_pending`` and ``num_ack_pending`` are ready and unacked, its first undelivered message's
stored time the oldest age, as for a queue; it has no dead letters and cannot count consumers.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from pigeon.errors import ConfigurationError
from pigeon.transports.base import Backlog, unknown_durable, unknown_queue
from pigeon.transports.nats.errors import (
    CONSUMER_NOT_FOUND,
    NO_MESSAGE_FOUND,
    STREAM_NOT_FOUND,
    JetStreamError,
)
from pigeon.transports.nats.jetstream import JetStreamApi
from pigeon.transports.nats.names import consumer_name
from pigeon.transports.nats.topology import (
    QUEUE_SUBJECTS,
    WORKERS,
    QueueNames,
    covers,
)


async def read(api: JetStreamApi, url: str, queue: str) -> Backlog:
    """The backlog of work queue ``queue`` now; ``ConfigurationError`` if it does not exist."""
    names = QueueNames.of(queue)
    try:
        info = await api.call(f"CONSUMER.INFO.{names.stream}.{WORKERS}")
    except JetStreamError as exc:
        if exc.err_code in (STREAM_NOT_FOUND, CONSUMER_NOT_FOUND):
            raise unknown_queue(queue, url) from None
        raise
    _check_filter(info, names, url)
    ready = int(info.get("num_pending", 0))
    unacked = int(info.get("num_ack_pending", 0))
    next_seq = int(info.get("delivered", {}).get("stream_seq", 0)) + 1
    age = await _oldest_age(api, names.stream, names.subject, next_seq) if ready else 0.0
    return Backlog(ready, unacked, await _dead_letters(api, names), None, age)


async def read_durable(api: JetStreamApi, url: str, subject: str, durable: str) -> Backlog:
    """The backlog of the durable subscription ``durable`` of ``subject`` now; raises
    ``ConfigurationError`` if no stream stores ``subject`` or it has no such consumer."""
    stream = await _stream_covering(api, subject)
    if stream is None:
        raise unknown_durable(subject, durable, url)
    try:
        info = await api.call(f"CONSUMER.INFO.{stream}.{consumer_name(durable)}")
    except JetStreamError as exc:
        if exc.err_code in (STREAM_NOT_FOUND, CONSUMER_NOT_FOUND):
            raise unknown_durable(subject, durable, url) from None
        raise
    if info.get("config", {}).get("filter_subject") != subject:
        raise unknown_durable(subject, durable, url)  # a consumer of another subject or queue
    ready = int(info.get("num_pending", 0))
    unacked = int(info.get("num_ack_pending", 0))
    next_seq = int(info.get("delivered", {}).get("stream_seq", 0)) + 1
    age = await _oldest_age(api, stream, subject, next_seq) if ready else 0.0
    return Backlog(ready, unacked, None, None, age)


async def _stream_covering(api: JetStreamApi, subject: str) -> str | None:
    """The stream a durable subscription of ``subject`` uses: the first that stores every
    subject ``subject`` matches (as ``Declarer.events`` chose it)."""
    answer = await api.call("STREAM.NAMES", {"subject": subject})
    for name in answer.get("streams") or ():
        info = await api.call(f"STREAM.INFO.{name}")
        if any(covers(pattern, subject) for pattern in info["config"].get("subjects") or ()):
            return str(name)
    return None


def _check_filter(info: dict[str, Any], names: QueueNames, url: str) -> None:
    """Raise ``ConfigurationError`` unless the consumer ``info`` reads ``names.queue``: queues
    whose names differ only in ``.`` and ``_`` map to one stream name, which belongs to the
    queue declared first."""
    taken_by = info.get("config", {}).get("filter_subject", names.subject)
    if taken_by != names.subject:
        owner = taken_by.removeprefix(QUEUE_SUBJECTS)
        raise ConfigurationError(
            f"work queue {names.queue!r} does not exist on {url}: its stream name "
            f"{names.stream!r} belongs to work queue {owner!r} (dots and other characters "
            "become '_' in stream names). Check the name; two queues that differ only so "
            "cannot both be used on NATS"
        )


async def _oldest_age(api: JetStreamApi, stream: str, subject: str, seq: int) -> float | None:
    """Seconds since the first message on ``subject`` at or after ``seq`` (the first
    undelivered) was stored in ``stream``."""
    request = {"seq": seq, "next_by_subj": subject}
    try:
        answer = await api.call(f"STREAM.MSG.GET.{stream}", request)
    except JetStreamError as exc:
        if exc.err_code in (STREAM_NOT_FOUND, NO_MESSAGE_FOUND):
            return 0.0  # taken between the two reads
        raise
    return _age(answer.get("message", {}))


def _age(message: dict[str, Any]) -> float | None:
    stamp = message.get("time")
    if not stamp:
        return None
    return max(0.0, time.time() - datetime.fromisoformat(stamp).timestamp())


async def _dead_letters(api: JetStreamApi, names: QueueNames) -> int:
    try:
        info = await api.call(f"STREAM.INFO.{names.dead_stream}")
    except JetStreamError as exc:
        if exc.err_code == STREAM_NOT_FOUND:
            return 0  # nothing was ever dead-lettered here
        raise
    return int(info.get("state", {}).get("messages", 0))
