"""Where rpc servers of wildcard subjects bind, so that a request goes to the most specific one.

A request nobody serves by its exact subject goes to the rpc topic exchange (``pigeon.rpc``).
A topic exchange gives a message to every queue whose binding matches, so servers of ``a.*``
and ``a.>`` would both get a request on ``a.b``. Instead, each server binds its queue to one of
``RANKS`` exchanges, its pattern's **rank** (``subjects.specificity``: a subject no queue can be
named after first, then one ``*``, two ``*`` ... then ``>`` with none, one ``*`` ...), and the
ranks form a chain of alternate exchanges, most specific first: a rank that routes a request
to no queue hands it to the next. ``pigeon.rpc`` is bound to the first rank (``#``), so the
broker stops at the most specific rank with a match, in the one publish of the caller, and a
request that matches nothing is still returned (``mandatory``: ``NoResponders``). Callers are
unchanged. Two patterns of one rank can both match a subject only if they differ where one
has ``*`` and the other a literal (``a.*`` and ``*.b``): such a request goes to both, as it
does to patterns with more ``*`` than ``MAX_STARS`` (they share the last ranks).

A server of an older pigeon binds its queue to ``pigeon.rpc`` itself: it still gets every
request it matches (beside the most specific new server's); a new server of the same pattern,
which shares its queue, removes that binding as it starts.
"""

from __future__ import annotations

from typing import Any

import aiormq.abc
from aio_pika import ExchangeType
from aio_pika.abc import AbstractRobustChannel

from pigeon.subjects import specificity
from pigeon.transports.rabbitmq.topology import Declarer

MAX_STARS = 8
"""Patterns with more ``*`` than this share the rank of those with this many."""

RANKS = 2 * (MAX_STARS + 1)
"""Exchanges in the chain: without ``>`` and 0 .. ``MAX_STARS`` ``*``, then with ``>``."""


def rank_of(pattern: str) -> int:
    """The rank (0 = most specific) of the rpc subject ``pattern``."""
    has_rest, stars = specificity(pattern)
    return has_rest * (MAX_STARS + 1) + min(stars, MAX_STARS)


def rank_exchange(rpc_exchange: str, rank: int) -> str:
    """The name of the exchange of ``rank`` in the chain of ``rpc_exchange``."""
    return f"{rpc_exchange}.rank.{rank:02d}"


def exchange_for(rpc_exchange: str, pattern: str) -> str:
    """The exchange a server of ``pattern`` binds its queue to."""
    return rank_exchange(rpc_exchange, rank_of(pattern))


def onward(rpc_exchange: str, pattern: str) -> str | None:
    """Where a leaving server of ``pattern`` passes on the requests that came through the rpc
    exchange: the rank after its own, if there is one."""
    rank = rank_of(pattern) + 1
    return rank_exchange(rpc_exchange, rank) if rank < RANKS else None


async def declare_on(channel: AbstractRobustChannel, rpc_exchange: str) -> None:
    """Declare what ``declare`` does on ``channel``, a consumer's, so that aio-pika declares it
    again after a reconnect before it binds the channel's queue to a rank (``restored``): the rpc
    exchange first, since a rank's binding to it is restored with the rank."""
    source = await channel.declare_exchange(rpc_exchange, ExchangeType.TOPIC, durable=True)
    first = None
    for rank in reversed(range(RANKS)):
        below: dict[str, Any] = {}
        if rank + 1 < RANKS:
            below["alternate-exchange"] = rank_exchange(rpc_exchange, rank + 1)
        name = rank_exchange(rpc_exchange, rank)
        first = await channel.declare_exchange(
            name, ExchangeType.TOPIC, durable=True, arguments=below
        )
    assert first is not None
    await first.bind(source, routing_key="#")


async def declare(declarer: Declarer) -> None:
    """Declare the rpc exchange, the chain of ranks and the binding of the one to the other
    (once per connection); ``DeclarationConflict`` for one that exists with other settings."""
    rpc_exchange = declarer.topology.rpc_exchange
    await declarer.exchange(rpc_exchange, "topic")

    async def chain(channel: aiormq.abc.AbstractChannel) -> None:
        for rank in reversed(range(RANKS)):  # each after the one it hands on to
            below: dict[str, Any] = {}
            if rank + 1 < RANKS:
                below["alternate-exchange"] = rank_exchange(rpc_exchange, rank + 1)
            name = rank_exchange(rpc_exchange, rank)
            await channel.exchange_declare(
                name, exchange_type="topic", durable=True, arguments=below
            )
        first = rank_exchange(rpc_exchange, 0)
        await channel.exchange_bind(first, rpc_exchange, routing_key="#")

    # RANKS + 1 calls: each group of five gets the patience of one declaration
    parts = RANKS // 5 + 1
    await declarer.once(f"ranks:{rpc_exchange}", "declaring the rpc ranks", chain, parts)
