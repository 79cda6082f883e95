"""What waits on a RabbitMQ work queue, from AMQP alone: two passive declarations, no reads.

``queue.declare(passive=True)`` of the work queue answers ``message_count`` (ready: messages not
delivered to any consumer) and ``consumer_count``; of ``<queue>.dlq``, its dead letters. AMQP 0-9-1
has no way to count unacknowledged messages or to read the head message's timestamp without
taking it: ``basic.get`` then a requeue would set its ``redelivered`` flag (pigeon counts that as
a return on classic queues), add one to its ``x-delivery-count`` on quorum queues (towards the
delivery limit), and hide it from workers meanwhile. So ``unacked`` and ``oldest_age`` are
``None``; the management API (``messages_unacknowledged``, ``head_message_timestamp``) has them,
but pigeon does not require the management plugin.

pigeon's helper queues (``<queue>.dlq``, the ``<queue>.delivery-limit`` marker, the delay
ladder's ``pigeon.delay.*``) are refused by name: read as work queues, their counts would pass
for jobs waiting.

A durable subscription is its queue ``pigeon.durable.<name>:<subject>`` (``durables``), or, not
moved yet, the queue of the old naming (the durable name alone): its passive declaration answers
ready events and its consumers.
"""

from __future__ import annotations

from typing import Any

import aiormq.abc
import aiormq.exceptions as amqp

from pigeon.errors import ConfigurationError
from pigeon.transports.base import Backlog, unknown_durable, unknown_queue
from pigeon.transports.rabbitmq.durables import durable_queue, old_queue
from pigeon.transports.rabbitmq.topology import Declarer, dead_letter_queue, limit_marker

DELAY_LADDER_PREFIX = "pigeon.delay."


async def read(declarer: Declarer, url: str, queue: str) -> Backlog:
    """The backlog of work queue ``queue`` now; ``ConfigurationError`` if it does not exist or
    is one of pigeon's helper queues."""
    helper = _helper(queue)
    if helper:
        raise ConfigurationError(
            f"{queue!r} is {helper}, not a work queue: backlog() reads work queues"
        )

    async def declare(channel: aiormq.abc.AbstractChannel) -> Backlog:
        try:
            work = await channel.queue_declare(queue, passive=True)
        except amqp.ChannelNotFoundEntity:
            raise unknown_queue(queue, url) from None
        try:
            dead = await channel.queue_declare(dead_letter_queue(queue), passive=True)
            letters = dead.message_count or 0
        except amqp.ChannelNotFoundEntity:
            letters = 0  # nothing was ever dead-lettered here (an adopted queue)
        return Backlog(work.message_count or 0, None, letters, work.consumer_count or 0, None)

    backlog: Backlog = await declarer.run(f"reading the backlog of {queue!r}", declare)
    return backlog


async def read_durable(declarer: Declarer, url: str, subject: str, durable: str) -> Backlog:
    """The backlog of the durable subscription ``durable`` of ``subject`` now: its queue, else
    one of the old naming (``durables``; unless ``passive``, only one declared as pigeon declares
    durable queues, not a work queue or a group's); ``ConfigurationError`` if neither exists."""
    action = f"reading the backlog of durable subscription {durable!r}"
    topology = declarer.topology
    old_arguments = None if topology.passive else topology.durable_arguments()
    for queue, arguments in ((durable_queue(subject, durable), None), (durable, old_arguments)):

        async def declare(
            channel: aiormq.abc.AbstractChannel, queue: str = queue, arguments: Any = arguments
        ) -> Backlog | None:
            kept = await old_queue(channel, queue, arguments)
            if kept is None:
                return None
            return Backlog(kept.message_count or 0, None, None, kept.consumer_count or 0, None)

        backlog: Backlog | None = await declarer.run(action, declare, may_close=True)
        if backlog is not None:
            return backlog
    raise unknown_durable(subject, durable, url)


def _helper(queue: str) -> str:
    """What pigeon keeps in the queue named ``queue``, if it is one of its helpers; else ''."""
    work = queue.rpartition(".")[0]
    if work and queue == dead_letter_queue(work):
        return f"the dead-letter queue of {work!r} (its count is backlog({work!r}).dead_letters)"
    if work and queue == limit_marker(work):
        return f"the marker of the delivery limit of work queue {work!r}"
    if queue.startswith(DELAY_LADDER_PREFIX):
        return "a level of pigeon's delay ladder (delayed jobs and redeliveries)"
    return ""
