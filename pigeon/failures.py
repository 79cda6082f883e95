"""What a failure means, decided once for every transport: the delivery limit's ``Failure`` and the
one log line per failure (what happened, subject, message id, attempt, error)."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace

from pigeon.message import Envelope, Failure
from pigeon.transports.base import Delivery

log = logging.getLogger("pigeon")

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Characters that break a log line or act on a terminal: C0 and C1 controls, line separators."""


def describe(error: BaseException) -> str:
    """``str(error)``, else its ``repr``; an error whose ``__str__`` itself raises is described by
    its type, so that reporting a failure never fails."""
    try:
        text = str(error) or repr(error)
    except Exception:
        return f"<{type(error).__name__} that cannot be shown>"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")  # lone surrogates escaped


def one_line(text: str) -> str:
    """``text`` with its control characters escaped as Python writes them (``\\n``,
    ``\\x1b``), so that a log line built with it stays one line, whatever a message carries."""
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def stops_the_handler(error: BaseException) -> bool:
    """Whether ``error`` is the process or the App stopping the handler (``KeyboardInterrupt``,
    ``SystemExit``, the task being cancelled), not the handler failing. Anything else a handler
    raises, ``BaseException`` subclasses and a ``CancelledError`` of its own included, is a
    failure of that message."""
    if isinstance(error, KeyboardInterrupt | SystemExit):
        return True
    if isinstance(error, asyncio.CancelledError):
        task = asyncio.current_task()
        return task is None or task.cancelling() > 0
    return False


def log_failure(
    what: str,
    subject: str,
    envelope: Envelope,
    attempt: int,
    error: BaseException,
    level: int = logging.ERROR,
) -> None:
    """Log one line (control characters in the subject, message id and error escaped: see
    ``one_line``); the traceback too when the ``pigeon`` logger is at DEBUG."""
    if not log.isEnabledFor(level):
        return
    log.log(
        level,
        "pigeon: %s subject=%s message_id=%s attempt=%d error=%s: %s",
        what,
        one_line(subject),
        one_line(envelope.message_id),
        attempt,
        type(error).__name__,
        one_line(shortened(describe(error))),
        exc_info=error if log.isEnabledFor(logging.DEBUG) else None,
    )


def shortened(text: str, limit: int = 1000) -> str:
    """``text`` cut to ``limit`` characters, saying how many more there were: a failure's text in
    a log line is kept to what a dead letter's ``failure.message`` keeps."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def returns_of(delivery: Delivery) -> int:
    """Earlier deliveries of ``delivery`` that count toward the delivery limit: those that ended
    unsettled, or every earlier one where the broker cannot tell (JetStream's ``max_deliver``
    counts them all alike)."""
    returns = delivery.returns
    return delivery.attempt - 1 if returns is None else returns


def over_delivery_limit(delivery: Delivery, limit: int) -> bool:
    """Whether ``delivery`` has reached the delivery ``limit`` (``App(delivery_limit=...)``, after
    RabbitMQ quorum queues' ``x-delivery-limit``) and must be dead-lettered instead of handled."""
    return returns_of(delivery) >= limit


def delivery_limit_failure(returns: int, attempts: int, queue: str) -> Failure:
    """The dead letter's ``Failure`` for a message over the delivery limit: its worker kept
    stopping or dying before settling it."""
    error = RuntimeError(
        f"delivered {returns} times without being settled (its worker kept stopping or dying); "
        "dead-lettered instead of delivered again"
    )
    failure = Failure.of(error, attempts=max(1, attempts), queue=queue)
    return replace(failure, type="DeliveryLimitExceeded")
