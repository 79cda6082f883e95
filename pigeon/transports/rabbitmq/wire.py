"""How an ``Envelope`` travels over AMQP 0-9-1, and how subjects become routing keys.

The envelope's fields ride in native AMQP properties (``content_type``, ``message_id``,
``correlation_id``, ``reply_to``, ``timestamp``, whole seconds) and its headers in the header
table, so a plain aio-pika client reads and writes pigeon messages with no pigeon code.

Delivery counting lives in two headers that never reach a handler: ``x-pigeon-delivery`` (the
number of the next delivery of this copy, default 1) and ``x-pigeon-returns`` (how many deliveries
of earlier copies ended unsettled). The broker adds its own count of this copy's returns
(``x-delivery-count``, quorum queues); ``Counts`` combines them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from pigeon import headers as h
from pigeon.message import Envelope, new_id
from pigeon.subjects import matches

RETURNS = h.RETURNS
"""Deliveries of earlier copies of a job that ended unsettled (their worker stopped or died)."""

BROKER_COUNT = "x-delivery-count"
"""A quorum queue's count of returns of the message it delivers."""

_HIDDEN = frozenset({h.DELIVERY, RETURNS, BROKER_COUNT, "x-death"})
_HIDDEN_PREFIXES = ("x-first-death-", "x-last-death-")

PERSISTENT = 2
TRANSIENT = 1

MAX_EXPIRATION_MS = 2**32 - 1
"""The longest per-message TTL (``expiration``, milliseconds) RabbitMQ takes: its
``MAX_EXPIRY_TIMER``, the limit of the Erlang timer behind it. A larger value makes the broker
close the channel (``PRECONDITION_FAILED - invalid expiration``), failing every call on it."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Where a delivery stands: its number (``attempt``, 1 first) and earlier unsettled ends."""

    attempt: int = 1
    returns: int = 0

    def headers(self) -> dict[str, str]:
        """The headers that carry these counts onto a new copy of the message."""
        carried = {h.DELIVERY: str(self.attempt)}
        if self.returns:
            carried[RETURNS] = str(self.returns)
        return carried


def binding_key(subject: str) -> str:
    """A pigeon subject pattern as an AMQP topic binding key: ``>`` becomes ``#``."""
    return subject[:-1] + "#" if subject.endswith(">") else subject


def bound(pattern: str, routing_key: str) -> bool:
    """Whether a queue bound with ``binding_key(pattern)`` gets ``routing_key``: as ``matches``,
    and ``#`` also matches no word, so ``orders.>`` gets ``orders`` itself."""
    if matches(pattern, routing_key):
        return True
    return pattern.endswith(".>") and routing_key == pattern[:-2]


def expiration(seconds: float) -> str:
    """The AMQP ``expiration`` of a message that may wait ``seconds`` (finite, positive): whole
    milliseconds, at least 1 (0 would expire it unless a consumer takes it at once), at most
    ``MAX_EXPIRATION_MS`` (49.7 days; a longer wait is cut to it, as RabbitMQ's JMS client does:
    the caller still waits its own timeout)."""
    return str(min(max(1, round(seconds * 1000)), MAX_EXPIRATION_MS))


def properties(
    envelope: Envelope,
    *,
    delivery_mode: int = PERSISTENT,
    extra: dict[str, str] | None = None,
    reply_to: str | None = None,
    expiration: str | None = None,
) -> Basic.Properties:
    """The AMQP properties of ``envelope``, with ``extra`` headers added."""
    table: dict[str, Any] | None = envelope.headers
    if extra:
        table = {**envelope.headers, **extra}
    return Basic.Properties(
        content_type=envelope.content_type or None,
        headers=table or None,
        delivery_mode=delivery_mode,
        correlation_id=envelope.correlation_id,
        reply_to=reply_to or envelope.reply_to,
        expiration=expiration,
        message_id=envelope.message_id,
        timestamp=_stamp(int(envelope.timestamp)),
    )


_last_stamp = (0, datetime.fromtimestamp(0, UTC))


def _stamp(seconds: int) -> datetime:
    """The AMQP timestamp of ``seconds`` since the epoch (a message's whole second): built once per
    second, since building a ``datetime`` costs more than the rest of the properties."""
    global _last_stamp
    if _last_stamp[0] != seconds:
        _last_stamp = (seconds, datetime.fromtimestamp(seconds, UTC))
    return _last_stamp[1]


def envelope_of(message: DeliveredMessage) -> Envelope:
    """The envelope of a received message, pigeon's counting headers and broker headers removed.

    A message from another client gets pigeon's defaults: no content type means JSON, no message
    id a fresh one, no timestamp the time of receipt.
    """
    props = message.header.properties
    stamp = props.timestamp
    return Envelope(
        body=message.body,
        headers=_visible(props.headers) if props.headers else {},
        content_type=props.content_type or "",
        message_id=props.message_id or new_id(),
        correlation_id=props.correlation_id,
        reply_to=props.reply_to,
        timestamp=stamp.timestamp() if stamp is not None else time.time(),
    )


def counts_of(message: DeliveredMessage) -> Counts:
    """The delivery counts of a received message (see the module docstring)."""
    table = message.header.properties.headers
    if not table:
        return Counts()
    broker = _as_int(table.get(BROKER_COUNT), 0)
    return Counts(
        attempt=_as_int(table.get(h.DELIVERY), 1) + broker,
        returns=_as_int(table.get(RETURNS), 0) + broker,
    )


def death_of(message: DeliveredMessage) -> dict[str, Any] | None:
    """The broker's latest ``x-death`` record, if the broker dead-lettered the message."""
    table = message.header.properties.headers or {}
    deaths = table.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]
    return None


def _visible(table: dict[str, Any]) -> dict[str, str]:
    visible: dict[str, str] = {}
    for name, value in table.items():
        if name in _HIDDEN or name.startswith(_HIDDEN_PREFIXES):
            continue
        text = _as_text(value)
        if text is not None:
            visible[name] = text
    return visible


def _as_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool | int | float):
        return str(value)
    return None  # tables and arrays have no place in pigeon's str -> str headers


def _as_int(value: Any, default: int) -> int:
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
