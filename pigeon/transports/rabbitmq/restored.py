"""What a consumer's channel declares so that aio-pika declares it again after a reconnect.

aio-pika's robust channel restores, in order, the exchanges and then the queues (with their
bindings) declared through it. A queue bound to an exchange declared elsewhere (on a
``Declarer``'s short-lived channel) cannot be restored on a node that came back empty (restarted
without its data, a replaced machine): the binding fails ("no exchange"), and so does every
reconnect. So each consumer's channel declares, itself, the exchanges its queue is bound to and
the bindings pigeon's routing needs (a worker's dead-letter queue and delay binding too).
A passive App declares none of this: the owner of the topology restores it.
"""

from __future__ import annotations

from aio_pika import ExchangeType
from aio_pika.abc import AbstractRobustChannel, AbstractRobustExchange, AbstractRobustQueue

from pigeon.transports.rabbitmq.topology import (
    DELAY_DELIVERY,
    DELAY_TARGET,
    Topology,
    dead_letter_queue,
)


async def exchange(
    channel: AbstractRobustChannel, name: str, kind: ExchangeType
) -> AbstractRobustExchange:
    """Declare the durable exchange ``name`` on ``channel``, to be declared again with it."""
    return await channel.declare_exchange(name, kind, durable=True)


async def work_queue(
    channel: AbstractRobustChannel, topology: Topology, queue: str
) -> AbstractRobustQueue:
    """Declare work queue ``queue`` with its dead-letter queue and their routing on ``channel``
    (as ``Declarer.work_queue`` does), all declared again with the channel."""
    dead_letters = await exchange(channel, topology.dead_letter_exchange, ExchangeType.DIRECT)
    delays = await exchange(channel, DELAY_DELIVERY, ExchangeType.HEADERS)
    dlq_name = dead_letter_queue(queue)
    dlq = await channel.declare_queue(
        dlq_name, durable=True, arguments=topology.durable_arguments()
    )
    await dlq.bind(dead_letters, routing_key=dlq_name)
    arguments = topology.work_queue_arguments(queue)
    work = await channel.declare_queue(queue, durable=True, arguments=arguments)
    await work.bind(delays, routing_key="", arguments={DELAY_TARGET: queue})
    return work
