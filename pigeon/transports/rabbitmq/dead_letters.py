"""Reading, replaying and purging ``<queue>.dlq``, each on a channel of its own.

Reading takes the dead letters with ``basic.get`` and closes the channel, which hands them all back
to the queue: nothing is removed. Replaying acks each dead letter only after the work queue
confirmed its copy.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiormq.abc
import aiormq.exceptions as amqp
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from pigeon import headers as h
from pigeon.message import Envelope
from pigeon.transports.rabbitmq import wire
from pigeon.transports.rabbitmq.topology import Declarer, dead_letter_queue

REPLAY = (
    "some letters may be back on the queue, the others are still dead letters (one may be in "
    "both places): replay again"
)
"""What a replay the close cut means: each letter is acked only once its copy is confirmed, so
the one cut between the two is in both places."""

PURGE = "they may or may not be deleted: purge again"
"""What a purge the close cut means (one ``queue.purge``)."""

BROKER_REASONS = {
    "delivery_limit": "DeliveryLimitExceeded",
    "rejected": "RejectedByConsumer",
    "expired": "Expired",
    "maxlen": "QueueFull",
}
"""``x-death`` reasons of letters the broker dead-lettered, as pigeon failure types."""


async def peek(declarer: Declarer, queue: str, limit: int | None) -> list[Envelope]:
    """Up to ``limit`` dead letters of ``queue``, oldest first, left in place and in order.

    A quorum queue puts letters a reader gave back behind those given back before, ahead of the
    rest: reading fewer than an earlier read gave back would move them behind the others, and a
    replay would then move the wrong ones. So the read takes every letter read before (each
    ``redelivered``), past ``limit`` if need be, and they all go back in their order.
    """
    dlq = dead_letter_queue(queue)

    async def read(channel: aiormq.abc.AbstractChannel) -> list[Envelope]:
        letters: list[Envelope] = []
        try:  # each letter stays unacked on this channel: the gets end, no count needed
            while (message := await _get(channel, dlq)) is not None:
                if limit is None or len(letters) < limit:
                    letters.append(letter_of(message))
                elif not message.redelivered:
                    break  # none read before from here on: the order is kept as it is
        except amqp.ChannelNotFoundEntity:
            pass  # nothing was ever dead-lettered on this queue
        return letters  # closing the channel puts every letter back

    result: list[Envelope] = await declarer.run(f"reading the dead letters of {queue!r}", read)
    return result


async def replay(declarer: Declarer, queue: str, limit: int | None) -> int:
    """Move up to ``limit`` dead letters back onto ``queue``, failure headers removed: only those
    that failed before it started, so that letters a live worker dead-letters again meanwhile stay
    (a replay always ends)."""
    dlq = dead_letter_queue(queue)
    if not await declarer.exists(dlq):
        return 0
    await declarer.work_queue(queue, strict=False)

    started = datetime.now(UTC)

    async def move(channel: aiormq.abc.AbstractChannel) -> int:
        moved = 0
        while limit is None or moved < limit:
            message = await _get(channel, dlq)
            if message is None or message.delivery_tag is None:
                break
            if _failed_since(message, started):  # dead-lettered again during this replay
                await channel.basic_nack(message.delivery_tag, requeue=True)
                break
            envelope = wire.envelope_of(message).without_headers(h.FAILURE_HEADERS)
            await channel.basic_publish(  # a nack or a return raises: the letter stays
                envelope.body,
                exchange="",
                routing_key=queue,
                properties=wire.properties(envelope),
                mandatory=True,
            )
            await channel.basic_ack(message.delivery_tag)
            moved += 1
        return moved

    moved: int = await declarer.run(f"replaying the dead letters of {queue!r}", move, confirms=True)
    return moved


async def purge(declarer: Declarer, queue: str) -> int:
    """Delete the dead letters of ``queue``; return how many."""

    async def purge_queue(channel: aiormq.abc.AbstractChannel) -> int:
        try:
            result = await channel.queue_purge(dead_letter_queue(queue))
        except amqp.ChannelNotFoundEntity:
            return 0
        return int(result.message_count or 0)

    purged: int = await declarer.run(f"purging the dead letters of {queue!r}", purge_queue)
    return purged


def letter_of(message: DeliveredMessage) -> Envelope:
    """A dead letter's envelope; one the broker dead-lettered gets failure headers from its
    ``x-death`` record."""
    envelope = wire.envelope_of(message)
    death = wire.death_of(message)
    if h.ERROR_TYPE in envelope.headers or death is None:
        return envelope
    return envelope.with_headers(_failure_headers(death))


def _failure_headers(death: dict[str, Any]) -> dict[str, str]:
    reason = str(death.get("reason", "unknown"))
    failure = {
        h.ERROR_TYPE: BROKER_REASONS.get(reason, reason),
        h.ERROR_MESSAGE: f"dead-lettered by RabbitMQ ({reason})",
        h.ATTEMPTS: str(death.get("count", 1)),
        h.QUEUE: str(death.get("queue", "")),
    }
    when = death.get("time")
    if isinstance(when, datetime):
        failure[h.FAILED_AT] = when.isoformat()
    return failure


def _failed_since(message: DeliveredMessage, started: datetime) -> bool:
    """Whether the dead letter ``message`` failed after ``started`` (pigeon's failure time, else
    the broker's ``x-death`` time, whole seconds). A letter with neither counts as older: the
    passive declare's message count cannot bound a replay instead, as it lags on quorum queues
    (a letter a reader just handed back is not counted yet)."""
    failed_at = letter_of(message).headers.get(h.FAILED_AT)
    try:
        when = datetime.fromisoformat(failed_at) if failed_at else None
    except ValueError:
        when = None
    if when is None:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when > started


async def _get(channel: aiormq.abc.AbstractChannel, queue: str) -> DeliveredMessage | None:
    message = await channel.basic_get(queue, no_ack=False)
    return None if isinstance(message.delivery, Basic.GetEmpty) else message
